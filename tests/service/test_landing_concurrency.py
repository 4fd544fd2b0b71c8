"""Many agent processes landing into one project at once; then crashes at every step."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from micforge.service import build_services
from micforge.storage import LocalStore, keys

from .conftest import World, make_config
from .invariants import check_invariants
from .wrappers import CrashingStore, InjectedCrash

AGENTS = 4
SESSIONS_PER_AGENT = 25


def _spec(w: World, tmp_path: Path, request: pytest.FixtureRequest) -> dict:
    spec = {
        "data_dir": str(tmp_path / "agents"),
        "auth_url": f"sqlite:///{tmp_path / 'w0' / 'auth.db'}",
        "user_id": w.owner.id,
        "project": w.project,
    }
    if isinstance(w.store, LocalStore):
        spec.update(kind="local", root=str(tmp_path / "w0" / "store"))
    else:
        spec.update(kind="s3", bucket=w.store.bucket, s3=request.getfixturevalue("s3_credentials"))
    return spec


@pytest.mark.slow
def test_concurrent_agents_keep_every_invariant(
    any_world: World, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .agents import run_agent

    w = any_world
    spec = _spec(w, tmp_path, request)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=AGENTS, mp_context=ctx) as pool:
        futures = [
            pool.submit(run_agent, spec, a, SESSIONS_PER_AGENT, 1000 + a) for a in range(AGENTS)
        ]
        outcomes: dict[str, object] = {}
        for future in futures:
            outcomes.update(future.result(timeout=600))
    assert len(outcomes) == AGENTS * SESSIONS_PER_AGENT
    landed = [o for o in outcomes.values() if o[0] == "landed"]
    assert len(landed) >= AGENTS * SESSIONS_PER_AGENT // 2  # disjoint ones always land
    check_invariants(w.services, w.project, w.owner, outcomes)


@pytest.mark.parametrize("paths", [("a.txt", "dir/b.txt"), ()], ids=["paths", "no-paths"])
def test_crash_at_every_write_of_a_landing_then_retry(world: World, paths: tuple[str, ...]) -> None:
    """Kill the lander before each of its writes in turn; another agent then lands
    something else and the session is retried: it lands exactly once, no gaps. A session
    with no paths matters most: no bloom or path list can find its earlier commit, only
    its attempt position."""
    w = world
    k = 0
    while True:
        project = f"crash{len(paths)}-{k}"
        w.auth.create_project(project, w.owner.id)
        sid = w.services.sessions.start(w.owner, project, f"crash at write {k}")["id"]
        ops = []
        for path in paths:
            view, _ = w.services.blobs.put(w.owner, project, f"{k}{path}".encode())
            ops.append({"op": "write", "path": path, "blob_hash": view["hash"]})
        w.services.sessions.record_operations(w.owner, project, sid, ops)

        crashing = CrashingStore(w.store, crash_at=k)
        config = make_config(Path(w.services.config.data_dir) / project)
        with build_services(config, store=crashing, auth_db=w.auth) as doomed:
            try:
                doomed.landing.land(w.owner, project, sid)
                completed = True
            except InjectedCrash:
                completed = False

        other = w.services.sessions.start(w.owner, project, "another agent")["id"]
        view, _ = w.services.blobs.put(w.owner, project, b"other")
        w.services.sessions.record_operations(
            w.owner,
            project,
            other,
            [{"op": "write", "path": "other.txt", "blob_hash": view["hash"]}],
        )
        other_pos = w.services.landing.land(w.owner, project, other)["position"]
        retried = w.services.landing.land(w.owner, project, sid)
        again = w.services.landing.land(w.owner, project, sid)
        assert retried["position"] == again["position"]
        if completed:
            assert (retried["position"], other_pos) == (1, 2)
        check_invariants(
            w.services,
            project,
            w.owner,
            {sid: ("landed", retried["position"]), other: ("landed", other_pos)},
        )
        if completed:
            break
        k += 1
    assert k >= 4, (
        "a landing performs at least the attempt note, tree nodes, log record, head and session writes"
    )


def test_kill_9_of_a_landing_process(world: World, tmp_path: Path) -> None:
    w = world
    spec = {
        "data_dir": str(tmp_path / "killed"),
        "auth_url": f"sqlite:///{tmp_path / 'w0' / 'auth.db'}",
        "user_id": w.owner.id,
        "project": w.project,
        "kind": "local",
        "root": str(tmp_path / "w0" / "store"),
    }
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.service.agents", json.dumps(spec)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        deadline = time.monotonic() + 120
        while w.services.history.tip(w.project) < 8:
            assert proc.poll() is None, "the agent died on its own"
            assert time.monotonic() < deadline, "the agent landed too little"
            time.sleep(0.02)
        time.sleep(0.013)  # land somewhere in the middle of a landing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # Every session the dead agent started is either landed, or open: land it now.
    outcomes: dict[str, object] = {}
    for key in w.store.list(keys.sessions_prefix(w.project)):
        sid = key.rsplit("/", 1)[1]
        result = w.services.landing.land(w.owner, w.project, sid)
        assert w.services.landing.land(w.owner, w.project, sid)["position"] == result["position"]
        outcomes[sid] = ("landed", result["position"])
    check_invariants(w.services, w.project, w.owner, outcomes)
