"""Conditional writes are atomic across processes, on every backend.

8 processes x 50 compare-and-swap increments of one counter must end at
exactly 400 with every value 1..400 written exactly once, and each of
several If-None-Match creation races must have exactly one winner.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from micforge.storage import LocalStore, keys
from tests.storage._workers import race_and_count

PROCESSES = 8
INCREMENTS = 50
RACES = 10


@pytest.fixture(params=["local", "s3"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Any]:
    if request.param == "local":
        spec: dict[str, Any] = {"kind": "local", "root": str(tmp_path / "store")}
        return spec, LocalStore(spec["root"])
    store = request.getfixturevalue("s3_store")
    credentials = request.getfixturevalue("s3_credentials")
    spec = {
        "kind": "s3",
        "bucket": store.bucket,
        "kwargs": {**credentials, "retry": dataclasses.asdict(store.retry)},
    }
    return spec, store


@pytest.mark.timeout(180)
def test_cas_counter_and_creation_races(store_spec: tuple[dict[str, Any], Any]) -> None:
    spec, store = store_spec
    counter_key = keys.head("counter")
    store.put(counter_key, b"0", if_none_match=True)
    race_keys = [keys.log("race", n) for n in range(1, RACES + 1)]

    # spawn, not fork: the parent (an xdist worker) has threads, and children build their own clients.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(PROCESSES)
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            race_and_count,
            [(spec, w, barrier, race_keys, counter_key, INCREMENTS) for w in range(PROCESSES)],
        )

    total = PROCESSES * INCREMENTS
    assert store.get(counter_key)[0] == str(total).encode()
    written = sorted(value for _, values, _ in results for value in values)
    assert written == list(range(1, total + 1)), "a CAS increment was lost or duplicated"

    winners = [key for won, _, _ in results for key in won]
    assert sorted(winners) == sorted(race_keys), "each creation race needs exactly one winner"
    for worker, (won, _, _) in enumerate(results):
        for key in won:
            assert store.get(key)[0] == f"worker {worker}".encode()
