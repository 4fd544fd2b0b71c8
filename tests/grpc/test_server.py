"""Health, reflection, metrics and the error table of the gRPC server."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from micforge import errors
from micforge.api.grpc import build_grpc_server
from micforge.api.grpc.gen.micforge.v1 import content_pb2, content_pb2_grpc
from micforge.api.grpc.interceptors import (
    CONFLICT_DETAILS_MAX_CHARS,
    CONFLICT_PATHS_MAX_BYTES,
    DETAILS_MAX_BYTES,
    STATUS_BY_CODE,
    _abort_for,
    _capped,
    details_for,
    grpc_message_size,
    status_for,
    trailing_metadata_for,
)
from tests.grpc.conftest import PROJECT, GrpcEnv


def test_health_reports_serving_without_a_token(env: GrpcEnv) -> None:
    health = health_pb2_grpc.HealthStub(env.channel)
    for service in ("", "micforge.v1.SessionService", "micforge.v1.ContentService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as raised:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_our_services(env: GrpcEnv) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(env.channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {
        "micforge.v1.SessionService",
        "micforge.v1.ContentService",
        "grpc.health.v1.Health",
    } <= names


def test_calls_are_counted_by_method_and_final_status(env: GrpcEnv) -> None:
    env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth())
    with pytest.raises(grpc.RpcError):
        env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT))
    method = "/micforge.v1.ContentService/GetHead"
    assert env.rpc_count(method, "OK") == 1
    assert env.rpc_count(method, "UNAUTHENTICATED") == 1
    registry = env.services.metrics.registry
    assert (
        registry.get_sample_value(
            "micforge_grpc_request_duration_seconds_count", {"method": method}
        )
        == 2
    )


def test_every_domain_error_has_its_documented_status() -> None:
    expected = {
        errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
        errors.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
        errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
        errors.NotFound: grpc.StatusCode.NOT_FOUND,
        errors.Conflict: grpc.StatusCode.ABORTED,
        errors.InvalidState: grpc.StatusCode.FAILED_PRECONDITION,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    }
    for error_class, status in expected.items():
        assert status_for(error_class("x")) == status, error_class
    # Any error class defined later must be in the table, not fall through.
    for error_class in errors.MicError.__subclasses__():
        assert error_class.code in STATUS_BY_CODE, error_class


def test_conflict_and_rate_limit_carry_their_details_as_trailing_metadata() -> None:
    conflict = errors.Conflict(paths=["b.txt", "a.txt"])
    assert dict(trailing_metadata_for(conflict)) == {
        "mic-error-code": "conflict",
        "mic-conflict-paths": '["a.txt","b.txt"]',
        "mic-conflict-count": "2",
    }
    assert details_for(conflict).endswith("a.txt, b.txt")
    limited = errors.RateLimited(retry_after_s=7)
    assert dict(trailing_metadata_for(limited)) == {
        "mic-error-code": "rate_limited",
        "retry-after": "7",
    }


def test_a_long_conflict_list_is_cut_to_fit_client_metadata_limits() -> None:
    paths = sorted(f"dir/{n:05d}-" + "y" * 60 + ".txt" for n in range(3000))
    conflict = errors.Conflict(paths=paths)
    trailers = dict(trailing_metadata_for(conflict))
    listed = json.loads(trailers["mic-conflict-paths"])
    assert listed == paths[: len(listed)] and 10 < len(listed) < len(paths)
    assert len(trailers["mic-conflict-paths"]) <= CONFLICT_PATHS_MAX_BYTES
    assert trailers["mic-conflict-count"] == "3000"
    details = details_for(conflict)
    assert len(details) < 2 * CONFLICT_DETAILS_MAX_CHARS
    assert details.startswith(f"landing conflicts: {paths[0]}, ")
    assert "more (the session's conflict_paths has them all)" in details
    # A path longer than the whole budget: the list is empty, the count still says 1.
    huge = errors.Conflict(paths=["z" * 10_000])
    assert dict(trailing_metadata_for(huge))["mic-conflict-paths"] == "[]"
    assert dict(trailing_metadata_for(huge))["mic-conflict-count"] == "1"


def _as_grpc_message(details: str) -> str:
    """``details`` percent-encoded as gRPC sends it in ``grpc-message`` (PROTOCOL-HTTP2:
    bytes %x20-%x7E pass, except "%"; every other byte is %XX)."""
    return quote(details, safe="".join(chr(c) for c in range(0x20, 0x7F) if c != 0x25))


@pytest.mark.parametrize(
    "details",
    [
        "é" * 5000,  # 2 UTF-8 bytes, each sent as 3
        "漢" * 3000 + "x",
        "%" * 5000,
        "a" * 1000 + "é" * 1000,
        "line\n" * 1000,
        "𝄞" * 2000,  # 4-byte characters: the cut never splits one
    ],
)
def test_a_long_status_message_is_cut_by_its_encoded_size(details: str) -> None:
    capped = _capped(details)
    sent = len(_as_grpc_message(capped))
    assert sent <= DETAILS_MAX_BYTES
    assert sent > DETAILS_MAX_BYTES - 16  # cut at the budget, not far below it
    assert capped.endswith(" ...") and details.startswith(capped[: -len(" ...")])
    short = "é" * 100
    assert _capped(short) == short


def test_a_conflict_on_long_non_ascii_paths_stays_under_client_metadata_limits() -> None:
    # grpcio refuses some calls past 8 KiB of metadata and all past 16 KiB.
    paths = sorted(f"文書/{n:04d}-" + "é" * 300 for n in range(40))
    conflict = errors.Conflict(paths=paths)
    trailers = trailing_metadata_for(conflict)
    message = _as_grpc_message(_capped(details_for(conflict)))
    total = sum(len(key) + len(value) for key, value in trailers) + len(message)
    assert total <= 6.5 * 1024, total
    assert dict(trailers)["mic-conflict-count"] == "40"


@pytest.mark.parametrize("path", ["src/é-{:04d}.txt", "文書/{:04d}", "𝄞/{:04d}", "%/{:04d}"])
def test_a_cut_conflict_message_keeps_its_count_whatever_the_paths_bytes(path: str) -> None:
    # Found from outside: 3,000 paths with an "é" were cut by the encoded-size cap
    # in the middle of the list, and the "and N more" went with it.
    paths = sorted(path.format(n) for n in range(3000))
    details = details_for(errors.Conflict(paths=paths))
    assert _capped(details) == details  # fits as it is: nothing for the cap to cut
    assert grpc_message_size(details) <= DETAILS_MAX_BYTES
    shown = details.split(": ", 1)[1].split(" and ")[0].split(", ")
    assert shown == paths[: len(shown)] and len(shown) >= 10
    assert details.endswith(
        f" and {3000 - len(shown)} more (the session's conflict_paths has them all)"
    )


def test_health_watchers_do_not_hold_worker_threads(env: GrpcEnv) -> None:
    # More watchers than the server has worker threads (8 in these tests):
    # if each held a thread, the next ordinary call would wait forever.
    health = health_pb2_grpc.HealthStub(env.channel)
    watchers = [
        health.Watch(health_pb2.HealthCheckRequest(service=""))
        for _ in range(env.config.threads + 4)
    ]
    try:
        for watcher in watchers:
            assert next(watcher).status == health_pb2.HealthCheckResponse.SERVING
        head = env.content.GetHead(
            content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth(), timeout=10
        )
        assert head.position == 0
    finally:
        for watcher in watchers:
            watcher.cancel()


def test_a_second_server_on_the_same_services_shares_the_metrics(env: GrpcEnv) -> None:
    # E.g. a process restarting its gRPC server: registering the RPC metrics
    # again on the same registry must not fail, and both servers count.
    second, port = build_grpc_server(env.config, env.services)
    second.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = content_pb2_grpc.ContentServiceStub(channel)
            stub.GetHead(content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth())
        env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth())
        assert env.rpc_count("/micforge.v1.ContentService/GetHead", "OK") == 2
    finally:
        second.stop(None).wait()


def test_each_call_is_logged_with_method_status_and_user(
    env: GrpcEnv, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="micforge.grpc"):
        env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT), metadata=env.auth())
        with pytest.raises(grpc.RpcError):
            env.content.GetHead(content_pb2.GetHeadRequest(project=PROJECT))
    lines = [r.getMessage() for r in caplog.records if r.name == "micforge.grpc"]
    assert any(
        "/micforge.v1.ContentService/GetHead OK" in line and f"user={env.owner.id}" in line
        for line in lines
    ), lines
    assert any("GetHead UNAUTHENTICATED" in line and "user=-" in line for line in lines), lines
    assert not any(env.tokens["owner"] in line for line in lines)


def test_a_port_in_use_is_an_error_not_a_shared_port(env: GrpcEnv) -> None:
    # grpc's default SO_REUSEPORT would let this bind succeed and split the
    # calls between two servers.
    with pytest.raises(OSError, match="could not bind"):
        build_grpc_server(env.config, env.services, bind=f"127.0.0.1:{env.port}")


class _EndedCall:
    """What grpc's ServicerContext tells a handler about a call that ended on the
    client's side: its deadline passed (``remaining_s`` 0) or it cancelled."""

    def __init__(self, remaining_s: float | None) -> None:
        self._remaining_s = remaining_s
        self.trailers: list[tuple[str, str]] = []
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def time_remaining(self) -> float | None:
        return self._remaining_s

    def is_active(self) -> bool:
        return False

    def set_trailing_metadata(self, metadata: list[tuple[str, str]]) -> None:
        self.trailers = list(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


@pytest.mark.parametrize(
    ("remaining_s", "status", "why"),
    [
        (0.0, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"),
        (None, grpc.StatusCode.CANCELLED, "cancelled"),
    ],
)
def test_an_error_after_the_client_left_is_its_status_without_the_error_code(
    remaining_s: float | None, status: grpc.StatusCode, why: str
) -> None:
    call = _EndedCall(remaining_s)
    with pytest.raises(RuntimeError, match="aborted"):
        _abort_for(
            errors.NotFound("blob bbbb not found"), "/micforge.v1.ContentService/StatBlob", call
        )  # type: ignore[arg-type]
    assert call.aborted is not None and call.aborted[0] == status
    assert call.aborted[1].startswith(why) and "blob bbbb not found" in call.aborted[1]
    assert call.trailers == []  # no mic-error-code: not_found to contradict the status
