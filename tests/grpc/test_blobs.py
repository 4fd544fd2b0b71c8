"""PutBlob / GetBlob / StatBlob end to end: sizes, limits, hashes, cancellation, deadlines."""

from __future__ import annotations

import gc
import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from micforge.api.grpc.gen.micforge.v1 import content_pb2
from micforge.core import blob_hash
from tests.grpc.conftest import (
    BLOB_MAX_BYTES,
    CHUNK_BYTES,
    PROJECT,
    GrpcEnv,
    open_fd_count,
    put_requests,
    trailers,
    wait_for,
)


def _bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_BYTES, 7 * CHUNK_BYTES + 123],
    ids=["empty", "one-byte", "exactly-one-chunk", "many-chunks"],
)
def test_blob_round_trip_is_byte_identical_in_chunks_of_the_configured_size(
    env: GrpcEnv, size: int
) -> None:
    data = _bytes(size)

    # Client pieces deliberately unlike the server's chunk size.
    put = env.put_blob(data, piece_bytes=5000)
    assert put.hash == blob_hash(data).hex()
    assert put.size == size
    assert put.created

    chunks = env.get_blob(put.hash)
    assert b"".join(c.data for c in chunks) == data
    assert chunks[0].HasField("size") and chunks[0].size == size
    assert not any(c.HasField("size") for c in chunks[1:])
    assert [len(c.data) for c in chunks[:-1]] == [CHUNK_BYTES] * (len(chunks) - 1)
    assert len(chunks) == max(1, -(-size // CHUNK_BYTES))

    stat = env.content.StatBlob(
        content_pb2.StatBlobRequest(project=PROJECT, hash=put.hash), metadata=env.auth()
    )
    assert stat.size == size


def test_uploading_the_same_blob_again_reports_not_created(env: GrpcEnv) -> None:
    data = _bytes(3000)
    assert env.put_blob(data).created
    again = env.put_blob(data, piece_bytes=1000)
    assert (again.hash, again.size, again.created) == (blob_hash(data).hex(), 3000, False)
    assert len(env.stored_blob_keys()) == 1


def test_announced_size_and_hash_that_match_are_accepted(env: GrpcEnv) -> None:
    data = _bytes(40_000)
    put = env.put_blob(data, expected_size=len(data), expected_hash=blob_hash(data).hex())
    assert put.hash == blob_hash(data).hex()


def test_default_download_chunk_is_256_kib(make_grpc_env) -> None:
    env = make_grpc_env(grpc_chunk_bytes=None, blob_max_bytes=4_000_000)
    data = _bytes(600 * 1024)
    put = env.put_blob(data, piece_bytes=100_000)
    chunks = env.get_blob(put.hash)
    assert [len(c.data) for c in chunks] == [256 * 1024, 256 * 1024, 88 * 1024]


def test_blob_over_the_limit_is_resource_exhausted_and_nothing_is_stored(env: GrpcEnv) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        env.put_blob(_bytes(BLOB_MAX_BYTES + 1))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailers(raised.value)["mic-error-code"] == "too_large"
    assert str(BLOB_MAX_BYTES) in raised.value.details()
    assert env.stored_blob_keys() == []


def test_limit_is_enforced_as_bytes_arrive_not_after_the_whole_stream(env: GrpcEnv) -> None:
    # 100 MB offered against a 1 MB limit: the server must stop the call long
    # before the client could send it all.
    pieces_sent = 0

    def endless() -> Iterator[content_pb2.PutBlobRequest]:
        nonlocal pieces_sent
        piece = _bytes(100_000)
        yield content_pb2.PutBlobRequest(project=PROJECT, data=piece)
        for i in range(999):
            pieces_sent += 1
            yield content_pb2.PutBlobRequest(data=piece, last=i == 998)

    with pytest.raises(grpc.RpcError) as raised:
        env.content.PutBlob(endless(), metadata=env.auth())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert pieces_sent < 100, f"the client got to send {pieces_sent} x 100 kB"
    assert env.stored_blob_keys() == []


def test_announced_size_over_the_limit_is_refused_before_any_data(env: GrpcEnv) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        env.put_blob(b"x", expected_size=BLOB_MAX_BYTES + 1)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert env.stored_blob_keys() == []


def test_announced_hash_that_does_not_match_is_rejected_and_nothing_is_stored(
    env: GrpcEnv,
) -> None:
    data = _bytes(50_000)
    wrong = blob_hash(b"something else").hex()
    with pytest.raises(grpc.RpcError) as raised:
        env.put_blob(data, expected_hash=wrong)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert wrong in raised.value.details()
    assert env.stored_blob_keys() == []
    with pytest.raises(grpc.RpcError) as missing:
        env.content.StatBlob(
            content_pb2.StatBlobRequest(project=PROJECT, hash=blob_hash(data).hex()),
            metadata=env.auth(),
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("announced", [49_999, 50_001])
def test_announced_size_that_does_not_match_is_rejected(env: GrpcEnv, announced: int) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        env.put_blob(_bytes(50_000), expected_size=announced)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert env.stored_blob_keys() == []


@pytest.mark.parametrize(
    "requests, message",
    [
        ([], "first message"),
        ([content_pb2.PutBlobRequest(data=b"abc")], "project"),
        ([content_pb2.PutBlobRequest(project="Bad Id", data=b"abc")], "project"),
        ([content_pb2.PutBlobRequest(project=PROJECT, expected_hash="ABC")], "expected_hash"),
        (
            [
                content_pb2.PutBlobRequest(project=PROJECT, data=b"abc"),
                content_pb2.PutBlobRequest(project=PROJECT, data=b"def", last=True),
            ],
            "only the first",
        ),
        ([content_pb2.PutBlobRequest(project=PROJECT, data=b"abc")], "marked last"),
        (
            [
                content_pb2.PutBlobRequest(project=PROJECT, data=b"abc", last=True),
                content_pb2.PutBlobRequest(data=b"def"),
            ],
            "after the one marked last",
        ),
    ],
    ids=[
        "empty-stream",
        "no-project",
        "bad-project",
        "bad-hash",
        "header-twice",
        "never-last",
        "data-after-last",
    ],
)
def test_malformed_put_streams_are_invalid_argument_and_store_nothing(
    env: GrpcEnv, requests: list, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        env.content.PutBlob(iter(requests), metadata=env.auth())
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
    assert env.stored_blob_keys() == []


@pytest.mark.parametrize(
    "hash_hex, code",
    [
        ("0" * 64, grpc.StatusCode.NOT_FOUND),
        ("ABCD", grpc.StatusCode.INVALID_ARGUMENT),
        ("A" * 64, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_get_and_stat_of_missing_or_malformed_hash(
    env: GrpcEnv, hash_hex: str, code: grpc.StatusCode
) -> None:
    for call in (
        lambda: env.get_blob(hash_hex),
        lambda: env.content.StatBlob(
            content_pb2.StatBlobRequest(project=PROJECT, hash=hash_hex), metadata=env.auth()
        ),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == code


def test_a_corrupt_stored_blob_is_never_served(env: GrpcEnv) -> None:
    data = _bytes(10_000)
    put = env.put_blob(data)
    key = env.stored_blob_keys()[0]
    stored, _ = env.services.store.get(key)
    # Flip a byte in the compressed payload (past the 48-byte header).
    damaged = stored[:60] + bytes([stored[60] ^ 0xFF]) + stored[61:]
    env.services.store.delete(key)
    env.services.store.put(key, damaged)
    with pytest.raises(grpc.RpcError) as raised:
        env.get_blob(put.hash)
    assert raised.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS)
    assert "Traceback" not in raised.value.details()


class _StallingUpload:
    """A PutBlob request stream that sends ``size_bytes`` and then waits to be released."""

    def __init__(self, size_bytes: int, **header: Any) -> None:
        self.size_bytes = size_bytes
        self.header = header
        self.release = threading.Event()

    def __iter__(self) -> Iterator[content_pb2.PutBlobRequest]:
        # Not marked last: the upload is still in progress when it stalls.
        yield from put_requests(
            _bytes(self.size_bytes), piece_bytes=64 * 1024, last=False, **self.header
        )
        self.release.wait(30)


def _store_temp_files(env: GrpcEnv) -> list[Path]:
    """LocalStore temp files (an upload's unpublished object) under the env's store."""
    return [p for p in (env.config.data_dir / "store").rglob(".tmp-*")]


def _blob_bytes_in(env: GrpcEnv) -> float:
    value = env.services.metrics.registry.get_sample_value(
        "micforge_grpc_blob_bytes_total", {"direction": "in"}
    )
    return value or 0.0


# Without a size the raw bytes are spooled first; with one they stream straight
# into the store's temp file. Either must vanish when the client cancels.
@pytest.mark.parametrize("announce_size", [False, True], ids=["spooled", "streamed"])
def test_client_cancelling_an_upload_stores_nothing_and_leaks_nothing(
    make_grpc_env, announce_size: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micforge.grpc")
    # Above the service's in-memory spool size, so a leak would be an open temp file.
    env = make_grpc_env(blob_max_bytes=64 * 1024 * 1024)
    env.put_blob(b"warm up the channel")
    blobs_before = env.stored_blob_keys()
    fds_before = open_fd_count()

    header = {"expected_size": 20 * 1024 * 1024} if announce_size else {}
    upload = _StallingUpload(10 * 1024 * 1024, **header)
    future = env.content.PutBlob.future(iter(upload), metadata=env.auth())
    assert wait_for(lambda: _blob_bytes_in(env) >= 10 * 1024 * 1024 + 19)
    future.cancel()
    upload.release.set()

    assert future.cancelled()
    # The server-side call has finished (its thread is free again).
    assert wait_for(lambda: env.rpc_failures("/micforge.v1.ContentService/PutBlob") == 1)
    _assert_logged_with_its_peer(caplog, "PutBlob")
    assert env.stored_blob_keys() == blobs_before  # only the warm-up blob
    assert wait_for(lambda: (gc.collect(), open_fd_count())[1] <= fds_before), (
        f"{open_fd_count()} fds open, {fds_before} before the upload"
    )
    assert _store_temp_files(env) == []
    # The server is still fine.
    assert env.put_blob(b"after").size == 5


def test_client_cancelling_a_download_releases_the_store_reader(make_grpc_env) -> None:
    # Above the service's verify-before-serving size, so the blob is streamed
    # from an open store reader (a file here) rather than from memory.
    env = make_grpc_env(blob_max_bytes=64 * 1024 * 1024, grpc_chunk_bytes=64 * 1024)
    data = _bytes(12 * 1024 * 1024)
    put = env.put_blob(data, piece_bytes=1024 * 1024)
    env.get_blob(put.hash)  # warm up the channel and any lazy state
    fds_before = open_fd_count()

    call = env.content.GetBlob(
        content_pb2.GetBlobRequest(project=PROJECT, hash=put.hash), metadata=env.auth()
    )
    first = next(call)
    assert first.size == len(data)
    call.cancel()

    assert wait_for(lambda: env.rpc_failures("/micforge.v1.ContentService/GetBlob") == 1)
    assert wait_for(lambda: (gc.collect(), open_fd_count())[1] <= fds_before), (
        f"{open_fd_count()} fds open, {fds_before} before the download"
    )
    assert hashlib.sha256(b"".join(c.data for c in env.get_blob(put.hash))).digest() == (
        hashlib.sha256(data).digest()
    )


def test_an_upload_past_its_deadline_ends_on_the_server_and_stores_nothing(
    env: GrpcEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micforge.grpc")
    upload = _StallingUpload(200_000)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            env.content.PutBlob(iter(upload), metadata=env.auth(), timeout=0.5)
    finally:
        upload.release.set()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Finished on the server (as DEADLINE_EXCEEDED, or CANCELLED when the
    # client's own deadline timer fired first and reset the stream).
    assert wait_for(lambda: env.rpc_failures("/micforge.v1.ContentService/PutBlob") == 1)
    assert env.stored_blob_keys() == []
    _assert_logged_with_its_peer(caplog, "PutBlob")


def _assert_logged_with_its_peer(caplog: pytest.LogCaptureFixture, method: str) -> None:
    # The call ended before its log line: the peer is the one it had, not grpc's "".
    # (The line follows the metric the caller waited for: wait for it too.)
    def ended() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "micforge.grpc"]
        return [
            line
            for line in lines
            if f"{method} DEADLINE_EXCEEDED" in line or f"{method} CANCELLED" in line
        ]

    assert wait_for(lambda: len(ended()) == 1), ended()
    assert "peer=ipv4:127.0.0.1:" in ended()[0], ended()


def test_a_download_past_its_deadline_stops_on_the_server(
    make_grpc_env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="micforge.grpc")
    env = make_grpc_env(blob_max_bytes=64 * 1024 * 1024, grpc_chunk_bytes=64 * 1024)
    data = _bytes(12 * 1024 * 1024)
    put = env.put_blob(data, piece_bytes=1024 * 1024)
    env.get_blob(put.hash)  # warm up
    fds_before = open_fd_count()

    call = env.content.GetBlob(
        content_pb2.GetBlobRequest(project=PROJECT, hash=put.hash), metadata=env.auth(), timeout=1
    )
    assert next(call).size == len(data)
    # A client that stops reading: flow control stalls the server's sends
    # until the deadline ends the call.
    with pytest.raises(grpc.RpcError) as raised:
        time.sleep(1.5)
        for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Finished on the server (as DEADLINE_EXCEEDED, or CANCELLED when the
    # client's own deadline timer fired first and reset the stream).
    assert wait_for(lambda: env.rpc_failures("/micforge.v1.ContentService/GetBlob") == 1)
    _assert_logged_with_its_peer(caplog, "GetBlob")
    assert wait_for(lambda: (gc.collect(), open_fd_count())[1] <= fds_before)
