"""What lives as long as the gRPC server serves: health that follows the services'
own checks, and the guard that frees workers held by stalled streams.

grpcio's synchronous server runs every call on one of ``config.threads``
workers, and a streaming call holds its worker until the stream ends. A client
that opens a stream and then neither sends (PutBlob) nor reads (GetBlob) would
hold it for ever: a handful of them, with nothing more than read access, would
leave no worker for anyone, health checks included. :class:`StallGuard`
cancels a stream that has made no progress for ``timeout_s`` (a message
received, or one sent and taken by the client), which ends it at once and
frees its worker; a slow client that keeps moving is never cut off.

:class:`FollowingHealth` is grpc.health.v1 for ``""`` and each micforge service:
SERVING while ``Services.health()`` (the checks behind REST ``/healthz``) pass,
NOT_SERVING otherwise, re-checked every ``health_poll_s``; Watch streams get
each change. It also answers ``List``, which grpcio's servicer leaves
unimplemented.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("micforge.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# How often the stall thread looks for stalled streams (at most).
SWEEP_INTERVAL_S = 1.0


class _Watcher:
    """One Watch stream. At most one delivery task per watcher runs or waits at a
    time (``scheduled``); it sends the *current* status until the watcher has
    it, so statuses never go out of order and a watcher whose sends block ties
    up one sender thread, not one per status change."""

    def __init__(self, service: str, send: Callable[[Any], None]) -> None:
        self.service = service
        self.send = send
        self.sent: int | None = None
        self.scheduled = False
        self.closed = False


class FollowingHealth(health_pb2_grpc.HealthServicer):
    """grpc.health.v1 whose statuses follow ``check`` (name -> "ok" or not).

    Written here rather than taken from grpcio-health-checking, whose servicer
    sends to watchers while holding its lock and waits for each send to
    complete: grpc runs a finished Watch's close callback, which takes that
    lock too, on the thread that completes sends, so a status change racing a
    watcher's disconnect deadlocked every health call (and a watcher that stops
    reading blocked them all). Here no send happens under the lock; sends go
    through a small pool of their own, so neither the health thread nor
    ``stop()`` ever waits on a client.
    """

    def __init__(self, check: Callable[[], dict[str, str]], names: Sequence[str]) -> None:
        self._check = check
        self._names = tuple(names)
        self._lock = threading.Lock()
        self._statuses: dict[str, int] = {}
        self._watchers: dict[str, set[_Watcher]] = {}
        self._shutting_down = False
        # Parked callbacks, not worker threads, as grpc's own servicer (see
        # interceptors._INFRASTRUCTURE_PREFIXES): watchers cost no workers.
        self.Watch.__func__.experimental_non_blocking = True  # type: ignore[attr-defined]
        self.Watch.__func__.experimental_thread_pool = None  # type: ignore[attr-defined]
        self._senders = futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="micforge-grpc-health"
        )
        self._status: int | None = None
        self._refreshing = threading.Lock()
        self.refresh()

    def refresh(self) -> bool:
        """Run the checks and publish the result; True if all passed. A check that
        raises counts as failed: health must answer, not crash."""
        try:
            checks = self._check()
            failed = sorted(name for name, status in checks.items() if status != "ok")
        except Exception as error:  # noqa: BLE001
            log.warning("health check failed: %s", error)
            failed = ["health check"]
        status = NOT_SERVING if failed else SERVING
        with self._refreshing:  # compare and publish as one step
            if status != self._status:
                if failed:
                    log.warning("grpc health: NOT_SERVING (unavailable: %s)", ", ".join(failed))
                elif self._status is not None:
                    log.info("grpc health: SERVING again")
                self._status = status
                self._publish(status)
        return not failed

    def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for good: later refreshes change nothing (nor log an outage)."""
        with self._refreshing:
            if self._status != NOT_SERVING or not self._shutting_down:
                log.info("grpc health: NOT_SERVING (shutting down)")
            self._status = NOT_SERVING
        self._publish(NOT_SERVING, final=True)

    def close(self) -> None:
        """No new sends; those queued still go out (NOT_SERVING during the server's
        grace period). A send stuck on a client ends when the server cancels its calls."""
        self._senders.shutdown(wait=False)

    def _publish(self, status: int, *, final: bool = False) -> None:
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = final
            for name in self._names:
                self._statuses[name] = status
            watchers = [w for name in self._names for w in self._watchers.get(name, ())]
        for watcher in watchers:
            self._deliver(watcher)

    def _deliver(self, watcher: _Watcher) -> None:
        with self._lock:
            if watcher.scheduled:
                return  # the watcher's task sends whatever is current when it gets there
            watcher.scheduled = True

        def send() -> None:
            while True:
                with self._lock:
                    status = self._statuses.get(watcher.service, SERVICE_UNKNOWN)
                    if watcher.closed or status == watcher.sent:
                        watcher.scheduled = False
                        return
                    watcher.sent = status
                watcher.send(health_pb2.HealthCheckResponse(status=status))

        try:
            self._senders.submit(send)
        except RuntimeError:  # the server is stopping: nobody is waiting any more
            pass

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            status = self._statuses.get(request.service)
        if status is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(  # noqa: N802
        self,
        request: Any,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[Any], None] | None = None,
    ) -> None:
        if send_response_callback is None:  # pragma: no cover - grpc always passes it
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Watch needs a non-blocking server")
        service = request.service
        watcher = _Watcher(service, send_response_callback)
        with self._lock:
            self._watchers.setdefault(service, set()).add(watcher)

        def forget() -> None:
            watcher.closed = True
            with self._lock:
                members = self._watchers.get(service)
                if members is not None:
                    members.discard(watcher)
                    if not members:
                        del self._watchers[service]

        def closed() -> None:  # on grpc's thread: takes no lock a send may hold
            forget()
            send_response_callback(None)

        if context.add_callback(closed):
            self._deliver(watcher)  # the first message: the current status
        else:
            forget()  # the call ended already

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        with self._lock:
            statuses = dict(self._statuses)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in statuses.items()
            }
        )


