"""Store benchmark: small-object latency, conditional-write throughput, cache hits.

Run from the repository root:

    python benchmarks/bench_store.py            # full run (~1 min)
    python benchmarks/bench_store.py --quick    # smoke run

Backends: LocalStore in a temp directory (fsync on, as in production) and
S3Store against a moto server subprocess on loopback (the same server the
tests use, see tests/fixtures/moto_server.py). Prints one markdown table;
docs/benchmarks.md records a run. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import boto3  # noqa: E402

from micforge.storage import (  # noqa: E402
    CachedStore,
    LocalStore,
    PreconditionFailed,
    S3Store,
    keys,
)

SMALL_BYTES = 1024


def percentile(samples_s: list[float], q: float) -> float:
    ordered = sorted(samples_s)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index] * 1000


def timed(op: Callable[[int], object], count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        op(i)
        samples.append(time.perf_counter() - start)
    return samples


def latency_row(name: str, samples: list[float]) -> str:
    return (
        f"| {name} | {percentile(samples, 50):.3f} | {percentile(samples, 99):.3f} "
        f"| {len(samples)} |"
    )


def cas_throughput(make_store: Callable[[], Any], clients: int, seconds: float) -> float:
    """Successful compare-and-swap increments per second on one contended counter."""
    setup = make_store()
    counter = keys.head(f"bench-{uuid.uuid4().hex[:8]}")
    setup.put(counter, b"0")
    stores = [make_store() for _ in range(clients)]
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def worker(n: int) -> None:
        store = stores[n]
        while time.perf_counter() < stop:
            data, etag = store.get(counter)
            try:
                store.put(counter, str(int(data) + 1).encode(), if_match=etag)
                done[n] += 1
            except PreconditionFailed:
                pass

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert int(setup.get(counter)[0]) == sum(done)  # sanity of the run itself, not a test
    return sum(done) / elapsed


def create_throughput(make_store: Callable[[], Any], clients: int, seconds: float) -> float:
    """If-None-Match creations per second on distinct keys (no contention)."""
    stores = [make_store() for _ in range(clients)]
    done = [0] * clients
    run = uuid.uuid4().hex[:8]
    stop = time.perf_counter() + seconds

    def worker(n: int) -> None:
        store = stores[n]
        i = 0
        while time.perf_counter() < stop:
            i += 1
            store.put(
                keys.tree_node(run, f"{n:02x}{i:062x}"), b"x" * SMALL_BYTES, if_none_match=True
            )
            done[n] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def start_moto() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fixtures" / "moto_server.py"), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"},
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke run")
    args = parser.parse_args()
    count = 50 if args.quick else 500
    seconds = 0.5 if args.quick else 3.0

    proc, endpoint = start_moto()
    tmp = tempfile.TemporaryDirectory(prefix="bench-store-")
    try:
        credentials = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "bench",
            "aws_secret_access_key": "bench",
        }
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        client = boto3.session.Session().client("s3", **credentials)
        client.create_bucket(Bucket=bucket)
        client.close()
        local_root = Path(tmp.name) / "store"
        backends: dict[str, Callable[[], Any]] = {
            "LocalStore": lambda: LocalStore(local_root),
            "S3Store (moto)": lambda: S3Store(bucket, **credentials),
        }
        payload = os.urandom(SMALL_BYTES)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, objects {SMALL_BYTES} B\n")
        print("| operation | p50 ms | p99 ms | samples |")
        print("|---|---|---|---|")
        for name, make in backends.items():
            store = make()
            put = timed(lambda i, s=store: s.put(keys.blob("lat", f"{i:064x}"), payload), count)
            get = timed(lambda i, s=store: s.get(keys.blob("lat", f"{i:064x}")), count)
            head = timed(lambda i, s=store: s.head(keys.blob("lat", f"{i:064x}")), count)
            print(latency_row(f"{name} PUT", put))
            print(latency_row(f"{name} GET", get))
            print(latency_row(f"{name} HEAD", head))

        store = backends["S3Store (moto)"]()
        ram = CachedStore(store, ram_bytes=64 << 20)
        disk = CachedStore(
            store, ram_bytes=0, disk_dir=Path(tmp.name) / "cache", disk_bytes=64 << 20
        )
        for i in range(count):
            ram.get(keys.blob("lat", f"{i:064x}"))
            disk.get(keys.blob("lat", f"{i:064x}"))
        print(
            latency_row(
                "CachedStore RAM hit",
                timed(lambda i: ram.get(keys.blob("lat", f"{i:064x}")), count),
            )
        )
        print(
            latency_row(
                "CachedStore disk hit",
                timed(lambda i: disk.get(keys.blob("lat", f"{i:064x}")), count),
            )
        )

        print("\n| conditional writes | 1 client /s | 8 clients /s |")
        print("|---|---|---|")
        for name, make in backends.items():
            cas = [cas_throughput(make, n, seconds) for n in (1, 8)]
            create = [create_throughput(make, n, seconds) for n in (1, 8)]
            print(f"| {name} CAS increments, one key | {cas[0]:.0f} | {cas[1]:.0f} |")
            print(
                f"| {name} If-None-Match creates, distinct keys | {create[0]:.0f} | {create[1]:.0f} |"
            )
    finally:
        proc.terminate()
        proc.wait()
        tmp.cleanup()


if __name__ == "__main__":
    main()
