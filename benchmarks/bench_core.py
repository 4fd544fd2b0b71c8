"""libmic-core vs pure Python vs the best PyPI package, side by side, from one run.

    python benchmarks/bench_core.py            # full run (the pure-Python columns take ~1 min)
    python benchmarks/bench_core.py --quick    # fewer repetitions

Columns: libmic-core (micforge.core, cffi) | pure Python (tests/core/pyref.py:
a textbook implementation of the same operation and format, including a
pure-Python BLAKE3) | PyPI (`blake3` for hashing, `rbloom` for blooms; rbloom
hashes with Python's hash(), not BLAKE3, so its filter is not interchangeable).
Ratios are "times faster than" (>1 = libmic-core wins). Numbers vary with the
machine and its load; docs/benchmarks.md records one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import blake3 as blake3_pkg  # noqa: E402
import rbloom  # noqa: E402

from micforge import core  # noqa: E402
from tests.core import pyref  # noqa: E402


def best_seconds(fn: Callable[[], object], repeat: int, min_total_s: float = 0.2) -> float:
    """Best per-call time over `repeat` rounds, each long enough to time reliably."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_total_s / max(repeat, 1) or calls >= 1 << 20:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def best_interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best per-call time of each function, their rounds alternating so that the
    background load of a shared machine hits all of them alike."""
    calls = []
    for fn in fns:
        n = 1
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            if time.perf_counter() - start >= 0.02 or n >= 1 << 20:
                break
            n *= 2
        calls.append(n)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls[i])
    return best


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:9.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds:9.2f} s "


def row(
    name: str, ours: float, pure: float | None, pypi: float | None, pypi_name: str = ""
) -> None:
    pure_s = f"{fmt_time(pure)}  ({pure / ours:7.1f}x)" if pure is not None else " " * 24
    pypi_s = f"{fmt_time(pypi)}  ({pypi / ours:5.2f}x {pypi_name})" if pypi is not None else ""
    print(f"{name:<38} {fmt_time(ours)}   {pure_s}   {pypi_s}")


def row_mbps(name: str, size: int, ours: float, pure: float, pypi: float) -> None:
    def mbps(s: float) -> str:
        return f"{size / s / 1e6:10.1f} MB/s"

    print(
        f"{name:<38} {mbps(ours)}   {mbps(pure)} ({pure / ours:7.0f}x)   "
        f"{mbps(pypi)} ({pypi / ours:5.2f}x blake3)"
    )


def sample_session(n_ops: int) -> core.SessionRecord:
    ops = []
    for i in range(n_ops):
        p = f"src/module{i // 50:03d}/file{i:05d}.py"
        if i % 10 == 9:
            ops.append(core.Operation(core.OP_DELETE, p, None, core.MODE_FILE, 0))
        else:
            ops.append(
                core.Operation(core.OP_WRITE, p, bytes([i % 256]) * 32, core.MODE_FILE, 1000 + i)
            )
    ops.sort(key=lambda o: o.path.encode())
    return core.SessionRecord(
        bytes(range(16)), core.STATE_OPEN, 41, 0, 0, "ada@example.com",
        "Refactor the module loader so plugins load lazily", 1 << 40, (1 << 40) + 5, ops,
        [core.Decision(f"decision {i}: keep the API", 1 << 40) for i in range(10)],
        [core.Message(core.ROLE_AGENT, f"message {i} " * 20, 1 << 40) for i in range(20)],
        [],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    pure_repeat = 1

    print(f"libmic-core {core.version()}  python {sys.version.split()[0]}  cpus {os.cpu_count()}")
    print(f"{'operation':<38} {'libmic-core':>12}   {'pure Python (ratio)':<24}   PyPI (ratio)")
    print("-" * 110)

    for size in (4 * 1024, 1024 * 1024):
        data = os.urandom(size)
        assert core.blake3(data) == blake3_pkg.blake3(data).digest() == pyref.blake3(data)
        ours, pypi = best_interleaved(
            [lambda d=data: core.blake3(d), lambda d=data: blake3_pkg.blake3(d).digest()],
            3 * repeat,
        )
        pure = best_seconds(lambda d=data: pyref.blake3(d), pure_repeat, 0.0)
        row_mbps(f"blake3 {size // 1024} KiB", size, ours, pure, pypi)
        ours_blob, pypi_blob = best_interleaved(
            [
                lambda d=data: core.blob_hash(d),
                lambda d=data: blake3_pkg.blake3(b"blob\0" + pyref.varint(len(d)) + d).digest(),
            ],
            3 * repeat,
        )
        pure_blob = best_seconds(lambda d=data: pyref.blob_hash(d), pure_repeat, 0.0)
        row_mbps(f"blob_hash {size // 1024} KiB", size, ours_blob, pure_blob, pypi_blob)

    paths = [f"src/pkg{i // 100:03d}/sub{i % 7}/file_{i:05d}.py" for i in range(10_000)]

    def ours_add() -> None:
        core.Bloom.for_items(10_000, 0.01).add_many(paths)

    def rbloom_add() -> None:
        rbloom.Bloom(10_000, 0.01).update(paths)

    def pure_add() -> None:
        pyref.PyBloom(1 << 17, 7).add_many(paths)

    ours_add_s, rbloom_add_s = best_interleaved([ours_add, rbloom_add], 3 * repeat)
    row(
        "bloom add_many 10,000 paths (1% fp)",
        ours_add_s,
        best_seconds(pure_add, pure_repeat, 0.0),
        rbloom_add_s,
        "rbloom",
    )
    # rbloom hashes with hash(str), which CPython caches inside each str object; paths
    # that just arrived from the wire are fresh objects, so time that case too.
    fresh_lists = iter([[(p + ".")[:-1] for p in paths] for _ in range(3 * repeat)])
    row(
        "  ... same, paths as fresh str objects",
        ours_add_s,
        None,
        best_seconds(lambda: rbloom.Bloom(10_000, 0.01).update(next(fresh_lists)), 3 * repeat, 0.0),
        "rbloom",
    )

    # A filter that is stored must hash the same in every process: rbloom's own
    # docs point to a hash_func for that; here BLAKE3 from the `blake3` package.
    def persistent_hash(path: str) -> int:
        return int.from_bytes(blake3_pkg.blake3(path.encode()).digest(16), "little", signed=True)

    row(
        "  ... rbloom with a persistent hash_func",
        ours_add_s,
        None,
        best_seconds(lambda: rbloom.Bloom(10_000, 0.01, persistent_hash).update(paths), repeat),
        "rbloom+blake3",
    )

    def ours_landing_add() -> None:
        core.Bloom.landing().add_many(paths)

    row("bloom add_many 10,000 (landing 2^23)", best_seconds(ours_landing_add, repeat), None, None)

    # Disjoint filters, so intersects() scans all 2^23 bits (its worst case): a
    # landing-sized filter (1,000 paths) against a small one (2 paths).
    a, b = core.Bloom.landing(), core.Bloom.landing()
    a.add_many(paths[:1000])
    b.add_many(["docs/other.md", "README"])
    assert not a.intersects(b)
    pa, pb = pyref.PyBloom(1 << 23, 7), pyref.PyBloom(1 << 23, 7)
    pa.add_many(paths[:1000])
    pb.add_many(["docs/other.md", "README"])
    ra, rb = rbloom.Bloom(1_000_000, 0.01), rbloom.Bloom(1_000_000, 0.01)
    ra.update(paths[:1000])
    rb.update(["docs/other.md", "README"])
    ours_x, rbloom_x = best_interleaved(
        [lambda: a.intersects(b), lambda: bool(ra & rb)], 3 * repeat
    )
    row(
        "bloom intersects (2^23 bits, disjoint)",
        ours_x,
        best_seconds(lambda: pa.intersects(pb), pure_repeat, 0.0),
        rbloom_x,
        "rbloom &, 9.6 Mbit",
    )
    probe = paths[5000:5100]
    ours_any, rbloom_any = best_interleaved(
        [lambda: a.may_contain_any(probe), lambda: any(p in ra for p in probe)], 3 * repeat
    )
    row(
        "bloom may_contain_any 100 paths",
        ours_any,
        best_seconds(lambda: any(pa.may_contain(p) for p in probe), pure_repeat, 0.0),
        rbloom_any,
        "rbloom",
    )
    landing_bytes = a.to_bytes()
    row(
        "bloom from_bytes (1,000 paths, sparse)",
        best_seconds(lambda: core.Bloom.from_bytes(landing_bytes), repeat),
        best_seconds(lambda: pyref.validate_bloom(landing_bytes), pure_repeat, 0.0),
        None,
    )

    session = sample_session(1_000)
    encoded = core.encode_session(session)
    assert encoded == pyref.encode_session(session)
    assert core.decode_session(encoded) == session == pyref.decode_session(encoded)
    row(
        "session encode (1,000 ops)",
        best_seconds(lambda: core.encode_session(session), repeat),
        best_seconds(lambda: pyref.encode_session(session), pure_repeat, 0.0),
        None,
    )
    # decode_session validates every byte in C and returns the header, decisions
    # and conversation as objects and the operations as a lazy `Operations` view;
    # the rows below it add what a reader then does with the operations. The
    # pure-Python decoder validates the same and builds every object eagerly.
    pure_decode = best_seconds(lambda: pyref.decode_session(encoded), 3, 0.5)
    row(
        "session decode (1,000 ops)",
        best_seconds(lambda: core.decode_session(encoded), repeat),
        pure_decode,
        None,
    )
    row(
        "  ... and its paths (.operations.paths)",
        best_seconds(lambda: core.decode_session(encoded).operations.paths, repeat),
        pure_decode,
        None,
    )
    row(
        "  ... and all 1,000 Operation objects",
        best_seconds(lambda: list(core.decode_session(encoded).operations), repeat),
        pure_decode,
        None,
    )
    decoded = core.decode_session(encoded)
    row(
        "session re-encode, new state (decoded)",
        best_seconds(
            lambda: core.encode_session(dataclasses.replace(decoded, state=core.STATE_LANDED)),
            repeat,
        ),
        None,
        None,
    )
    landing = core.LandingRecord(
        7,
        bytes(16),
        bytes(32),
        bytes(32),
        1 << 40,
        "ada",
        "goal",
        [o.path for o in session.operations],
    )
    landing_encoded = core.encode_landing(landing)
    row(
        "landing encode (1,000 paths)",
        best_seconds(lambda: core.encode_landing(landing), repeat),
        best_seconds(lambda: pyref.encode_landing(landing), pure_repeat, 0.0),
        None,
    )
    row(
        "landing decode (1,000 paths)",
        best_seconds(lambda: core.decode_landing(landing_encoded), repeat),
        None,
        None,
    )
    print(f"(session: {len(encoded):,} bytes encoded; ratios in parentheses are 'x faster than')")


if __name__ == "__main__":
    main()
