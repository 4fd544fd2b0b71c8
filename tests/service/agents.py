"""Agent processes for the concurrency and kill -9 tests: each builds its own Services
from the same store and auth DB, as stateless agents in separate processes do."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from micforge.auth import AuthDB
from micforge.service import build_services
from micforge.storage import LocalStore, S3Store

from .conftest import CHEAP_SCRYPT, make_config


def open_backend(spec: dict):
    if spec["kind"] == "local":
        return LocalStore(spec["root"])
    return S3Store(spec["bucket"], "", **spec["s3"])


def run_agent(
    spec: dict, agent: int, sessions: int, seed: int, *, below_hot: float = 0.2
) -> dict[str, object]:
    """Start, record and land ``sessions`` sessions; returns sid -> outcome. A share
    ``below_hot`` of the sessions that touch a hot file write below it instead."""
    from micforge.errors import Conflict

    rng = random.Random(seed)
    data_dir = Path(spec["data_dir"]) / f"agent{agent}"
    config = make_config(data_dir, landing_max_attempts=200)
    store = open_backend(spec)
    auth = AuthDB.open(spec["auth_url"], scrypt_params=CHEAP_SCRYPT)
    services = build_services(config, store=store, auth_db=auth)
    user = auth.get_user(spec["user_id"])
    project = spec["project"]
    outcomes: dict[str, object] = {}
    try:
        for i in range(sessions):
            sid = services.sessions.start(user, project, f"agent {agent} change {i}")["id"]
            paths = [f"agent{agent}/file{i}"]
            if rng.random() < 0.4:
                # Now and then below a hot path rather than on it: a file and a
                # directory at once, which the landing must refuse.
                deep = "/deep" if rng.random() < below_hot else ""
                paths.append(f"hot/{rng.randrange(4)}{deep}")
            ops = []
            for path in paths:
                view, _ = services.blobs.put(user, project, f"{agent}:{i}:{path}".encode())
                ops.append({"op": "write", "path": path, "blob_hash": view["hash"]})
            services.sessions.record_operations(user, project, sid, ops)
            try:
                outcomes[sid] = ("landed", services.landing.land(user, project, sid)["position"])
            except Conflict as conflict:
                outcomes[sid] = ("conflict", conflict.paths)
    finally:
        services.close()
        store.close()
        auth.close()
    return outcomes


def land_forever(spec: dict) -> None:
    """For the kill -9 test: land sessions until killed. None of them collides with a
    file (a conflicted session would be neither landed nor open, which that test
    expects of every session the agent left)."""
    run_agent(spec, agent=99, sessions=10_000, seed=7, below_hot=0.0)


if __name__ == "__main__":
    import json

    land_forever(json.loads(sys.argv[1]))
