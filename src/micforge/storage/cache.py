"""CachedStore: RAM LRU -> local-disk LRU -> the wrapped store.

Only immutable keys (``keys.is_immutable``: tree nodes, blobs, landing
records, rollups) are ever served from a tier; heads, sessions and anything
else go straight to the store, so a cache can never show a stale mutable
object. Misses are never cached (a log position that does not exist yet
must be asked again).

Disk tier: one file per object, ``objects/<hh>/<name>`` where ``name`` is a
hash of (store identity, key), written to ``tmp/`` and renamed into place, so
several processes can share one directory. Each file carries a checksum over
(name, etag, data); a file that fails it is deleted and refetched, never
served. LRU order is the file mtime, bumped on every disk hit. The byte bound
is enforced by scanning the directory: exactly for a single process, and
within ``processes * disk_bytes / RESCAN_FRACTION`` for several processes
sharing it (each rescans after adding that many bytes of its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from micforge.storage import keys
from micforge.storage.base import ObjectWriter, Store, StoreError

DISK_MAGIC = b"MFC\x01"
CHECKSUM_BYTES = 32
_HEADER = struct.Struct(f"<4s{CHECKSUM_BYTES}sH")  # magic, checksum, etag length
# An object bigger than 1/ITEM_FRACTION of a tier is not cached there: one
# large blob must not flush a whole tier of small tree nodes.
ITEM_FRACTION = 8
RESCAN_FRACTION = 16
EVICT_TO_NUMERATOR, EVICT_TO_DENOMINATOR = 7, 8  # evict down to 7/8 to amortise scans
STALE_TEMP_S = 3600


@dataclass(frozen=True)
class CacheStats:
    hits_ram: int = 0
    hits_disk: int = 0
    misses: int = 0  # immutable-key reads that went to the store

    @property
    def hit_ratio(self) -> float:
        total = self.hits_ram + self.hits_disk + self.misses
        return (self.hits_ram + self.hits_disk) / total if total else 0.0


class CachedStore:
    """A Store wrapper; implements the Store protocol itself."""

    def __init__(
        self,
        store: Store,
        *,
        ram_bytes: int,
        disk_dir: str | os.PathLike[str] | None = None,
        disk_bytes: int = 0,
        namespace: str | None = None,
    ) -> None:
        if ram_bytes < 0 or disk_bytes < 0:
            raise ValueError("cache sizes must be non-negative")
        if disk_dir is not None and disk_bytes <= 0:
            raise ValueError("a disk cache needs disk_bytes > 0")
        self.store = store
        # Two stores sharing a cache directory must not see each other's log/{n}.
        self._namespace = namespace if namespace is not None else repr(store)
        self._ram = _RamLru(ram_bytes)
        self._disk = _DiskLru(Path(disk_dir), disk_bytes) if disk_dir is not None else None
        self._stats_lock = threading.Lock()
        self._hits_ram = 0
        self._hits_disk = 0
        self._misses = 0

    def __repr__(self) -> str:
        return f"CachedStore({self.store!r})"

    @property
    def stats(self) -> CacheStats:
        with self._stats_lock:
            return CacheStats(self._hits_ram, self._hits_disk, self._misses)

    # -- Store protocol ------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        if not keys.is_immutable(key):
            return self.store.get(key)
        cached = self._lookup(key)
        if cached is not None:
            return cached
        data, etag = self.store.get(key)
        self._ram.put(key, data, etag)
        if self._disk is not None:
            self._disk.put(self._disk_name(key), data, etag)
        return data, etag

    def head(self, key: str) -> str | None:
        if keys.is_immutable(key):
            cached = self._ram.get(key)
            if cached is not None:
                return cached[1]
        return self.store.head(key)

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        etag = self.store.put(key, data, if_match=if_match, if_none_match=if_none_match)
        if keys.is_immutable(key):
            # Just written means likely read soon (landing writes nodes, then reads them).
            self._ram.put(key, bytes(data), etag)
        return etag

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        return self.store.put_file(key, fileobj, size_bytes, if_none_match=if_none_match)

    def open_writer(self, key: str | None = None, *, head_bytes: int = 0) -> ObjectWriter:
        # Like put_file: streamed objects are large, so they go to the store uncached.
        return self.store.open_writer(key, head_bytes=head_bytes)

    def open(self, key: str) -> tuple[BinaryIO, int, str]:
        if keys.is_immutable(key):
            cached = self._lookup(key)
            if cached is not None:
                data, etag = cached
                return io.BytesIO(data), len(data), etag
        # Streams are for large objects, which the tiers would not hold anyway.
        return self.store.open(key)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        return self.store.list(prefix, start_after=start_after, limit=limit)

    def delete(self, key: str) -> None:
        self.store.delete(key)
        # Only this process's tiers are invalidated; immutable objects are deleted
        # only by garbage collection of unreachable objects, which nobody reads.
        self._ram.discard(key)
        if self._disk is not None:
            self._disk.discard(self._disk_name(key))

    def close(self) -> None:
        self.store.close()

    # -- internals -----------------------------------------------------------

    def _lookup(self, key: str) -> tuple[bytes, str] | None:
        cached = self._ram.get(key)
        if cached is not None:
            self._count("ram")
            return cached
        if self._disk is not None:
            cached = self._disk.get(self._disk_name(key))
            if cached is not None:
                self._count("disk")
                self._ram.put(key, cached[0], cached[1])
                return cached
        self._count("miss")
        return None

    def _count(self, what: str) -> None:
        with self._stats_lock:
            if what == "ram":
                self._hits_ram += 1
            elif what == "disk":
                self._hits_disk += 1
            else:
                self._misses += 1

    def _disk_name(self, key: str) -> str:
        return hashlib.blake2b(f"{self._namespace}\x00{key}".encode(), digest_size=20).hexdigest()


class _RamLru:
    """A byte-bounded LRU of (data, etag); thread-safe."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.item_max_bytes = capacity_bytes // ITEM_FRACTION
        self.size_bytes = 0
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, data: bytes, etag: str) -> None:
        if len(data) > self.item_max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size_bytes -= len(old[0])
            self._items[key] = (data, etag)
            self.size_bytes += len(data)
            while self.size_bytes > self.capacity_bytes:
                _, (evicted, _) = self._items.popitem(last=False)
                self.size_bytes -= len(evicted)

    def discard(self, key: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size_bytes -= len(old[0])


class _DiskLru:
    """A byte-bounded LRU of files, safe for several processes sharing ``root``."""

    def __init__(self, root: Path, capacity_bytes: int) -> None:
        self.root = root
        self.capacity_bytes = capacity_bytes
        self.item_max_bytes = capacity_bytes // ITEM_FRACTION
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        try:
            self._objects.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create cache directory {root}: {exc}") from exc
        self._lock = threading.Lock()
        self._scanned_bytes = 0
        self._added_since_scan_bytes = 0
        self._scan_and_evict()

    def get(self, name: str) -> tuple[bytes, str] | None:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError:
            return None  # an unreadable cache is a miss, never an error
        parsed = _decode(name, raw)
        if parsed is None:
            # Corrupt or truncated: never serve it, and remove it so it is refetched.
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        with contextlib.suppress(OSError):
            # LRU: mtime is the last use. Explicit nanoseconds, because the kernel's
            # own timestamps are coarse (a few ms) and would tie recent files.
            now_ns = time.time_ns()
            os.utime(path, ns=(now_ns, now_ns))
        return parsed

    def put(self, name: str, data: bytes, etag: str) -> None:
        if len(data) > self.item_max_bytes:
            return
        encoded = _encode(name, data, etag)
        path = self._path(name)
        temp = self._tmp / f"{uuid.uuid4().hex}"
        try:
            path.parent.mkdir(exist_ok=True)
            with open(temp, "wb") as f:
                f.write(encoded)
            now_ns = time.time_ns()
            os.utime(temp, ns=(now_ns, now_ns))
            # No fsync: a cache file lost or torn by a crash fails its checksum and is refetched.
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return  # a full or broken cache disk must not fail reads
        with self._lock:
            self._added_since_scan_bytes += len(encoded)
            over = self._scanned_bytes + self._added_since_scan_bytes > self.capacity_bytes
            stale = self._added_since_scan_bytes > self.capacity_bytes // RESCAN_FRACTION
            if over or stale:
                self._scan_and_evict()

    def discard(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(name))

    def _path(self, name: str) -> Path:
        return self._objects / name[:2] / name

    def _scan_and_evict(self) -> None:
        """Rescan the directory (other processes write too) and evict oldest-first."""
        files: list[tuple[int, int, str]] = []
        for sub in _scandir(self._objects):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in _scandir(Path(sub.path)):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # deleted by another process meanwhile
                files.append((st.st_mtime_ns, st.st_size, entry.path))
        now = time.time()
        for entry in _scandir(self._tmp):
            # Temp files of crashed writers; live ones are renamed within milliseconds.
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STALE_TEMP_S:
                    os.unlink(entry.path)
        total = sum(size for _, size, _ in files)
        if total > self.capacity_bytes:
            target = self.capacity_bytes * EVICT_TO_NUMERATOR // EVICT_TO_DENOMINATOR
            files.sort()
            for _, size, path in files:
                if total <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                total -= size  # counted even if another process deleted it first
        self._scanned_bytes = total
        self._added_since_scan_bytes = 0


def _scandir(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except OSError:
        return []


def _checksum(name: str, etag_bytes: bytes, data: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES)
    h.update(name.encode("ascii"))
    h.update(struct.pack("<H", len(etag_bytes)))
    h.update(etag_bytes)
    h.update(data)
    return h.digest()


def _encode(name: str, data: bytes, etag: str) -> bytes:
    etag_bytes = etag.encode("utf-8")
    header = _HEADER.pack(DISK_MAGIC, _checksum(name, etag_bytes, data), len(etag_bytes))
    return header + etag_bytes + data


def _decode(name: str, raw: bytes) -> tuple[bytes, str] | None:
    if len(raw) < _HEADER.size:
        return None
    magic, checksum, etag_len = _HEADER.unpack_from(raw)
    if magic != DISK_MAGIC or len(raw) < _HEADER.size + etag_len:
        return None
    etag_bytes = raw[_HEADER.size : _HEADER.size + etag_len]
    data = raw[_HEADER.size + etag_len :]
    if _checksum(name, etag_bytes, data) != checksum:
        return None
    try:
        return data, etag_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
