"""Health checks that answer within a deadline, whatever the store or auth DB do.

REST ``/healthz`` and gRPC health (``api/grpc/lifecycle.py``) both report
``Services.health()``. A store that hangs (an S3 endpoint that accepts the
connection and never answers) must not hang the check with it: a load
balancer's probe would time out instead of reading "unavailable", and gRPC
health would report its last status for as long as the hang lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

log = logging.getLogger("micforge.service")


class HealthChecks:
    """Runs each named probe on a thread of its own and waits for all of them at most
    ``deadline_s``: a probe that raises, or has not returned by then, is
    "unavailable". A probe still running from an earlier call is waited for again
    rather than started twice, so a hung store holds one thread, not one per check.
    """

    def __init__(self, probes: Mapping[str, Callable[[], object]], deadline_s: float) -> None:
        self._probes = dict(probes)
        self._deadline_s = deadline_s
        self._lock = threading.Lock()
        self._running: dict[str, Future[object]] = {}
        self._closed = False
        self._shutting_down = False

    def run(self) -> dict[str, str]:
        """{name: "ok" | "unavailable"} for every probe, within the deadline; and
        ``"server": "shutting_down"`` once ``shutting_down()`` was called."""
        with self._lock:
            if self._closed:
                return dict.fromkeys(self._probes, "unavailable") | self._server_check()
            for name, probe in self._probes.items():
                running = self._running.get(name)
                if running is None or running.done():
                    self._running[name] = _start(name, probe)
            futures = dict(self._running)
        deadline = time.monotonic() + self._deadline_s
        checks: dict[str, str] = {}
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                checks[name] = "ok"
            except FutureTimeout:
                log.warning("health check: %s did not answer within %.1fs", name, self._deadline_s)
                checks[name] = "unavailable"
            except Exception as error:  # noqa: BLE001 - any failure counts: a check must answer
                log.warning("health check: %s failed: %s", name, error)
                checks[name] = "unavailable"
        return checks | self._server_check()

    def shutting_down(self) -> None:
        """From now on every answer is unhealthy: the server is going away (it may still
        serve for a while, so that load balancers stop sending it calls first)."""
        with self._lock:
            self._shutting_down = True

    def _server_check(self) -> dict[str, str]:
        return {"server": "shutting_down"} if self._shutting_down else {}

    def close(self) -> None:
        """Start no more probes. One still hung is left to end by its own timeouts; its
        thread is a daemon, so it never holds up the process's exit."""
        with self._lock:
            self._closed = True


def _start(name: str, probe: Callable[[], object]) -> Future[object]:
    """``probe()`` on a daemon thread of its own; its outcome in the returned future."""
    future: Future[object] = Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            future.set_result(probe())
        except BaseException as error:  # noqa: BLE001 - the waiter reports it
            future.set_exception(error)

    threading.Thread(target=run, name=f"micforge-health-{name}", daemon=True).start()
    return future
