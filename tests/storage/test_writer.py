"""Store.open_writer: objects of unknown length, streamed in and published at commit.

Every backend (LocalStore, S3Store on moto, CachedStore over each) must
publish the whole object or nothing, and leave nothing behind on failure:
no LocalStore temp file, no incomplete S3 multipart upload.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from micforge.storage import CachedStore, LocalStore, PreconditionFailed, S3Store, keys
from micforge.storage import local as local_module

MiB = 1024 * 1024
BLOB = keys.blob("p", "ab" + "0" * 62)
HEAD = b"H" * 48


@pytest.fixture(params=["local", "s3", "cached-local", "cached-s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind: str = request.param
    if kind.endswith("s3"):
        # Small parts, so that a few MiB already take the multipart path.
        backend = request.getfixturevalue("make_s3_store")(
            multipart_threshold_bytes=5 * MiB, multipart_chunk_bytes=5 * MiB
        )
    else:
        backend = request.getfixturevalue("local_store")
    if kind.startswith("cached"):
        return CachedStore(
            backend, ram_bytes=1 << 20, disk_dir=tmp_path / "cache", disk_bytes=1 << 20
        )
    return backend


@pytest.fixture
def leftovers(s3_credentials: dict[str, str]) -> Iterator[Callable[[Any], list[str]]]:
    """What a store holds besides its objects: temp files, or incomplete multipart uploads."""
    client = boto3.session.Session().client("s3", **s3_credentials)

    def find(store: Any) -> list[str]:
        backend = store.store if isinstance(store, CachedStore) else store
        if isinstance(backend, LocalStore):
            return [
                str(path)
                for path in (backend.root / "objects").rglob("*")
                if path.name.startswith(local_module.TEMP_PREFIX)
            ]
        assert isinstance(backend, S3Store)
        uploads = client.list_multipart_uploads(Bucket=backend.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]

    yield find
    client.close()


def _pieces(data: bytes, piece_bytes: int) -> Iterator[bytes]:
    for start in range(0, len(data), piece_bytes):
        yield data[start : start + piece_bytes]


# 0 and small: one PutObject on S3, inline writes on LocalStore; 13 MiB: three
# 5 MiB parts on S3 and LocalStore's background writes (from 4 MiB).
@pytest.mark.parametrize("size", [0, 1000, 13 * MiB + 5])
@pytest.mark.parametrize("key_at", ["open", "commit"])
def test_writes_head_and_body_and_publishes_at_commit(
    store: Any, leftovers: Callable[[Any], list[str]], size: int, key_at: str
) -> None:
    body = os.urandom(size)
    with store.open_writer(BLOB if key_at == "open" else None, head_bytes=len(HEAD)) as writer:
        for piece in _pieces(body, 256 * 1024):
            writer.write(piece)
        assert store.head(BLOB) is None  # invisible until commit
        etag = writer.commit(BLOB, head=HEAD, if_none_match=True)
    assert store.get(BLOB) == (HEAD + body, etag)
    assert store.head(BLOB) == etag
    reader, size_bytes, open_etag = store.open(BLOB)
    with reader:
        assert (reader.read(), size_bytes, open_etag) == (HEAD + body, len(HEAD) + size, etag)
    assert leftovers(store) == []


def test_without_a_head_is_an_ordinary_object(store: Any) -> None:
    with store.open_writer() as writer:
        writer.write(b"abc")
        writer.write(bytearray(b"def"))
        writer.write(memoryview(b"ghi"))
        etag = writer.commit("plain")
    assert store.get("plain") == (b"abcdefghi", etag)


def test_a_buffer_reused_after_write_does_not_change_the_object(store: Any) -> None:
    # Past 4 MiB LocalWriter queues pieces for a helper thread: it may keep views of
    # immutable bytes as they are, but must copy what the caller can still change.
    pieces = [os.urandom(1 * MiB) for _ in range(9)]
    reused = bytearray(1 * MiB)
    with store.open_writer() as writer:
        for n, piece in enumerate(pieces):
            if n % 3 == 0:
                writer.write(piece)  # bytes
            elif n % 3 == 1:
                writer.write(memoryview(piece)[: MiB // 2])  # a view of bytes, then the rest
                writer.write(memoryview(piece)[MiB // 2 :])
            else:
                reused[:] = piece
                writer.write(memoryview(reused))  # a view of a buffer about to change
                reused[:] = bytes(MiB)
        etag = writer.commit("reused")
    assert store.get("reused") == (b"".join(pieces), etag)


def test_a_view_released_after_write_does_not_break_the_writer(store: Any) -> None:
    # The caller's view is theirs once write() returns: releasing it must not leave a
    # queued piece (LocalWriter past 4 MiB keeps views of bytes) unreadable.
    pieces = [os.urandom(1 * MiB) for _ in range(9)]
    with store.open_writer() as writer:
        for piece in pieces:
            with memoryview(piece) as view:
                writer.write(view)
        etag = writer.commit("released")
    assert store.get("released") == (b"".join(pieces), etag)


def test_a_view_of_wider_items_is_written_as_its_bytes(store: Any) -> None:
    # len() of a view counts items, not bytes: 8-byte items, and two dimensions.
    pieces = [os.urandom(1 * MiB) for _ in range(9)]
    with store.open_writer() as writer:
        for n, piece in enumerate(pieces):
            view = memoryview(piece).cast("Q")
            writer.write(view if n % 2 else view.cast("B").cast("B", shape=[1024, 1024]))
        etag = writer.commit("wide")
    assert store.get("wide") == (b"".join(pieces), etag)


def test_local_writer_finishes_writes_the_kernel_took_only_part_of(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regular file rarely takes less than asked (a signal, a file size limit), so
    # make writev stop at odd sizes, mid-piece and on piece boundaries alike.
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        limit = [1, 4096, 333_333, 1 << 30][len(calls) % 4]
        taken: list[memoryview] = []
        for buffer in buffers:
            if limit <= 0:
                break
            taken.append(buffer[:limit])
            limit -= len(buffer)
        calls.append(len(taken))
        return real_writev(fd, taken)

    monkeypatch.setattr(local_module.os, "writev", short_writev)
    body = os.urandom(9 * MiB + 7)
    with local_store.open_writer(head_bytes=len(HEAD)) as writer:
        for piece in _pieces(body, 100_000):
            writer.write(piece)
        etag = writer.commit(BLOB, head=HEAD)
    assert max(calls) > 1  # the background writer did batch pieces
    assert local_store.get(BLOB) == (HEAD + body, etag)


@pytest.mark.parametrize("size", [1000, 13 * MiB])
def test_if_none_match_on_an_existing_key_publishes_nothing(
    store: Any, leftovers: Callable[[Any], list[str]], size: int
) -> None:
    etag = store.put(BLOB, b"first")
    with store.open_writer(BLOB, head_bytes=len(HEAD)) as writer:
        writer.write(os.urandom(size))
        with pytest.raises(PreconditionFailed):
            writer.commit(head=HEAD, if_none_match=True)
    assert store.get(BLOB) == (b"first", etag)
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [1000, 13 * MiB])
def test_a_failure_mid_stream_publishes_nothing_and_leaves_nothing(
    store: Any, leftovers: Callable[[Any], list[str]], size: int
) -> None:
    with pytest.raises(ConnectionError), store.open_writer(BLOB, head_bytes=len(HEAD)) as writer:
        for piece in _pieces(os.urandom(size), MiB):
            writer.write(piece)
        raise ConnectionError("client went away")
    assert store.head(BLOB) is None
    assert leftovers(store) == []


def test_misuse_is_a_value_error_and_publishes_nothing(
    store: Any, leftovers: Callable[[Any], list[str]]
) -> None:
    with store.open_writer(head_bytes=len(HEAD)) as writer:
        writer.write(b"data")
        with pytest.raises(ValueError):
            writer.commit(BLOB, head=b"short")
        with pytest.raises(ValueError):  # the failed commit finished the writer
            writer.write(b"more")
    with store.open_writer(BLOB) as writer, pytest.raises(ValueError):
        writer.commit("another/key")
    with store.open_writer() as writer, pytest.raises(ValueError):
        writer.commit()  # a key is needed at open or at commit
    with pytest.raises(ValueError):
        store.open_writer(head_bytes=-1)
    with pytest.raises(ValueError):
        store.open_writer("../escape")
    with store.open_writer() as writer:
        writer.commit(BLOB)
        with pytest.raises(ValueError):
            writer.write(b"after the commit")
        writer.abort()  # a no-op once committed
    assert store.get(BLOB)[0] == b""
    assert leftovers(store) == []


def test_concurrent_writers_to_one_key_publish_exactly_one(
    store: Any, leftovers: Callable[[Any], list[str]]
) -> None:
    outcomes: list[str] = []
    bodies = {n: os.urandom(100_000) for n in range(6)}
    start = threading.Barrier(len(bodies))

    def write(n: int) -> None:
        with store.open_writer(BLOB) as writer:
            writer.write(bodies[n])
            start.wait()
            try:
                writer.commit(if_none_match=True)
                outcomes.append(f"won {n}")
            except PreconditionFailed:
                outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(n,)) for n in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and len(outcomes) == len(bodies)
    assert store.get(BLOB)[0] == bodies[int(winners[0].split()[1])]
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [0, 1, 300_000, MiB, 9 * MiB + 7])
def test_local_writer_starts_writeback_of_every_byte_it_writes(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    # Each write is followed by sync_file_range(WRITE) of its range (the real call still
    # runs), so that the fsync at commit finds little left: together the ranges are
    # the whole data, in order, by the caller's thread and then the helper's.
    monkeypatch.setattr(local_module, "BACKGROUND_WRITE_MIN_BYTES", 4 * MiB)
    started: list[tuple[int, int]] = []
    real = local_module.start_writeback

    def recording(fd: int, offset: int, nbytes: int) -> None:
        started.append((offset, nbytes))
        real(fd, offset, nbytes)

    monkeypatch.setattr(local_module, "start_writeback", recording)
    body = os.urandom(size)
    with local_store.open_writer(head_bytes=len(HEAD)) as writer:
        for piece in _pieces(body, 100_000):
            writer.write(piece)
        etag = writer.commit(BLOB, head=HEAD)
    assert local_store.get(BLOB) == (HEAD + body, etag)
    offset = local_module.HEADER_BYTES + len(HEAD)
    for start, nbytes in started:
        assert (start, nbytes > 0) == (offset, True)
        offset += nbytes
    assert offset == local_module.HEADER_BYTES + len(HEAD) + size
    if size >= MiB:
        # Pieces are held and written a batch at a time (or a helper's batch), not
        # one call per 100 KB piece.
        assert len(started) <= size // local_module.WRITE_BATCH_BYTES + 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_writeback_is_really_started_on_linux() -> None:
    # The writer tests record start_writeback's calls; this one checks that on Linux
    # they reach the real sync_file_range, not a stand-in that does nothing.
    assert local_module._sync_file_range is not None
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 4096)
        f.flush()
        assert local_module._sync_file_range(f.fileno(), 0, 4096) == 0


def test_local_writer_without_fsync_starts_no_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    monkeypatch.setattr(local_module, "start_writeback", lambda fd, o, n: started.append(n))
    store = LocalStore(tmp_path / "store", fsync=False)
    with store.open_writer() as writer:
        writer.write(os.urandom(MiB))
        writer.commit("k")
    assert started == []


def test_local_writer_holds_at_most_one_writev_of_tiny_pieces(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces are held until WRITE_BATCH_BYTES, but never more of them than one writev
    # takes (Linux: 1024 buffers, else EINVAL).
    monkeypatch.setattr(local_module, "WRITEV_PIECES_MAX", 1024)
    real_writev = os.writev
    counts: list[int] = []

    def counting_writev(fd: int, buffers: list[memoryview]) -> int:
        counts.append(len(buffers))
        return real_writev(fd, buffers)

    monkeypatch.setattr(local_module.os, "writev", counting_writev)
    body = os.urandom(5000)
    with local_store.open_writer() as writer:
        for n in range(len(body)):
            writer.write(body[n : n + 1])
        etag = writer.commit("tiny")
    assert local_store.get("tiny") == (body, etag)
    assert max(counts) == 1024


def test_local_write_error_in_the_background_publishes_nothing(tmp_path: Path) -> None:
    # A real write error: a file size limit (EFBIG) hit by the background writer.
    script = f"""
