"""Blobs: hashing, dedup, streaming, limits, integrity on read."""

from __future__ import annotations

import os

import boto3
import pytest
import zstandard

from micforge.core import blob_hash
from micforge.errors import Corrupt, Forbidden, InvalidRequest, NotFound, TooLarge
from micforge.service.blobs import (
    HEADER_BYTES,
    VERIFY_BEFORE_SERVING_BYTES,
    _encoding,
    decode_header,
)
from micforge.service.rawframe import FRAME_HEADER, frame_bytes
from micforge.storage import LocalStore, keys

from .conftest import World

MiB = 1024 * 1024


def _chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_put_get_roundtrip_and_dedup(any_world: World) -> None:
    w = any_world
    data = b"hello micforge" * 100
    view, created = w.services.blobs.put(w.writer, w.project, data)
    assert created and view == {"hash": blob_hash(data).hex(), "size": len(data)}
    again, created_again = w.services.blobs.put(w.owner, w.project, data)
    assert again == view and not created_again
    size, chunks = w.services.blobs.open(w.reader, w.project, view["hash"])
    assert size == len(data) and b"".join(chunks) == data
    assert w.services.blobs.stat(w.reader, w.project, view["hash"]) == len(data)


@pytest.mark.parametrize("size", [0, 1, 65_536, VERIFY_BEFORE_SERVING_BYTES + 12_345])
def test_streams_with_and_without_a_known_size(world: World, size: int) -> None:
    w = world
    data = os.urandom(size)
    a, _ = w.services.blobs.put_stream(
        w.owner, w.project, _chunks(data, 65_536), expected_size=size
    )
    b, created = w.services.blobs.put_stream(w.owner, w.project, _chunks(data, 10_000))
    assert a == b == {"hash": blob_hash(data).hex(), "size": size} and not created
    got_size, chunks = w.services.blobs.open(w.owner, w.project, a["hash"], chunk_bytes=100_000)
    parts = list(chunks)
    assert got_size == size and b"".join(parts) == data
    assert all(len(p) <= 100_000 for p in parts)