class Watched:
    """One watched call: ``progress()`` whenever its stream moves; ``stalled`` once
    the guard has cancelled it."""

    __slots__ = ("last", "context", "method", "stalled", "idle", "_clock")

    def __init__(
        self, context: grpc.ServicerContext, method: str, clock: Callable[[], float]
    ) -> None:
        self.context = context
        self.method = method
        self.stalled = False
        self.idle = False  # the client has nothing left to send or read: not a stall
        self._clock = clock
        self.last = clock()

    def progress(self) -> None:
        self.last = self._clock()

    def client_done(self) -> None:
        """The client sent its last message: what the server does next (hashing,
        compressing, committing: possibly a long S3 upload) is not the client stalling."""
        self.idle = True


class StallGuard:
    """Cancels streaming calls that made no progress for ``timeout_s`` (see the module doc)."""

    def __init__(
        self,
        timeout_s: float,
        on_stall: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"stall timeout must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._on_stall = on_stall
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._calls: dict[int, Watched] = {}

    @contextlib.contextmanager
    def watch(self, context: grpc.ServicerContext, method: str) -> Iterator[Watched]:
        """Watch a call for as long as the block runs."""
        watched = Watched(context, method, self._clock)
        key = next(self._ids)
        with self._lock:
            self._calls[key] = watched
        try:
            yield watched
        finally:
            with self._lock:
                self._calls.pop(key, None)

    def watched(self) -> int:
        with self._lock:
            return len(self._calls)

    def sweep(self) -> int:
        """Cancel every watched call idle for longer than the timeout; return how many."""
        now = self._clock()
        with self._lock:
            stale = [
                key
                for key, w in self._calls.items()
                if not w.idle and now - w.last > self.timeout_s
            ]
            cancelled = [self._calls.pop(key) for key in stale]
        for watched in cancelled:
            watched.stalled = True
            # Reported before the cancel, so that whoever sees the call end CANCELLED
            # already sees it counted (and its peer is still known).
            try:
                log.warning(
                    "grpc %s: no progress for %.0fs, cancelling the call (peer=%s)",
                    watched.method,
                    now - watched.last,
                    watched.context.peer(),
                )
                if self._on_stall is not None:
                    self._on_stall(watched.method)
            except Exception:  # noqa: BLE001 - the call is cancelled all the same
                log.exception("grpc stall guard: reporting a stalled call failed")
            finally:
                watched.context.cancel()  # wakes the worker: the stream ends, CANCELLED
        return len(cancelled)


class GrpcServer:
    """A ``grpc.Server`` with the threads that serve it: health polling, and stall
    sweeps when there is a guard (``None``: stalled streams are left alone).

    ``start()`` starts them all; ``stop(grace)`` first turns health to NOT_SERVING
    (so balancers stop sending calls during the grace period), then stops the
    threads and the server. Anything else is grpc.Server's own.
    """

    def __init__(
        self,
        server: grpc.Server,
        health_servicer: FollowingHealth,
        guard: StallGuard | None,
        health_poll_s: float,
    ) -> None:
        self._server = server
        self.health = health_servicer
        self.guard = guard
        self._health_poll_s = health_poll_s
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._server.start()
        # Threads of their own: a health check that hangs (a store timing out) must
        # not stop stalled streams from being cancelled, which is when they pile up.
        self._threads = [
            threading.Thread(target=self._poll_health, name="micforge-grpc-health", daemon=True)
        ]
        if self.guard is not None:
            self._threads.append(
                threading.Thread(
                    target=self._sweep_stalls,
                    args=(self.guard,),
                    name="micforge-grpc-stalls",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float | None) -> threading.Event:
        self.health.enter_graceful_shutdown()
        self._stopping.set()
        done = self._server.stop(grace)
        for thread in self._threads:
            if thread is not threading.current_thread():
                # A health check in flight may take a while; the thread is a daemon
                # and only reads, so stop does not wait for it long.
                thread.join(timeout=2.0)
        self.health.close()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def _sweep_stalls(self, guard: StallGuard) -> None:
        interval_s = min(SWEEP_INTERVAL_S, guard.timeout_s / 2)
        while not self._stopping.wait(interval_s):
            try:
                guard.sweep()
            except Exception:  # noqa: BLE001 - the thread must outlive one bad round
                log.exception("grpc stall sweep failed")

    def _poll_health(self) -> None:
        while not self._stopping.wait(self._health_poll_s):
            self.health.refresh()  # never raises: a failing check is NOT_SERVING
