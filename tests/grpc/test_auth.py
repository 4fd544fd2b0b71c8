"""Authentication and authorization of every kind of call (unary, server- and client-streaming)."""

from __future__ import annotations

import grpc
import pytest

from micforge.api.grpc.gen.micforge.v1 import content_pb2, sessions_pb2
from tests.grpc.conftest import PROJECT, GrpcEnv, put_requests, trailers


def _calls(env: GrpcEnv, metadata: list[tuple[str, str]]) -> dict:
    """One call of each shape, all with the given metadata."""
    return {
        "unary": lambda: env.sessions.StartSession(
            sessions_pb2.StartSessionRequest(project=PROJECT, goal="g"), metadata=metadata
        ),
        "server-stream": lambda: list(
            env.content.GetBlob(
                content_pb2.GetBlobRequest(project=PROJECT, hash="0" * 64), metadata=metadata
            )
        ),
        "client-stream": lambda: env.content.PutBlob(
            put_requests(b"secret bytes"), metadata=metadata
        ),
    }


@pytest.mark.parametrize(
    "metadata",
    [
        [],
        [("authorization", "Bearer not-a-real-token")],
        [("authorization", "Basic dXNlcjpwYXNz")],
        [("authorization", "Bearer ")],
    ],
    ids=["missing", "unknown-token", "not-bearer", "empty-token"],
)
def test_unauthenticated_calls_are_refused_and_store_nothing(env: GrpcEnv, metadata: list) -> None:
    for shape, call in _calls(env, metadata).items():
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, shape
        assert trailers(raised.value)["mic-error-code"] == "unauthorized"
    assert env.stored_blob_keys() == []
    assert env.services.sessions.list(env.owner, PROJECT)[0] == []


def test_a_revoked_token_stops_working_at_once(env: GrpcEnv) -> None:
    request = content_pb2.GetHeadRequest(project=PROJECT)
    env.content.GetHead(request, metadata=env.auth())
    token_id = env.services.auth.list_tokens(env.owner.id)[0].id
    env.services.auth.revoke_token(env.owner.id, token_id)
    with pytest.raises(grpc.RpcError) as raised:
        env.content.GetHead(request, metadata=env.auth())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_reader_can_read_but_not_write(env: GrpcEnv) -> None:
    put = env.put_blob(b"readable")
    assert b"".join(c.data for c in env.get_blob(put.hash, who="reader")) == b"readable"
    for call in _calls(env, env.auth("reader")).values():
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.NOT_FOUND,  # GetBlob of an absent hash: allowed, but absent
        )
    with pytest.raises(grpc.RpcError) as raised:
        env.put_blob(b"not allowed", who="reader")
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailers(raised.value)["mic-error-code"] == "forbidden"
    with pytest.raises(grpc.RpcError) as raised:
        env.sessions.StartSession(
            sessions_pb2.StartSessionRequest(project=PROJECT, goal="g"),
            metadata=env.auth("reader"),
        )
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(env.stored_blob_keys()) == 1


def test_an_outsider_cannot_tell_the_project_exists(env: GrpcEnv) -> None:
    put = env.put_blob(b"private")
    for call in (
        lambda: env.get_blob(put.hash, who="outsider"),
        lambda: env.put_blob(b"intrusion", who="outsider"),
        lambda: env.content.GetHead(
            content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth("outsider")
        ),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(env.stored_blob_keys()) == 1


def test_calls_past_the_rate_limit_are_resource_exhausted_with_retry_after(
    make_grpc_env,
) -> None:
    env = make_grpc_env(rate_limit_per_minute=3)
    request = content_pb2.GetHeadRequest(project=PROJECT)
    for _ in range(3):
        env.content.GetHead(request, metadata=env.auth())
    with pytest.raises(grpc.RpcError) as raised:
        env.content.GetHead(request, metadata=env.auth())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    meta = trailers(raised.value)
    assert meta["mic-error-code"] == "rate_limited"
    assert int(meta["retry-after"]) >= 1
    # The budget is per token: another user's token is unaffected.
    env.content.GetHead(request, metadata=env.auth("reader"))