import os, resource, signal
from micforge.storage import LocalStore, StorageUnavailable
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
store = LocalStore({str(tmp_path / "store")!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (6 * 2**20, resource.RLIM_INFINITY))
try:
    with store.open_writer("k") as writer:
        for _ in range(16):
            writer.write(os.urandom(2**20))
        writer.commit()
except StorageUnavailable as exc:
    print("unavailable", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("unavailable"), result.stdout + result.stderr
    objects = tmp_path / "store" / "objects"
    assert [p.name for p in objects.rglob("*")] == []


@pytest.mark.parametrize("queue_full", [False, True])
def test_local_background_writer_dying_of_any_error_publishes_nothing_and_never_hangs(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch, queue_full: bool
) -> None:
    # Not only OSError: whatever the helper thread dies of (here, in the call that
    # starts writeback after its write; MemoryError or a failed thread start are
    # others), the writer must report it, not publish a truncated object, and not
    # leave write() waiting for room.
    monkeypatch.setattr(local_module, "BACKGROUND_WRITE_MIN_BYTES", MiB)
    monkeypatch.setattr(local_module, "BACKGROUND_QUEUE_BYTES_MAX", MiB if queue_full else 64 * MiB)
    real_start_writeback = local_module.start_writeback

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        if threading.current_thread().name == "localstore-writer" and offset + nbytes > 2 * MiB:
            raise RuntimeError("the helper died")
        real_start_writeback(fd, offset, nbytes)

    monkeypatch.setattr(local_module, "start_writeback", start_writeback)
    outcome: list[BaseException | str] = []

    def upload() -> None:
        try:
            with local_store.open_writer(BLOB) as writer:
                for piece in _pieces(os.urandom(12 * MiB), 512 * 1024):
                    writer.write(piece)
                writer.commit()
            outcome.append("committed")
        except BaseException as exc:  # noqa: BLE001 - the test reports what came out
            outcome.append(exc)

    worker = threading.Thread(target=upload, name="uploader")
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the upload hung"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert local_store.head(BLOB) is None
    assert list((local_store.root / "objects").rglob(".tmp-*")) == []
