"""What lives as long as the gRPC server: health that follows the services' checks,
stalled streams cancelled so they free their worker, calls past their deadline not run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from micforge.api.grpc.gen.micforge.v1 import content_pb2, sessions_pb2
from micforge.api.grpc.interceptors import CallContext, RpcMetrics
from micforge.api.grpc.lifecycle import FollowingHealth, StallGuard
from micforge.api.grpc.servicers import ContentServicer
from micforge.errors import InvalidRequest

from .conftest import PROJECT, GrpcEnv, trailers, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CONTENT = "micforge.v1.ContentService"
SESSIONS = "micforge.v1.SessionService"
PUT_BLOB = "/micforge.v1.ContentService/PutBlob"
GET_BLOB = "/micforge.v1.ContentService/GetBlob"


def _health(env: GrpcEnv) -> health_pb2_grpc.HealthStub:
    return health_pb2_grpc.HealthStub(env.channel)


def _status(env: GrpcEnv, service: str = "", timeout_s: float = 5.0) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return _health(env).Check(request, timeout=timeout_s).status


def _break_store(env: GrpcEnv) -> Callable[[], None]:
    """Put a plain file where the local store's objects directory was; returns the repair."""
    objects = Path(env.config.data_dir) / "store" / "objects"
    aside = objects.with_name("objects.aside")
    os.rename(objects, aside)
    objects.write_bytes(b"not a directory")

    def repair() -> None:
        objects.unlink()
        os.rename(aside, objects)

    return repair


def test_health_follows_the_store(make_grpc_env: Callable[..., GrpcEnv]) -> None:
    env = make_grpc_env(grpc_health_poll_ms=50)
    assert all(_status(env, name) == SERVING for name in ("", CONTENT, SESSIONS))
    watch = _health(env).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(watch).status == SERVING

    repair = _break_store(env)
    assert next(watch).status == NOT_SERVING  # a change, pushed to the watcher
    assert all(_status(env, name) == NOT_SERVING for name in ("", CONTENT, SESSIONS))
    listed = _health(env).List(health_pb2.HealthListRequest(), timeout=5)
    assert {name: s.status for name, s in listed.statuses.items()} == {
        "": NOT_SERVING,
        CONTENT: NOT_SERVING,
        SESSIONS: NOT_SERVING,
    }

    repair()
    assert next(watch).status == SERVING
    assert _status(env) == SERVING
    watch.cancel()


def test_health_is_not_serving_once_the_server_stops(
    make_grpc_env: Callable[..., GrpcEnv],
) -> None:
    env = make_grpc_env()
    watch = _health(env).Watch(health_pb2.HealthCheckRequest(service=CONTENT), timeout=30)
    assert next(watch).status == SERVING
    env.server.stop(5)
    assert next(watch).status == NOT_SERVING  # balancers hear it before the port closes


def _stalled_upload(env: GrpcEnv, release: threading.Event) -> Iterator[content_pb2.PutBlobRequest]:
    yield content_pb2.PutBlobRequest(project=PROJECT, expected_size=2, data=b"x")
    release.wait(30)  # the client goes quiet, holding the stream open
    yield content_pb2.PutBlobRequest(data=b"y", last=True)


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except grpc.RpcError as error:
            outcome.append(error.code())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_stalled_uploads_are_cancelled_and_free_their_workers(
    make_grpc_env: Callable[..., GrpcEnv],
) -> None:
    env = make_grpc_env(threads=2, grpc_stall_timeout_ms=400)
    release = threading.Event()
    try:
        calls = [
            _in_thread(
                lambda: env.content.PutBlob(_stalled_upload(env, release), metadata=env.auth())
            )
            for _ in range(2)
        ]
        # Both workers are held; health (same pool) is answered once the guard frees them.
        assert _status(env, timeout_s=10) == SERVING
        for thread, outcome in calls:
            thread.join(10)
            assert outcome == [grpc.StatusCode.CANCELLED]
        assert wait_for(lambda: env.rpc_count(PUT_BLOB, "CANCELLED") == 2)
        sample = env.services.metrics.registry.get_sample_value(
            "micforge_grpc_stalled_calls_total", {"method": PUT_BLOB}
        )
        assert sample == 2
        assert env.stored_blob_keys() == []
        assert env.server.guard.watched() == 0
    finally:
        release.set()


