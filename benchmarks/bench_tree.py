#!/usr/bin/env python3
"""Prolly-tree landing cost against project size, beside re-encoding the whole tree.

One run. For trees of 10,000, 100,000 and 1,000,000 files (in-memory dict as the
node store, so only the tree's own work is measured):

* build the tree from sorted entries (one pass);
* land a 1-file change and a 100-file change with ``Tree.apply``: new nodes
  written, bytes written, wall time (median over several changes, each from the
  same base root) and nodes read through the loader;
* diff two roots one file apart: time and nodes read;
* the reference forge's way, side by side: re-encode the whole tree on every
  landing (``Tree.build`` of every entry with the change applied: same codec,
  same language, only O(files) instead of O(changed · depth)).

Targets (issue #6): a 1-file change writes <= 64 KiB, and its time grows <= 3x
from 10,000 to 1,000,000 files.

    python benchmarks/bench_tree.py [--sizes 10000 100000 1000000] [--trials 21]

Results go to docs/benchmarks.md ("Tree") by hand, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from micforge.core import blake3  # noqa: E402
from micforge.core.tree import Tree, TreeEdit, TreeEntry  # noqa: E402

KiB = 1024


def path_of(i: int) -> str:
    # A plausible layout: ~1,000 files per directory, three levels deep.
    return f"src/pkg{i % 97:02d}/mod{(i // 97) % 11}/file{i:07d}.py"


def sorted_indices(n: int) -> list[int]:
    return sorted(range(n), key=lambda i: path_of(i).encode())


def entry_of(i: int, version: int = 0) -> TreeEntry:
    return TreeEntry(path_of(i), blake3(b"%d:%d" % (i, version)), 0, 100 + i % 5000)


class DictStore:
    """The node store: a dict, plus a load counter."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.loads = 0

    def load(self, node_hash: bytes) -> bytes:
        self.loads += 1
        return self.nodes[node_hash]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def edits_for(rng: random.Random, n: int, count: int, version: int) -> list[TreeEdit]:
    edits: dict[str, TreeEdit] = {}
    while len(edits) < count:
        i = rng.randrange(n)
        kind = rng.random()
        if kind < 0.8 or count == 1:  # mostly modifications; one-file changes always modify
            e = entry_of(i, version)
            edits[e.path] = TreeEdit(e.path, e.blob_hash, e.mode, e.size)
        elif kind < 0.9:
            new_path = path_of(i) + ".new"
            edits[new_path] = TreeEdit(new_path, blake3(new_path.encode()), 0, 1)
        else:
            edits[path_of(i)] = TreeEdit(path_of(i), None)
    return list(edits.values())


def full_reencode(order: list[int], edits: list[TreeEdit]) -> Iterator[TreeEntry]:
    """Every entry with the edits applied, in path order: a merge of two sorted streams."""
    pending = sorted(edits, key=lambda e: e.path.encode())

    def written(e: TreeEdit) -> Iterator[TreeEntry]:
        if e.blob_hash is not None:
            yield TreeEntry(e.path, e.blob_hash, e.mode, e.size)

    k = 0
    for i in order:
        path = path_of(i)
        while k < len(pending) and pending[k].path.encode() < path.encode():
            yield from written(pending[k])
            k += 1
        if k < len(pending) and pending[k].path == path:
            yield from written(pending[k])
            k += 1
        else:
            yield entry_of(i)
    for e in pending[k:]:
        yield from written(e)


