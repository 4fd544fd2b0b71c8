"""file_directory_collisions (the landing's check that no path is a file and a
directory at once) against a brute-force reading of the whole new tree."""

from __future__ import annotations

import random

import pytest

from micforge.core.tree import Tree, TreeEdit, TreeEntry
from micforge.service.landing import file_directory_collisions

from .conftest import NodeStore

# Segments that are byte prefixes of each other, and characters that sort just
# below and above '/': the cases where "starts with" and "is below" differ.
_SEGMENTS = ["a", "a.b", "a-c", "a0", "b", "ab"]


def _random_path(rng: random.Random) -> str:
    return "/".join(rng.choice(_SEGMENTS) for _ in range(rng.randint(1, 3)))


def _expected(parent: set[str], new: set[str]) -> list[str]:
    found: set[str] = set()
    for path in new - parent:  # added paths only, as the landing checks
        parts = path.split("/")
        for depth in range(1, len(parts)):
            ancestor = "/".join(parts[:depth])
            if ancestor in new:
                found.update((ancestor, path))
        below = sorted((q for q in new if q.startswith(path + "/")), key=str.encode)
        if below:
            found.update((path, below[0]))
    return sorted(found, key=str.encode)


@pytest.mark.parametrize("seed", range(150))
def test_collisions_match_a_brute_force_reading(seed: int) -> None:
    rng = random.Random(seed)
    store = NodeStore()
    with Tree(store.load) as tree:
        parent_paths = {_random_path(rng) for _ in range(rng.randint(0, 12))}
        entries = [
            TreeEntry(p, bytes([7]) * 32, 0, 1) for p in sorted(parent_paths, key=str.encode)
        ]
        parent_root, nodes = tree.build(entries)
        store.put_all(nodes)
        edits: dict[str, TreeEdit] = {}
        for _ in range(rng.randint(0, 8)):
            path = _random_path(rng) if rng.random() < 0.7 else rng.choice([*parent_paths, "a"])
            delete = path in parent_paths and rng.random() < 0.5
            edits[path] = TreeEdit(path, None if delete else bytes([9]) * 32)
        root, nodes = tree.apply(parent_root, list(edits.values()))
        store.put_all(nodes)
        new_paths = (parent_paths | {p for p, e in edits.items() if e.blob_hash}) - {
            p for p, e in edits.items() if e.blob_hash is None
        }
        assert file_directory_collisions(tree, parent_root, root) == _expected(
            parent_paths, new_paths
        )
