"""REST throughput and latency against a real `micforge serve` process on loopback.

    python benchmarks/bench_rest.py [--quick] [--clients 8] [--seconds 10]

Measures, with N concurrent clients (threads, one keep-alive session each):
GET /api/mic/projects/{p}, blob downloads of 4 KiB and 1 MiB, and full
sessions per second (start, 10 blob uploads, 10 operation requests, land),
each client in its own paths so sessions never conflict. Prints a Markdown
table for docs/benchmarks.md. The clients share the machine with the server,
so on a small box the numbers include the clients' own CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.server import Api, start_server  # noqa: E402  (the same real server the tests use)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run_concurrently(
    clients: int, seconds: float, make_call: Callable[[int], Callable[[], None]]
) -> tuple[float, float, float, int]:
    """(ops per second, p50 ms, p99 ms, count) of ``make_call(i)()`` run by ``clients`` threads."""
    latencies_ms: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        call = make_call(index)
        start.wait()
        try:
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                call()
                latencies_ms[index].append((time.perf_counter() - began) * 1000.0)
        except BaseException as error:  # surfaced below; a benchmark must not hide failures
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed_s = time.perf_counter() - began
    if errors:
        raise errors[0]
    merged = sorted(v for values in latencies_ms for v in values)
    return len(merged) / elapsed_s, _percentile(merged, 0.5), _percentile(merged, 0.99), len(merged)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 s per measurement (smoke run)")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds

    with tempfile.TemporaryDirectory(prefix="bench-rest-") as tmp:
        server = start_server(Path(tmp) / "data", {"MICFORGE_LOG_LEVEL": "WARNING"})
        try:
            token = server.create_user("bench@example.com").token
            admin = Api(server.url, token)
            project = "bench"
            assert admin.post("/api/mic/projects", json={"id": project}).status_code == 201
            blob_small = admin.post(
                f"/api/mic/projects/{project}/blobs", data=os.urandom(4096)
            ).json()
            blob_large = admin.post(
                f"/api/mic/projects/{project}/blobs", data=os.urandom(1024 * 1024)
            ).json()

            def getter(
                path: str, size_bytes: int | None = None
            ) -> Callable[[int], Callable[[], None]]:
                def make(_: int) -> Callable[[], None]:
                    session = requests.Session()
                    session.headers["Authorization"] = f"Bearer {token}"
                    url = server.url + path

                    def call() -> None:
                        response = session.get(url, timeout=60)
                        if response.status_code != 200 or (
                            size_bytes is not None and len(response.content) != size_bytes
                        ):
                            raise RuntimeError(f"GET {path}: {response.status_code}")

                    return call

                return make

            def session_flow(index: int) -> Callable[[], None]:
                api = Api(server.url, token)
                counter = [0]

                def call() -> None:
                    counter[0] += 1
                    base = f"/api/mic/projects/{project}/sessions"
                    sid = api.post(base, json={"goal": "bench"}).json()["id"]
                    for n in range(10):
                        data = f"{index}/{counter[0]}/{n}".encode() + os.urandom(64)
                        blob = api.post(f"/api/mic/projects/{project}/blobs", data=data).json()
                        path = f"c{index}/s{counter[0]}/f{n}.txt"
                        op = {"op": "write", "path": path, "blob_hash": blob["hash"]}
                        if api.post(f"{base}/{sid}/operations", json=op).status_code != 200:
                            raise RuntimeError("record failed")
                    landed = api.post(f"{base}/{sid}/land")
                    if landed.status_code != 200:
                        raise RuntimeError(f"land: {landed.status_code} {landed.text}")

                return call

            rows = [
                ("GET /api/mic/projects/{p}", getter(f"/api/mic/projects/{project}")),
                (
                    "GET blob 4 KiB",
                    getter(f"/api/mic/projects/{project}/blobs/{blob_small['hash']}", 4096),
                ),
                (
                    "GET blob 1 MiB",
                    getter(f"/api/mic/projects/{project}/blobs/{blob_large['hash']}", 1024 * 1024),
                ),
            ]
            print(f"clients: {args.clients}, {seconds:.0f} s per row, server {server.url}\n")
            print("| request | requests/s | p50 ms | p99 ms | requests |")
            print("|---|---|---|---|---|")
            for name, make in rows:
                rate, p50, p99, count = run_concurrently(args.clients, seconds, make)
                print(f"| {name} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {count} |")
            print(
                "\n| full session (start, 10 blobs, 10 ops, land) | sessions/s | p50 ms | p99 ms | sessions |"
            )
            print("|---|---|---|---|---|")
            for clients in (1, args.clients):
                rate, p50, p99, count = run_concurrently(clients, seconds * 2, session_flow)
                print(f"| {clients} client(s) | {rate:.1f} | {p50:.1f} | {p99:.1f} | {count} |")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