# Below and above the size from which zstd compresses on worker threads (the first
# chunk compresses, so the larger size takes them): the stored object must be the
# same format either way (docs/formats.md "Blob objects").
# Content that starts incompressible is stored as a frame of raw blocks, which
# must read back the same way.
@pytest.mark.parametrize("size", [100_000, 6 * 1024 * 1024 + 7])
@pytest.mark.parametrize("how", ["put", "put_stream"])
@pytest.mark.parametrize("starts", ["compressible", "random"])
def test_stored_object_is_a_header_and_one_frame_with_its_size(
    world: World, size: int, how: str, starts: str
) -> None:
    w = world
    text = (b"compressible " * size)[: size // 2]
    noise = os.urandom(size - size // 2)
    data = text + noise if starts == "compressible" else noise + text
    if how == "put":
        view, _ = w.services.blobs.put(w.owner, w.project, data)
    else:
        view, _ = w.services.blobs.put_stream(
            w.owner, w.project, _chunks(data, 256 * 1024), expected_size=size
        )
    stored, _ = w.store.get(keys.blob(w.project, view["hash"]))
    assert decode_header(stored, blob_hash(data)) == size
    frame = stored[HEADER_BYTES:]
    assert zstandard.get_frame_parameters(frame).content_size == size
    reader = zstandard.ZstdDecompressor().decompressobj()
    assert reader.decompress(frame) == data
    assert reader.eof and reader.unused_data == b""  # exactly one frame, nothing after it
    # A raw frame is the content plus 3 bytes per 128 KiB block; zstd saves ~half here.
    assert frame.startswith(FRAME_HEADER) == (starts == "random")
    assert (len(frame) == frame_bytes(size)) == (starts == "random")


def test_the_first_chunk_decides_how_a_blob_is_encoded() -> None:
    text = b"source code, say " * 4096
    noise = os.urandom(64 * 1024)
    assert _encoding(64 * 1024, sample=noise) == "raw"
    assert _encoding(64 * 1024, sample=text) == "zstd"
    assert _encoding(4 * MiB, sample=text) == "zstd-threads"
    assert _encoding(4 * MiB, sample=noise) == "raw"
    # Content that zstd shrinks only a little: one thread, no raw blocks.
    assert _encoding(4 * MiB, sample=noise[: 15 * 1024] + bytes(1024)) == "zstd"  # ~0.94
    # Too small to be worth judging, or a first chunk too short to judge by.
    assert _encoding(64 * 1024 - 1, sample=noise) == "zstd"
    assert _encoding(4 * MiB, sample=noise[:1000]) == "zstd"
    assert _encoding(0, sample=b"") == "zstd"


def test_limits_and_mismatches_store_nothing(make_world) -> None:
    w = make_world(blob_max_bytes=1000)
    blobs = w.services.blobs
    with pytest.raises(TooLarge):
        blobs.put(w.owner, w.project, b"x" * 1001)
    with pytest.raises(TooLarge):
        blobs.put_stream(w.owner, w.project, _chunks(b"x" * 1001, 100))
    with pytest.raises(TooLarge):
        blobs.put_stream(w.owner, w.project, iter([b"x"]), expected_size=1001)
    with pytest.raises(InvalidRequest):
        blobs.put_stream(w.owner, w.project, _chunks(b"x" * 10, 3), expected_size=11)
    with pytest.raises(InvalidRequest):
        blobs.put_stream(w.owner, w.project, _chunks(b"x" * 12, 3), expected_size=11)
    with pytest.raises(InvalidRequest):
        blobs.put_stream(w.owner, w.project, iter([b"abc"]), expected_hash="0" * 64)
    assert w.store.list(f"projects/{w.project}/blobs/") == []


@pytest.mark.parametrize("size", [10, 3 * MiB])
def test_an_announced_blob_the_project_has_is_checked_but_not_written_again(
    make_world, size: int
) -> None:
    from .wrappers import CountingStore

    w = make_world(wrap=CountingStore)
    blobs = w.services.blobs
    data = os.urandom(size)
    digest = blob_hash(data).hex()
    view, created = blobs.put_stream(w.owner, w.project, _chunks(data, MiB), expected_size=size)
    assert created and w.store.writers_opened == 1
    again, created = blobs.put_stream(
        w.owner, w.project, _chunks(data, MiB), expected_size=size, expected_hash=digest
    )
    assert again == view and not created
    assert w.store.writers_opened == 1  # no temp file, no S3 parts for a blob it has
    # The bytes are still checked against what was announced.
    other = os.urandom(size)
    with pytest.raises(InvalidRequest, match=blob_hash(other).hex()):
        blobs.put_stream(
            w.owner, w.project, _chunks(other, MiB), expected_size=size, expected_hash=digest
        )
    with pytest.raises(InvalidRequest, match="not the announced"):
        blobs.put_stream(
            w.owner, w.project, _chunks(data[:-1], MiB), expected_size=size, expected_hash=digest
        )
    with pytest.raises(InvalidRequest, match="more than the announced"):
        blobs.put_stream(
            w.owner, w.project, _chunks(data + b"x", MiB), expected_size=size, expected_hash=digest
        )
    assert w.store.writers_opened == 1
    assert w.store.list(f"projects/{w.project}/blobs/") == [keys.blob(w.project, digest)]


def test_a_broken_stream_stores_nothing(world: World) -> None:
    w = world

    def broken():
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        w.services.blobs.put_stream(w.owner, w.project, broken())
    assert w.store.list(f"projects/{w.project}/blobs/") == []


def test_a_large_stream_that_breaks_or_runs_short_stores_nothing(world: World) -> None:
    # Large enough for zstd's worker threads: abandoning them mid-frame must not store anything.
    w = world
    size = 8 * 1024 * 1024

    def broken():
        yield os.urandom(size // 2)
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        w.services.blobs.put_stream(w.owner, w.project, broken(), expected_size=size)
    with pytest.raises(InvalidRequest):
        w.services.blobs.put_stream(
            w.owner, w.project, iter([os.urandom(size - 1)]), expected_size=size
        )
    assert w.store.list(f"projects/{w.project}/blobs/") == []


def test_permissions_and_missing(world: World) -> None:
    w = world
    with pytest.raises(Forbidden):
        w.services.blobs.put(w.reader, w.project, b"x")
    with pytest.raises(NotFound):
        w.services.blobs.put(w.stranger, w.project, b"x")
    with pytest.raises(NotFound):
        w.services.blobs.open(w.owner, w.project, "cd" * 32)
    with pytest.raises(InvalidRequest):
        w.services.blobs.open(w.owner, w.project, "CD" * 32)


@pytest.mark.parametrize("size", [100, VERIFY_BEFORE_SERVING_BYTES + 1])
def test_a_corrupt_object_is_never_served(make_world, size: int) -> None:
    w = make_world(cache_ram_bytes=0)  # read through to the tampered store
    data = os.urandom(size)
    h = w.blob(data)
    key = keys.blob(w.project, h)
    stored, _ = w.store.get(key)
    other, _ = w.services.blobs.put(w.owner, w.project, os.urandom(size))
    forged = (
        stored[:HEADER_BYTES] + w.store.get(keys.blob(w.project, other["hash"]))[0][HEADER_BYTES:]
    )
    w.store.delete(key)
    w.store.put(key, forged)
    with pytest.raises(Corrupt):
        _, chunks = w.services.blobs.open(w.owner, w.project, h)
        for _ in chunks:
            pass


# -- streaming straight into the store (Store.open_writer) ---------------------------------


@pytest.fixture
def leftovers(s3_credentials: dict[str, str]):
    """A store's unpublished writes: LocalStore temp files or incomplete S3 multipart uploads."""
    client = boto3.session.Session().client("s3", **s3_credentials)

    def find(store) -> list[str]:
        if isinstance(store, LocalStore):
            return [str(p) for p in (store.root / "objects").rglob(".tmp-*")]
        uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        return [upload["Key"] for upload in uploads]

    yield find
    client.close()


@pytest.fixture(params=["local", "s3"])
def streaming_world(request: pytest.FixtureRequest, make_world) -> World:
    """A world whose S3 store takes the multipart path from 10 MiB (5 MiB parts)."""
    if request.param == "local":
        return make_world()
    store = request.getfixturevalue("make_s3_store")(
        multipart_threshold_bytes=5 * MiB, multipart_chunk_bytes=5 * MiB
    )
    return make_world(store)


@pytest.mark.parametrize("size", [0, 300_000, 12 * MiB + 3])
@pytest.mark.parametrize("announce", ["nothing", "size", "size-and-hash", "hash"])
def test_streamed_uploads_store_one_header_and_frame(
    streaming_world: World, leftovers, size: int, announce: str
) -> None:
    w = streaming_world
    data = os.urandom(size)
    digest = blob_hash(data).hex()
    kwargs: dict = {}
    if "size" in announce:
        kwargs["expected_size"] = size
    if "hash" in announce:
        kwargs["expected_hash"] = digest
    view, created = w.services.blobs.put_stream(
        w.owner, w.project, _chunks(data, 256 * 1024), **kwargs
    )
    assert created and view == {"hash": digest, "size": size}
    stored, _ = w.store.get(keys.blob(w.project, digest))
    assert decode_header(stored, bytes.fromhex(digest)) == size
    assert zstandard.ZstdDecompressor().decompress(stored[HEADER_BYTES:]) == data
    again, created_again = w.services.blobs.put_stream(
        w.owner, w.project, _chunks(data, 100_000), **kwargs
    )
    assert again == view and not created_again
    got_size, chunks = w.services.blobs.open(w.owner, w.project, digest)
    assert got_size == size and b"".join(chunks) == data
    assert leftovers(w.store) == []


@pytest.mark.parametrize("size", [300_000, 12 * MiB])
@pytest.mark.parametrize("announce_size", [False, True])
def test_a_mismatched_announced_hash_stores_nothing_and_leaves_nothing(
    streaming_world: World, leftovers, size: int, announce_size: bool
) -> None:
    w = streaming_world
    data = os.urandom(size)
    other = blob_hash(b"something else").hex()
    kwargs = {"expected_size": size} if announce_size else {}
    with pytest.raises(InvalidRequest) as raised:
        w.services.blobs.put_stream(
            w.owner, w.project, _chunks(data, 256 * 1024), expected_hash=other, **kwargs
        )
    assert raised.value.details.get("hash") == blob_hash(data).hex()
    assert w.store.list(f"projects/{w.project}/blobs/") == []
    assert leftovers(w.store) == []


@pytest.mark.parametrize("announce_size", [False, True])
def test_a_stream_broken_after_parts_were_uploaded_leaves_nothing(
    streaming_world: World, leftovers, announce_size: bool
) -> None:
    w = streaming_world
    size = 24 * MiB
    digest = blob_hash(b"x" * size).hex()

    def broken():
        yield from _chunks(os.urandom(size // 2 + MiB), MiB)  # past two 5 MiB parts
        raise ConnectionError("client went away")

    kwargs = {"expected_size": size, "expected_hash": digest} if announce_size else {}
    with pytest.raises(ConnectionError):
        w.services.blobs.put_stream(w.owner, w.project, broken(), **kwargs)
    assert w.store.list(f"projects/{w.project}/blobs/") == []
    assert leftovers(w.store) == []


def test_the_size_limit_stops_reading_as_bytes_arrive(make_world) -> None:
    w = make_world(blob_max_bytes=1000)
    pulled: list[int] = []

    def endless():
        while True:
            pulled.append(100)
            yield b"y" * 100

    with pytest.raises(TooLarge):
        w.services.blobs.put_stream(w.owner, w.project, endless())
    assert sum(pulled) == 1100  # stopped at the first piece over the limit
    with pytest.raises(InvalidRequest):  # announced 1000, sent more
        w.services.blobs.put_stream(w.owner, w.project, endless(), expected_size=1000)
    assert w.store.list(f"projects/{w.project}/blobs/") == []
    assert list((w.store.root / "objects").rglob(".tmp-*")) == []


@pytest.mark.parametrize("announce_hash", [False, True])
def test_a_streamed_upload_is_one_write_and_a_crash_before_it_stores_nothing(
    any_world: World, tmp_path, announce_hash: bool
) -> None:
    # Store.open_writer through the test wrappers: its commit is the one write the
    # upload makes, and a process that dies at that write leaves nothing behind.
    from micforge.service import build_services

    from .conftest import make_config
    from .wrappers import CountingStore, CrashingStore, InjectedCrash

    w = any_world
    data = os.urandom(3 * MiB + 17)
    digest = blob_hash(data).hex()
    expected = digest if announce_hash else None

    crashing = CrashingStore(w.store, crash_at=0)
    with build_services(make_config(tmp_path / "doomed"), store=crashing, auth_db=w.auth) as doomed:
        with pytest.raises(InjectedCrash):
            doomed.blobs.put_stream(
                w.owner, w.project, _chunks(data, 65_536), expected_size=len(data),
                expected_hash=expected,
            )  # fmt: skip
    assert crashing.crashed and crashing.writes == 0
    with pytest.raises(NotFound):
        w.services.blobs.stat(w.owner, w.project, digest)
    if isinstance(w.store, LocalStore):
        assert not list((w.store.root / "objects").glob(".tmp-*"))

    counting = CountingStore(w.store)
    with build_services(make_config(tmp_path / "counted"), store=counting, auth_db=w.auth) as alive:
        view, created = alive.blobs.put_stream(
            w.owner, w.project, _chunks(data, 65_536), expected_size=len(data),
            expected_hash=expected,
        )  # fmt: skip
    assert created and view == {"hash": digest, "size": len(data)}
    assert counting.writes == 1
    size, chunks = w.services.blobs.open(w.reader, w.project, digest)
    assert size == len(data) and b"".join(chunks) == data