def test_a_slow_upload_that_keeps_moving_is_not_cancelled(
    make_grpc_env: Callable[..., GrpcEnv],
) -> None:
    env = make_grpc_env(grpc_stall_timeout_ms=400)
    pause = threading.Event()

    def slow() -> Iterator[content_pb2.PutBlobRequest]:
        yield content_pb2.PutBlobRequest(project=PROJECT, expected_size=6, data=b"a")
        for piece in b"bcde":
            pause.wait(0.15)  # each gap under the timeout, the whole upload well over it
            yield content_pb2.PutBlobRequest(data=bytes([piece]))
        pause.wait(0.15)
        yield content_pb2.PutBlobRequest(data=b"f", last=True)

    reply = env.content.PutBlob(slow(), metadata=env.auth(), timeout=10)
    assert reply.size == 6 and reply.created


@pytest.mark.parametrize("name", ["v1", "v1alpha"])
def test_idle_reflection_streams_without_a_token_cannot_hold_every_worker(
    make_grpc_env: Callable[..., GrpcEnv], name: str
) -> None:
    env = make_grpc_env(threads=2, grpc_stall_timeout_ms=400)
    release = threading.Event()
    method = f"/grpc.reflection.{name}.ServerReflection/ServerReflectionInfo"
    reflect = env.channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    def idle() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        release.wait(30)  # then quiet, the stream left open

    def one_answer_then_idle() -> object:
        replies = reflect(idle(), timeout=30)
        assert next(replies).list_services_response.service
        return next(replies)  # never comes: the guard ends the call

    try:
        calls = [_in_thread(one_answer_then_idle) for _ in range(2)]
        assert _status(env, timeout_s=10) == SERVING  # both workers were held
        for thread, outcome in calls:
            thread.join(10)
            assert outcome == [grpc.StatusCode.CANCELLED]
        sample = env.services.metrics.registry.get_sample_value(
            "micforge_grpc_stalled_calls_total", {"method": method}
        )
        assert sample == 2
        assert env.server.guard.watched() == 0
    finally:
        release.set()


def test_stalled_downloads_are_cancelled(make_grpc_env: Callable[..., GrpcEnv]) -> None:
    env = make_grpc_env(threads=2, grpc_stall_timeout_ms=400, blob_max_bytes=64 * 1024 * 1024)
    blob = env.put_blob(os.urandom(24 * 1024 * 1024), piece_bytes=1024 * 1024)
    request = content_pb2.GetBlobRequest(project=PROJECT, hash=blob.hash)
    streams = [env.content.GetBlob(request, metadata=env.auth(), timeout=30) for _ in range(2)]
    for stream in streams:
        next(stream)  # one chunk read, then the client stops reading: flow control fills
    assert wait_for(lambda: env.rpc_count(GET_BLOB, "CANCELLED") == 2)
    assert _status(env, timeout_s=10) == SERVING
    assert env.server.guard.watched() == 0
    for stream in streams:
        stream.cancel()


