"""Every benchmark script still runs end to end, at its smallest size.

Speed is measured by the scripts, never asserted here: this only keeps them from
rotting (an import, a renamed API, a table that no longer prints) between the
runs whose numbers go into docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# script, smallest arguments, a line the run must print
RUNS = [
    ("bench_core.py", ["--quick"], "blake3 4 KiB"),
    ("bench_store.py", ["--quick"], "LocalStore"),
    ("bench_tree.py", ["--sizes", "1000", "--trials", "1"], "1-file landing time"),
    (
        "bench_landing.py",
        ["--sessions", "4", "--agents", "1", "--backends", "local"]
        + ["--history", "100", "--history-max", "100"],
        "# total",
    ),
    ("bench_rest.py", ["--quick", "--seconds", "1", "--clients", "2"], "full session"),
    ("bench_grpc.py", ["--sizes-mib", "1", "--repeat-small", "1"], "| upload    |    1 MiB |"),
]


@pytest.mark.parametrize(("script", "args", "expected"), RUNS, ids=[r[0] for r in RUNS])
def test_benchmark_runs(script: str, args: list[str], expected: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert expected in result.stdout, result.stdout[-2000:]


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {path.name for path in BENCHMARKS.glob("bench_*.py")}
    assert scripts == {script for script, _, _ in RUNS}
