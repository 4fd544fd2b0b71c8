"""gRPC and REST over the same services: a blob put through one is byte-identical through the other."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator

import grpc
import pytest
import requests
from werkzeug.serving import make_server

from micforge.api.grpc.gen.micforge.v1 import content_pb2, sessions_pb2
from micforge.api.rest import create_app
from micforge.core import blob_hash
from tests.grpc.conftest import CHUNK_BYTES, PROJECT, GrpcEnv, trailers


@contextlib.contextmanager
def _rest_over(env: GrpcEnv) -> Iterator[str]:
    """The REST app on a real loopback HTTP server, sharing the gRPC server's services."""
    app = create_app(env.config, services=env.services)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="rest-under-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}/api/mic/projects/{PROJECT}"
    finally:
        http.shutdown()
        thread.join(10)


@pytest.fixture
def rest_url(env: GrpcEnv) -> Iterator[str]:
    with _rest_over(env) as url:
        yield url


SIZES = [0, 1, CHUNK_BYTES, 5 * CHUNK_BYTES + 17]


@pytest.mark.parametrize("size", SIZES)
def test_put_by_grpc_get_by_rest(env: GrpcEnv, rest_url: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    put = env.put_blob(data, piece_bytes=7000)
    got = requests.get(
        f"{rest_url}/blobs/{put.hash}",
        headers={"Authorization": f"Bearer {env.tokens['reader']}"},
        timeout=30,
    )
    assert got.status_code == 200
    assert got.content == data


@pytest.mark.parametrize("size", SIZES)
def test_put_by_rest_get_by_grpc(env: GrpcEnv, rest_url: str, size: int) -> None:
    data = random.Random(size + 1).randbytes(size)
    posted = requests.post(
        f"{rest_url}/blobs",
        data=data,
        headers={
            "Authorization": f"Bearer {env.tokens['owner']}",
            "Content-Type": "application/octet-stream",
        },
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"hash": blob_hash(data).hex(), "size": size}
    chunks = env.get_blob(posted.json()["hash"], who="reader")
    assert b"".join(c.data for c in chunks) == data
    # And gRPC sees it as already stored.
    assert not env.put_blob(data).created


@pytest.mark.parametrize("spent_over", ["rest", "grpc"])
def test_one_token_budget_covers_both_protocols(make_grpc_env, spent_over: str) -> None:
    # A token may not get twice the limit by calling both: REST and gRPC over the
    # same services spend from one bucket per token (docs/api.md).
    env = make_grpc_env(rate_limit_per_minute=3)
    head = content_pb2.GetHeadRequest(project=PROJECT)
    with _rest_over(env) as url:
        auth = {"Authorization": f"Bearer {env.tokens['owner']}"}

        def by_rest() -> int:
            return requests.get(url, headers=auth, timeout=30).status_code  # the project

        def by_grpc() -> None:
            env.content.GetHead(head, metadata=env.auth())

        for _ in range(3):
            if spent_over == "rest":
                assert by_rest() == 200
            else:
                by_grpc()
        if spent_over == "rest":
            with pytest.raises(grpc.RpcError) as raised:
                by_grpc()
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert trailers(raised.value)["mic-error-code"] == "rate_limited"
        else:
            assert by_rest() == 429


@pytest.mark.parametrize("listing", ["sessions", "log", "tree"])
def test_every_listing_takes_the_same_page_sizes_on_both(
    env: GrpcEnv, rest_url: str, listing: str
) -> None:
    # docs/api.md: `limit` is 1..1000 everywhere, gRPC's messages included.
    def by_grpc(limit: int) -> object:
        if listing == "sessions":
            request = sessions_pb2.ListSessionsRequest(project=PROJECT, limit=limit)
            return env.sessions.ListSessions(request, metadata=env.auth())
        if listing == "log":
            request = content_pb2.GetLogRequest(project=PROJECT, limit=limit)
            return env.content.GetLog(request, metadata=env.auth())
        request = content_pb2.GetTreeRequest(project=PROJECT, limit=limit)
        return env.content.GetTree(request, metadata=env.auth())

    headers = {"Authorization": f"Bearer {env.tokens['owner']}"}
    for limit in (1, 1000):
        by_grpc(limit)
        got = requests.get(f"{rest_url}/{listing}", params={"limit": limit}, headers=headers)
        assert got.status_code == 200, got.text
    for limit in (1001, 10_000):
        with pytest.raises(grpc.RpcError) as refused:
            by_grpc(limit)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == "limit must be between 1 and 1000"
        got = requests.get(f"{rest_url}/{listing}", params={"limit": limit}, headers=headers)
        assert got.status_code == 400 and got.json()["error"]["code"] == "invalid_request"