def test_a_call_whose_deadline_passed_while_queued_does_not_run(
    make_grpc_env: Callable[..., GrpcEnv],
) -> None:
    env = make_grpc_env(threads=1)  # one worker
    release = threading.Event()
    upload, _ = _in_thread(
        lambda: env.content.PutBlob(_stalled_upload(env, release), metadata=env.auth())
    )
    assert wait_for(lambda: env.server.guard.watched() == 1)  # the upload holds the worker
    request = sessions_pb2.StartSessionRequest(project=PROJECT, goal="too late")
    with pytest.raises(grpc.RpcError) as caught:
        # Queued behind the upload, which holds the only worker.
        env.sessions.StartSession(request, metadata=env.auth(), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    release.set()  # the upload completes; the worker is free again, too late for the call
    upload.join(10)
    assert env.rpc_count(PUT_BLOB, "OK") == 1
    listed = env.sessions.ListSessions(
        sessions_pb2.ListSessionsRequest(project=PROJECT), metadata=env.auth(), timeout=5
    )
    assert list(listed.sessions) == []


def test_stall_guard_sweeps_only_what_is_idle() -> None:
    class Context:
        cancelled = 0

        def peer(self) -> str:
            return "ipv4:127.0.0.1:1"

        def cancel(self) -> None:
            self.cancelled += 1

    clock = [100.0]
    stalled: list[str] = []
    guard = StallGuard(10.0, on_stall=stalled.append, clock=lambda: clock[0])
    idle, busy = Context(), Context()
    with guard.watch(idle, "/m/Idle") as idle_call, guard.watch(busy, "/m/Busy") as busy_call:  # type: ignore[arg-type]
        clock[0] = 105.0
        busy_call.progress()
        assert guard.sweep() == 0
        clock[0] = 110.5  # idle for 10.5 s, busy for 5.5 s
        assert guard.sweep() == 1
        assert (idle.cancelled, busy.cancelled) == (1, 0)
        assert (idle_call.stalled, busy_call.stalled) == (True, False)
        assert stalled == ["/m/Idle"]
        assert guard.watched() == 1
        clock[0] = 115.0  # exactly the timeout is not over it
        assert guard.sweep() == 0
        clock[0] = 115.1
        assert guard.sweep() == 1
        assert busy.cancelled == 1
    assert guard.watched() == 0
    with pytest.raises(ValueError):
        StallGuard(0)


def test_an_upload_whose_client_left_before_the_end_stores_nothing(env: GrpcEnv) -> None:
    """The client's deadline passes (or it cancels) while its last bytes are taken in:
    the upload is not stored, though every byte arrived. Driven through the servicer
    with grpc's context stood in for, since no real client can time that moment."""

    class LeftContext:
        def is_active(self) -> bool:
            return False  # by the time the stream's end is checked

    servicer = ContentServicer(env.services, RpcMetrics(env.services.metrics.registry), 1024)
    requests = iter(
        [
            content_pb2.PutBlobRequest(project=PROJECT, expected_size=3, data=b"ab"),
            content_pb2.PutBlobRequest(data=b"c", last=True),
        ]
    )
    with pytest.raises(InvalidRequest, match="ended before the blob was stored"):
        servicer.PutBlob(requests, CallContext(LeftContext(), env.owner))  # type: ignore[arg-type]
    assert env.stored_blob_keys() == []


def test_an_unusable_store_is_unavailable_without_its_details(env: GrpcEnv) -> None:
    """As REST's 503: UNAVAILABLE, code `unavailable`, no file paths in the message."""
    repair = _break_store(env)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            env.put_blob(b"some bytes")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert caught.value.details() == "storage is unavailable"
        assert trailers(caught.value)["mic-error-code"] == "unavailable"
        request = sessions_pb2.StartSessionRequest(project=PROJECT, goal="g")
        with pytest.raises(grpc.RpcError) as caught:
            env.sessions.StartSession(request, metadata=env.auth(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert str(env.config.data_dir) not in caught.value.details()
    finally:
        repair()
    assert env.put_blob(b"some bytes").created


def test_cancelled_uploads_are_recorded_as_cancelled(env: GrpcEnv) -> None:
    """The request iterator can end before grpc's cancel event arrives; the server
    waits for it, so the log and metrics say CANCELLED, not INVALID_ARGUMENT."""
    uploads = 16
    for _ in range(uploads):
        release = threading.Event()
        future = env.content.PutBlob.future(_stalled_upload(env, release), metadata=env.auth())
        assert wait_for(lambda: env.server.guard.watched() == 1)
        future.cancel()
        release.set()
        assert wait_for(lambda: env.server.guard.watched() == 0)
    assert wait_for(lambda: env.rpc_count(PUT_BLOB, "CANCELLED") == uploads)
    assert env.rpc_failures(PUT_BLOB) == uploads
    assert env.stored_blob_keys() == []


def test_status_changes_racing_watchers_that_leave_never_hang_health(
    make_grpc_env: Callable[..., GrpcEnv],
) -> None:
    """grpcio-health-checking's servicer sent to watchers under its lock while grpc
    ran a leaving watcher's close callback, which takes that lock, on the thread
    that completes those sends: a flip racing a disconnect hung every health call."""
    env = make_grpc_env(grpc_health_poll_ms=3_600_000)  # flips driven by hand below
    health = env.server.health
    stub = _health(env)
    failures: list[BaseException] = []

    def flip(rounds: int) -> None:
        try:
            for _ in range(rounds):
                repair = _break_store(env)
                health.refresh()
                repair()
                health.refresh()
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    flipper = threading.Thread(target=flip, args=(40,), daemon=True)
    flipper.start()
    while flipper.is_alive():
        watchers = [
            stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=30)
            for name in ("", CONTENT, SESSIONS, "unknown")
        ]
        for watcher in watchers:
            next(watcher)
            watcher.cancel()
    flipper.join(30)
    assert not flipper.is_alive() and failures == []
    assert _status(env, timeout_s=5) == SERVING
    with pytest.raises(grpc.RpcError) as caught:
        _status(env, "unknown")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="unknown"), timeout=5)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    watch.cancel()