def bench_size(n: int, trials: int, rng: random.Random) -> dict[str, float]:
    store = DictStore()
    tree = Tree(store.load)
    order = sorted_indices(n)
    build_s, (root, nodes) = timed(lambda: tree.build(entry_of(i) for i in order))
    store.nodes.update(nodes)
    tree_bytes = sum(len(d) for _, d in nodes)
    result: dict[str, float] = {
        "files": n,
        "build_s": build_s,
        "tree_nodes": len(nodes),
        "tree_bytes": tree_bytes,
    }
    assert tree.stats(root)[0] == n

    for count in (1, 100):
        times, written, written_bytes, reads = [], [], [], []
        for t in range(trials if count == 1 else max(3, trials // 3)):
            edits = edits_for(rng, n, count, version=t + 1)
            store.loads = 0
            seconds, (new_root, new_nodes) = timed(lambda e=edits: tree.apply(root, e))
            times.append(seconds)
            reads.append(store.loads)
            fresh = [(h, d) for h, d in new_nodes if h not in store.nodes]
            written.append(len(fresh))
            written_bytes.append(sum(len(d) for _, d in fresh))
        result[f"land{count}_s"] = statistics.median(times)
        result[f"land{count}_nodes"] = statistics.median(written)
        result[f"land{count}_bytes"] = statistics.median(written_bytes)
        result[f"land{count}_bytes_max"] = max(written_bytes)
        result[f"land{count}_reads"] = statistics.median(reads)

        # The reference: re-encode the whole tree for the same kind of change.
        edits = edits_for(rng, n, count, version=999)
        ref_s, (ref_root, ref_nodes) = timed(lambda e=edits: tree.build(full_reencode(order, e)))
        check_root, check_nodes = tree.apply(root, edits)
        assert ref_root == check_root, "apply and a full rebuild disagree"
        result[f"ref{count}_s"] = ref_s
        result[f"ref{count}_bytes"] = sum(len(d) for _, d in ref_nodes)

    # Diff of two roots one file apart (the new nodes stored first).
    edits = edits_for(rng, n, 1, version=12345)
    other, other_nodes = tree.apply(root, edits)
    store.nodes.update(other_nodes)
    diff_times, diff_reads = [], []
    for _ in range(trials):
        store.loads = 0
        seconds, changes = timed(lambda: tree.diff(root, other))
        diff_times.append(seconds)
        diff_reads.append(store.loads)
        assert len(changes) == 1
    result["diff_s"] = statistics.median(diff_times)
    result["diff_reads"] = statistics.median(diff_reads)
    tree.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--trials", type=int, default=21)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for n in args.sizes:
        row = bench_size(n, args.trials, rng)
        rows.append(row)
        print(f"done {n:,} files: build {row['build_s']:.2f} s", file=sys.stderr)

    print("| files | build s | tree nodes | tree MiB |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['files']:,} | {r['build_s']:.2f} | {r['tree_nodes']:,.0f} "
            f"| {r['tree_bytes'] / KiB / KiB:.1f} |"
        )
    print()
    print(
        "| files | change | nodes written | KiB written | ms (median) | nodes read "
        "| full re-encode ms | full re-encode KiB | speedup |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for count in (1, 100):
            ms = r[f"land{count}_s"] * 1000
            ref_ms = r[f"ref{count}_s"] * 1000
            print(
                f"| {r['files']:,} | {count} | {r[f'land{count}_nodes']:.0f} "
                f"| {r[f'land{count}_bytes'] / KiB:.1f} (max {r[f'land{count}_bytes_max'] / KiB:.1f}) "
                f"| {ms:.2f} | {r[f'land{count}_reads']:.0f} | {ref_ms:,.0f} "
                f"| {r[f'ref{count}_bytes'] / KiB:,.0f} | {ref_ms / ms:,.0f}x |"
            )
    print()
    print("| files | diff one file apart ms | nodes read |")
    print("|---:|---:|---:|")
    for r in rows:
        print(f"| {r['files']:,} | {r['diff_s'] * 1000:.2f} | {r['diff_reads']:.0f} |")
    print()
    first, last = rows[0], rows[-1]
    growth = last["land1_s"] / first["land1_s"]
    worst = max(r["land1_bytes_max"] for r in rows)
    print(
        f"1-file landing time {first['files']:,} -> {last['files']:,} files: x{growth:.2f} "
        f"(target <= 3); largest 1-file write: {worst / KiB:.1f} KiB (target <= 64)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
