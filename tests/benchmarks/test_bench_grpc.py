"""bench_grpc's untimed housekeeping is fair to every server it compares.

The servers run in turn within a sample and each deletes its blob once read; on a
`discard` mount the next journal commit (the next fsync) pays for that deletion.
So the page cache must be synced before every upload, not once per sample.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_grpc.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_grpc_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path  # the script puts src/ first for checkouts; keep ours
    return module


def test_the_page_cache_is_synced_before_every_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load_script()
    events: list[str] = []
    started = itertools.count()

    class FakeServer:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.name = f"server{next(started)}"
            self._stored: dict[str, int] = {}

        def upload(self, data: bytes) -> str:
            events.append(f"{self.name} upload")
            self._stored["k"] = len(data)
            return "k"

        def download(self, key: str) -> int:
            return self._stored[key]

        def discard(self, key: str) -> None:
            events.append(f"{self.name} discard")
            del self._stored[key]

        def close(self) -> None:
            pass

    for name in ("EchoBench", "DurableEchoBench", "MicforgeBench"):
        monkeypatch.setattr(bench, name, FakeServer)
    monkeypatch.setattr(bench, "tune_allocator", lambda: "allocator untouched")
    monkeypatch.setattr(os, "sync", lambda: events.append("sync"))

    assert bench.main(["--sizes-mib", "1", "--repeat-small", "2"]) == 0

    uploads = [i for i, event in enumerate(events) if event.endswith(" upload")]
    assert len(uploads) == 3 * 4  # an untimed round and two samples, four servers each
    for i in uploads:
        before = events[:i]
        last_discard = max((j for j, e in enumerate(before) if e.endswith(" discard")), default=-1)
        assert "sync" in before[last_discard + 1 :], (
            f"{events[i]!r} (event {i}) starts before the last deletion was synced: {events}"
        )
