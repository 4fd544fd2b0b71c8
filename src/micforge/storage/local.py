"""LocalStore: the embedded default, a directory on one machine.

Layout under ``root``::

    objects/<key>.mfo     one file per key: 68-byte header + data
    .locks/<nn>           256 striped lock files (fcntl.flock)

File format (see docs/storage.md): ``b"MFO" + version byte 1`` then the etag
as 64 lowercase hex chars (BLAKE3 of the data for ``put``/``put_file``; 256
random bits for an ``open_writer`` object), then the data. The etag
lives inside the file so that one rename publishes data and etag together
and ``head()`` reads 68 bytes.

Writes go to a temp file (``put``'s next to the target; those of ``put_file``
and ``open_writer``, which may be large, in ``objects/``, where a crash's
leftovers are swept when the next LocalStore opens the directory), are
fsynced, and are renamed over the target while holding the key's lock stripe,
after which the target's directory is fsynced. Readers never lock: rename is atomic, so they see
the old or the new object, never a partial one. Every writer (conditional
or not, and delete) holds the stripe across compare + rename, which makes
conditional writes atomic across threads and processes.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import io
import itertools
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from micforge.storage.base import (
    OBJECT_SUFFIX,
    InvalidKey,
    KeyNotFound,
    PreconditionFailed,
    StorageUnavailable,
    StoreError,
    validate_condition,
    validate_head,
    validate_head_bytes,
    validate_key,
    validate_limit,
    validate_prefix,
    validate_writer_key,
)
from micforge.storage.hashing import new_hasher

MAGIC = b"MFO\x01"
ETAG_HEX_CHARS = 64
HEADER_BYTES = len(MAGIC) + ETAG_HEX_CHARS
LOCK_STRIPES = 256
COPY_CHUNK_BYTES = 1024 * 1024
TEMP_PREFIX = ".tmp-"
# An open_writer temp file untouched this long belongs to a writer that died: the
# next LocalStore opened on the directory removes it.
STALE_TEMP_SECONDS = 24 * 60 * 60
# An open_writer writes on a helper thread once this much arrived (small objects
# are not worth a thread), with at most this much queued for it.
BACKGROUND_WRITE_MIN_BYTES = 4 * 1024 * 1024
BACKGROUND_QUEUE_BYTES_MAX = 8 * 1024 * 1024
# Pieces per writev call (Linux allows 1024).
WRITEV_PIECES_MAX = 256
# The helper thread is woken once this much has queued up (less only at close).
BACKGROUND_WAKE_BYTES = 1024 * 1024
# Before the helper thread takes over, an open_writer holds received pieces until
# this much has arrived and writes them with one writev (a raw blob frame comes as
# a 3-byte block header and a 128 KiB block at a time).
WRITE_BATCH_BYTES = 256 * 1024


class LocalStore:
    """A Store in a local directory; safe for many threads and processes on one machine."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self._objects = self.root / "objects"
        self._locks = self.root / ".locks"
        # fsync=False exists for throwaway test/benchmark stores only; durability is the default.
        self._fsync = fsync
        try:
            self._objects.mkdir(parents=True, exist_ok=True)
            self._locks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create store at {self.root}: {exc}") from exc
        self.swept_temp_files = self._sweep_stale_writer_files()

    def _sweep_stale_writer_files(self) -> int:
        """Remove temp files left in ``objects/`` by a process that died mid-write
        (``open_writer``'s and ``put_file``'s, which may be as large as a blob;
        ``put``'s, small, sit next to their targets and are not swept); returns
        how many.

        Only files untouched for ``STALE_TEMP_SECONDS``: another process sharing
        the store may be writing one right now, and a live writer touches its
        file at least every ``WRITE_BATCH_BYTES`` it receives."""
        removed = 0
        cutoff = time.time() - STALE_TEMP_SECONDS
        try:
            entries = list(os.scandir(self._objects))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(OSError):  # best effort: gone already, or not ours
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                etag = self._read_header(f, key)
                return f.read(), etag
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._check_root()
            raise KeyNotFound(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"reading {key}: {exc}") from exc

    def head(self, key: str) -> str | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return self._read_header(f, key)
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()
            return None
        except OSError as exc:
            raise StorageUnavailable(f"reading {key}: {exc}") from exc

    def open(self, key: str) -> tuple[BinaryIO, int, str]:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - ownership passes to the caller
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._check_root()
            raise KeyNotFound(key) from exc
        except OSError as exc:
            raise StorageUnavailable(f"reading {key}: {exc}") from exc
        try:
            etag = self._read_header(f, key)
            size_bytes = os.fstat(f.fileno()).st_size - HEADER_BYTES
        except BaseException:
            f.close()
            raise
        # The open descriptor keeps this version readable even if the key is replaced.
        return f, size_bytes, etag

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        validate_prefix(prefix)
        validate_limit(limit)
        result: list[str] = []
        if limit == 0:
            return result
        # Walk only the deepest directory the prefix fully names.
        dir_part, _, _ = prefix.rpartition("/")
        base_dir = self._objects / dir_part if dir_part else self._objects
        base_key = dir_part + "/" if dir_part else ""
        for key in self._walk_sorted(base_dir, base_key, prefix, start_after):
            result.append(key)
            if limit is not None and len(result) >= limit:
                break
        return result

    # -- writes --------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        validate_condition(if_match, if_none_match)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        return self._write(
            key, io.BytesIO(bytes(data)), len(data), if_match, if_none_match, swept=False
        )

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        if not isinstance(size_bytes, int) or size_bytes < 0:
            raise ValueError(f"size_bytes must be a non-negative int, got {size_bytes!r}")
        return self._write(key, fileobj, size_bytes, None, if_none_match, swept=True)

    def open_writer(self, key: str | None = None, *, head_bytes: int = 0) -> LocalWriter:
        if key is not None:
            self._path(key)  # reject a bad key before any data arrives
        validate_head_bytes(head_bytes)
        return LocalWriter(self, key, head_bytes)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            with self._locked(key):
                try:
                    os.unlink(path)
                except (FileNotFoundError, NotADirectoryError):
                    return
                self._fsync_dir(path.parent)
        except OSError as exc:
            raise StorageUnavailable(f"deleting {key}: {exc}") from exc

    def close(self) -> None:
        pass

    # -- internals -----------------------------------------------------------

    def _write(
        self,
        key: str,
        source: BinaryIO,
        size_bytes: int,
        if_match: str | None,
        if_none_match: bool,
        *,
        swept: bool,
    ) -> str:
        path = self._path(key)
        try:
            created = self._make_parent(path, key)
        except OSError as exc:
            raise StorageUnavailable(f"writing {key}: {exc}") from exc
        # A file of any size (put_file) is written in objects/, as open_writer's: a
        # process killed mid-write leaves it where the next LocalStore's sweep finds it.
        # put's small objects (sessions, tree nodes, the log) stay next to their target:
        # a rename across directories, and every writer in one directory, cost landings
        # 10-20% (bench_landing, LocalStore, 1 and 8 agents).
        directory = self._objects if swept else path.parent
        temp = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            # The data is written and fsynced before taking the lock, so the
            # lock is held only for compare + rename.
            etag = self._write_temp(temp, source, size_bytes, key)
            self._sync_created(created)
            self._publish(temp, key, path, if_match=if_match, if_none_match=if_none_match)
            return etag
        except OSError as exc:
            raise StorageUnavailable(f"writing {key}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _write_temp(self, temp: Path, source: BinaryIO, size_bytes: int, key: str) -> str:
        hasher = new_hasher()
        remaining = size_bytes
        with open(temp, "wb") as out:
            out.write(MAGIC + b"\x00" * ETAG_HEX_CHARS)  # etag filled in once known
            while remaining > 0:
                chunk = source.read(min(COPY_CHUNK_BYTES, remaining))
                if not chunk:
                    raise ValueError(
                        f"{key}: source ended after {size_bytes - remaining} of {size_bytes} bytes"
                    )
                hasher.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
            if source.read(1):
                raise ValueError(f"{key}: source holds more than {size_bytes} bytes")
            etag = hasher.hexdigest()
            out.seek(len(MAGIC))
            out.write(etag.encode("ascii"))
            out.flush()
            if self._fsync:
                os.fsync(out.fileno())
        return etag

    def _make_parent(self, path: Path, key: str) -> list[Path]:
        """Create the missing directories above ``path``, ``key``'s file; return them.
        They are durable only once ``_sync_created`` has run: see there."""
        try:
            return self._makedirs(path.parent)
        except NotADirectoryError as exc:
            raise StoreError(f"cannot create {key}: a parent is not a directory") from exc

    def _publish(
        self, temp: Path, key: str, path: Path, *, if_match: str | None, if_none_match: bool
    ) -> None:
        """Rename the fsynced ``temp`` over ``path`` (``key``'s file) under its lock
        stripe, if the condition holds, then fsync the directory. The parent
        directory must exist."""
        with self._locked(key):
            if if_none_match or if_match is not None:
                current = self.head(key)
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"{key} exists")
                if if_match is not None and current != if_match:
                    raise PreconditionFailed(f"{key}: etag is {current!r}, expected {if_match!r}")
            os.replace(temp, path)
            self._fsync_dir(path.parent)

    def _read_header(self, f: BinaryIO, key: str) -> str:
        header = f.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or header[: len(MAGIC)] != MAGIC:
            raise StoreError(f"{key}: not a LocalStore object (bad header)")
        return header[len(MAGIC) :].decode("ascii")

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self._objects / (key + OBJECT_SUFFIX)
        # validate_key already forbids '..' and absolute keys; this is the belt to its braces.
        if not os.path.normpath(path).startswith(str(self._objects) + os.sep):
            raise InvalidKey(f"key escapes the store root: {key!r}")
        return path

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # flock locks belong to the open file description, so opening the stripe
        # per operation excludes other threads of this process as well as other processes.
        stripe = hashlib.blake2b(key.encode("utf-8"), digest_size=2).digest()[0]
        fd = os.open(self._locks / f"{stripe:02x}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _makedirs(self, directory: Path) -> list[Path]:
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                if not d.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d)) from None
        return missing

    def _sync_created(self, created: list[Path]) -> None:
        """fsync the parent of each directory in ``created`` (from ``_makedirs``): a
        new directory entry is durable only then. Writers create their directories
        first and call this after fsyncing their file, before the rename. On a
        journaling filesystem the file's fsync commits the mkdirs with it, so these
        fsyncs find nothing left to commit: a write into a new directory costs two
        journal commits instead of three."""
        for d in created:
            self._fsync_dir(d.parent)

    def _fsync_dir(self, directory: Path) -> None:
        if not self._fsync:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check_root(self) -> None:
        """Raise StorageUnavailable if the objects directory is gone. Called when a key or
        prefix is missing: an absent key is an answer, a store without its root is not
        (it would read as an empty store and every project as empty)."""
        if not self._objects.is_dir():
            raise StorageUnavailable(
                f"the store's objects directory {self._objects} is missing or not a directory"
            )

    def _walk_sorted(
        self, directory: Path, dir_key: str, prefix: str, start_after: str | None
    ) -> Iterator[str]:
        """Yield keys under ``directory`` in key order, pruning whole subtrees."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            self._check_root()  # a prefix without keys is empty; a store without its root is broken
            return
        except OSError as exc:
            raise StorageUnavailable(f"listing {dir_key or 'the store'}: {exc}") from exc
        # Sorting directories as 'name/' makes depth-first order equal key order:
        # every key below 'd' starts with 'd/'.
        items: list[tuple[str, bool, str]] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue  # temp files and lock files, never keys
            if entry.is_dir(follow_symlinks=False):
                items.append((dir_key + name + "/", True, entry.path))
            elif name.endswith(OBJECT_SUFFIX):
                items.append((dir_key + name[: -len(OBJECT_SUFFIX)], False, entry.path))
        items.sort()
        for sort_key, is_dir, path in items:
            if is_dir:
                if not (sort_key.startswith(prefix) or prefix.startswith(sort_key)):
                    continue
                if (
                    start_after is not None
                    and sort_key < start_after
                    and not start_after.startswith(sort_key)
                ):
                    continue  # every key below is < start_after
                yield from self._walk_sorted(Path(path), sort_key, prefix, start_after)
            else:
                if not sort_key.startswith(prefix):
                    continue
                if start_after is not None and sort_key <= start_after:
                    continue
                yield sort_key


class LocalWriter:
    """``LocalStore.open_writer``: the object's temp file, written as data arrives.

    File: ``objects/.tmp-<uuid>``, with the LocalStore header and the head left
    as a hole and written at commit. Once ``BACKGROUND_WRITE_MIN_BYTES`` have
    arrived, the writes move to a helper thread (at most
    ``BACKGROUND_QUEUE_BYTES_MAX`` behind the caller), so the caller's next
    piece is received and prepared while the kernel copies this one. Until
    then, pieces are held and written ``WRITE_BATCH_BYTES`` at a time, one
    ``writev`` each.

    Each write is followed by ``start_writeback`` of its range: the disk gets
    the bytes while the rest is still arriving, so the fsync at commit finds
    little left to write (docs/benchmarks.md, gRPC: ~0.25 ms of ~3.2 ms for a
    1 MiB upload, ~8% for 256 MiB). It is only a start: commit still fsyncs
    the whole file before the rename, so the durability is that of ``put``.

    The etag is 256 random bits, unique to this write, not a hash of the
    content: hashing the whole object again would cost as much CPU as the
    caller's own hash of it (the streams that use a writer are large and
    content-addressed, so the caller hashes them anyway), and an etag only has
    to change whenever the object does. ``put`` of the same bytes gives a
    different etag, as S3's multipart etags differ from its PutObject ones.
    """

    def __init__(self, store: LocalStore, key: str | None, head_bytes: int) -> None:
        self._store = store
        self._key = key
        self._head_bytes = head_bytes
        self._temp = store._objects / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self._received_bytes = 0
        self._background: _BackgroundWrites | None = None
        # The written count belongs to whichever thread writes: the caller's, then
        # only the background writer's. Held pieces are the caller's until written,
        # or queued for the background writer when it starts.
        self._written_bytes = 0
        self._held: list[bytes | memoryview] = []
        self._held_bytes = 0
        self._finished = False
        self._fd: int | None = None
        try:
            self._fd = os.open(
                self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
            os.lseek(self._fd, HEADER_BYTES + head_bytes, os.SEEK_SET)
        except OSError as exc:
            if self._fd is not None:  # opened, then failed: close and remove it
                self.abort()
            self._finished = True
            raise StorageUnavailable(f"writing {self._name()}: {exc}") from exc

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, data: bytes) -> None:
        fd = self._live_fd()
        piece = _stable(data)  # a queued piece must not change
        self._received_bytes += len(piece)
        try:
            if self._background is not None:
                self._background.put(piece)
            elif self._received_bytes >= BACKGROUND_WRITE_MIN_BYTES:
                self._background = _BackgroundWrites(lambda batch: self._write_pieces(fd, batch))
                held, self._held, self._held_bytes = self._held, [], 0
                for earlier in held:
                    self._background.put(earlier)
                self._background.put(piece)
            else:
                self._held.append(piece)
                self._held_bytes += len(piece)
                if self._held_bytes >= WRITE_BATCH_BYTES or len(self._held) >= WRITEV_PIECES_MAX:
                    self._write_held(fd)
        except OSError as exc:
            self.abort()
            raise StorageUnavailable(f"writing {self._name()}: {exc}") from exc

    def commit(
        self, key: str | None = None, *, head: bytes = b"", if_none_match: bool = False
    ) -> str:
        fd = self._live_fd()
        try:
            key = validate_writer_key(self._key, key)
            validate_head(head, self._head_bytes)
            etag = secrets.token_hex(ETAG_HEX_CHARS // 2)
            try:
                if self._background is not None:
                    self._background.close()
                self._write_held(fd)
                _pwrite_all(fd, MAGIC + etag.encode("ascii") + bytes(head), 0)
                path = self._store._path(key)
                # Before the file's fsync, which then makes the new directories durable too.
                created = self._store._make_parent(path, key)
                if self._store._fsync:
                    os.fsync(fd)
                self._close_fd()
                self._store._sync_created(created)
                self._store._publish(
                    self._temp, key, path, if_match=None, if_none_match=if_none_match
                )
            except OSError as exc:
                raise StorageUnavailable(f"writing {key}: {exc}") from exc
            self._finished = True
            return etag
        finally:
            self.abort()  # a no-op after the rename; else removes the temp file

    def abort(self) -> None:
        if self._background is not None:
            # Its error (of any kind) was or will be raised by write() or commit();
            # here only the thread's end matters, so that the file can go.
            with contextlib.suppress(BaseException):
                self._background.close()
        self._close_fd()
        if not self._finished:
            self._finished = True
            # Best effort: abort runs while another error is on its way to the caller
            # (a store gone away fails this too), and must not replace it.
            with contextlib.suppress(OSError):
                os.unlink(self._temp)

    def _name(self) -> str:
        return self._key or "an object"

    def _live_fd(self) -> int:
        if self._finished or self._fd is None:
            raise ValueError("the writer is committed or aborted")
        return self._fd

    def _write_held(self, fd: int) -> None:
        if self._held:
            held, self._held, self._held_bytes = self._held, [], 0
            self._write_pieces(fd, held)

    def _write_pieces(self, fd: int, pieces: list[bytes | memoryview]) -> None:
        start = HEADER_BYTES + self._head_bytes + self._written_bytes
        _writev_all(fd, pieces)
        written = sum(map(len, pieces))
        self._written_bytes += written
        if self._store._fsync:
            start_writeback(fd, start, written)

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class _BackgroundWrites:
    """A helper thread that passes queued pieces to ``write_pieces`` in order, in
    batches of whatever has queued up (one ``writev`` for up to ``WRITEV_PIECES_MAX``
    pieces), at most ``BACKGROUND_QUEUE_BYTES_MAX`` behind ``put``. The first error
    stops it; ``put`` and ``close`` raise it.

    Each side wakes the other only when it has work for it: the thread once
    ``BACKGROUND_WAKE_BYTES`` have queued up (or when ``put`` waits for room, or
    at close), ``put`` when it waits for room. A blob arrives as thousands of
    pieces, and a wake-up per piece cost as much as writing them."""

    def __init__(self, write_pieces: Callable[[list[bytes | memoryview]], None]) -> None:
        self._write_pieces = write_pieces
        self._ready = threading.Condition()
        self._pieces: collections.deque[bytes | memoryview] = collections.deque()
        self._queued_bytes = 0
        self._closing = False
        self._put_waiting = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="localstore-writer", daemon=True)
        self._thread.start()

    def put(self, piece: bytes | memoryview) -> None:
        with self._ready:
            # One piece may exceed the bound alone; it then waits for an empty queue.
            while (
                self._queued_bytes
                and self._queued_bytes + len(piece) > BACKGROUND_QUEUE_BYTES_MAX
                and self._error is None
            ):
                self._put_waiting = True
                self._ready.notify_all()  # the thread may be waiting for more: write this
                self._ready.wait()
            if self._error is not None:
                raise self._error
            if self._queued_bytes < BACKGROUND_WAKE_BYTES <= self._queued_bytes + len(piece):
                self._ready.notify_all()  # enough for the thread, which may be waiting
            self._pieces.append(piece)
            self._queued_bytes += len(piece)

    def close(self) -> None:
        """Wait until every queued piece is written (or the first error); raise that error."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._ready:
                while (
                    self._queued_bytes < BACKGROUND_WAKE_BYTES
                    and not self._closing
                    and not self._put_waiting
                ):
                    self._ready.wait()
                if not self._pieces:
                    return
                batch = list(itertools.islice(self._pieces, WRITEV_PIECES_MAX))
            try:
                self._write_pieces(batch)
            except BaseException as exc:  # noqa: BLE001 - any error: the writer must hear it
                # Not only OSError: a thread that died silently (MemoryError, "can't start
                # new thread") would let close() report success over a truncated file, or
                # leave put() waiting for room forever.
                with self._ready:
                    self._error = exc
                    self._pieces.clear()
                    self._ready.notify_all()
                return
            with self._ready:
                for _ in batch:
                    self._pieces.popleft()
                self._queued_bytes -= sum(map(len, batch))
                if self._put_waiting:
                    self._put_waiting = False
                    self._ready.notify_all()


