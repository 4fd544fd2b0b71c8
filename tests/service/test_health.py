"""Health answers within its deadline even when the store hangs (service/health.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from micforge.service.health import HealthChecks
from micforge.storage import LocalStore
from tests.service.conftest import World
from tests.service.wrappers import HangingStore


def test_a_hung_store_is_unavailable_within_the_deadline_and_ok_once_it_answers(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    hanging = HangingStore(LocalStore(tmp_path / "store"))
    w = make_world(hanging, health_timeout_ms=300)
    assert w.services.health() == {"store": "ok", "auth_db": "ok"}

    hanging.start_hanging()
    try:
        for _ in range(3):  # asked again while the first probe is still stuck
            started = time.monotonic()
            assert w.services.health() == {"store": "unavailable", "auth_db": "ok"}
            assert time.monotonic() - started < 2
        stuck = [t for t in threading.enumerate() if t.name.startswith("micforge-health")]
        assert len(stuck) <= 2  # one per check, not one per call
    finally:
        hanging.stop_hanging()
    deadline = time.monotonic() + 10
    while w.services.health()["store"] != "ok":
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.05)


def test_a_probe_that_raises_is_unavailable_and_the_others_are_not() -> None:
    def broken() -> None:
        raise RuntimeError("no")

    checks = HealthChecks({"a": broken, "b": lambda: None}, deadline_s=5)
    try:
        assert checks.run() == {"a": "unavailable", "b": "ok"}
    finally:
        checks.close()


def test_probes_run_on_daemon_threads_and_none_after_close() -> None:
    release = threading.Event()
    started: list[bool] = []

    def probe() -> None:
        started.append(threading.current_thread().daemon)
        release.wait(30)

    checks = HealthChecks({"store": probe}, deadline_s=0.05)
    assert checks.run() == {"store": "unavailable"}  # hung past the deadline
    assert started == [True]  # on a daemon thread: it never holds up the process's exit
    release.set()
    deadline = time.monotonic() + 10
    while checks.run() != {"store": "ok"}:  # "ok": the last probe has returned
        assert time.monotonic() < deadline
    checks.close()
    # No probe is running, so an open HealthChecks would start one now (and, probes
    # returning at once, answer "ok"); a closed one starts none.
    count = len(started)
    assert checks.run() == {"store": "unavailable"}
    time.sleep(0.2)
    assert len(started) == count