class _WatchContext:
    """grpc's side of a Watch call, stood in for: the servicer only registers its close callback."""

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return True


def test_a_watcher_whose_sends_block_does_not_starve_the_others() -> None:
    """One delivery task per watcher: a watcher stuck in a send (its client stopped
    reading) holds one sender thread, whatever the number of status changes."""
    state = {"ok": True}
    health = FollowingHealth(lambda: {"store": "ok" if state["ok"] else "down"}, ("",))
    stuck, release = threading.Event(), threading.Event()

    def stuck_send(response: object) -> None:
        if response is not None:
            stuck.set()
            release.wait(30)  # flow control full: the send does not complete

    request = health_pb2.HealthCheckRequest(service="")
    health.Watch(request, _WatchContext(), stuck_send)  # type: ignore[arg-type]
    assert stuck.wait(5)
    try:
        for _ in range(5):
            state["ok"] = not state["ok"]
            health.refresh()
        got: list[object] = []
        health.Watch(request, _WatchContext(), got.append)  # type: ignore[arg-type]
        assert wait_for(lambda: len(got) == 1, timeout_s=5)
    finally:
        release.set()
        health.close()


def test_a_failure_reporting_one_stalled_call_does_not_spare_the_others() -> None:
    class Context:
        def __init__(self, peer_fails: bool) -> None:
            self.peer_fails = peer_fails
            self.cancelled = 0

        def peer(self) -> str:
            if self.peer_fails:
                raise RuntimeError("peer gone")
            return "ipv4:127.0.0.1:1"

        def cancel(self) -> None:
            self.cancelled += 1

    clock = [0.0]
    guard = StallGuard(1.0, clock=lambda: clock[0])
    first, second = Context(True), Context(False)
    with guard.watch(first, "/m/A"), guard.watch(second, "/m/B"):  # type: ignore[arg-type]
        clock[0] = 5.0
        assert guard.sweep() == 2
    assert (first.cancelled, second.cancelled) == (1, 1)


def test_a_stall_timeout_of_zero_watches_nothing(make_grpc_env: Callable[..., GrpcEnv]) -> None:
    env = make_grpc_env(grpc_stall_timeout_ms=0)
    assert env.server.guard is None
    assert env.put_blob(b"no guard, still served").created
    assert _status(env) == SERVING


def test_health_is_not_serving_while_the_store_hangs(tmp_path: Path) -> None:
    # A hung S3 endpoint: the health poll must not hang with it and report SERVING.
    from micforge.api.grpc import build_grpc_server
    from micforge.config import Config
    from micforge.service import build_services
    from micforge.storage import LocalStore
    from tests.service.wrappers import HangingStore

    config = Config.load(
        {
            "data_dir": tmp_path,
            "cache_dir": "off",
            "grpc_health_poll_ms": 50,
            "health_timeout_ms": 200,
        },
        environ={},
    )
    hanging = HangingStore(LocalStore(tmp_path / "store"))
    services = build_services(config, store=hanging)
    server, port = build_grpc_server(config, services)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    try:
        assert health.Check(request, timeout=5).status == SERVING
        hanging.start_hanging()
        assert wait_for(lambda: health.Check(request, timeout=5).status == NOT_SERVING, 5)
        hanging.stop_hanging()
        assert wait_for(lambda: health.Check(request, timeout=5).status == SERVING, 5)
    finally:
        hanging.stop_hanging()
        channel.close()
        server.stop(None).wait()
        services.close()