def _stable(data: bytes | bytearray | memoryview) -> bytes | memoryview:
    """``data``, or a copy of it if it could change after ``write`` returns: bytes, and
    a view of bytes (a slice of a received message, say), are immutable and pass as
    they are; anything else (bytearray, a view of one or of an mmap) is copied.

    A view is queued as a new view (``cast`` makes one) of the same bytes, never the
    caller's own: the caller may release theirs once ``write`` returns, which would
    leave the helper thread a view it cannot read."""
    if type(data) is bytes:
        return data
    if type(data) is memoryview and type(data.obj) is bytes and data.c_contiguous:
        return data.cast("B")
    return bytes(data)


def _load_sync_file_range() -> Callable[[int, int, int], int] | None:
    """Linux's ``sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)``, or None
    where libc has no such call (then ``start_writeback`` does nothing)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return lambda fd, offset, nbytes: function(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of dirty pages, do not wait
_sync_file_range = _load_sync_file_range()  # looked up once at import; never changes


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to start writing ``nbytes`` at ``offset`` of ``fd`` to disk, and
    return without waiting for it (ctypes drops the GIL for the call). A hint, not
    a durability step: it syncs no metadata and its errors are ignored, since a
    failed write-out is reported again by the fsync that every commit does."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, nbytes)


def _writev_all(fd: int, pieces: list[bytes | memoryview]) -> None:
    views = [memoryview(piece) for piece in pieces]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
