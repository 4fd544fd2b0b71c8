"""A real in-memory node store for tree tests: re-hashes every read, counts loads."""

from __future__ import annotations

import pytest

from micforge.core import blake3
from micforge.core.tree import Tree


class NodeStore:
    """Content-addressed nodes in a dict. Every get re-hashes what it returns, so a
    node stored under the wrong name fails here, not somewhere downstream."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.loads = 0

    def put_all(self, nodes: list[tuple[bytes, bytes]]) -> int:
        added = 0
        for node_hash, data in nodes:
            assert blake3(b"tree\x00" + data) == node_hash, "node stored under a wrong hash"
            if node_hash not in self.nodes:
                self.nodes[node_hash] = data
                added += 1
        return added

    def load(self, node_hash: bytes) -> bytes:
        self.loads += 1
        data = self.nodes[node_hash]  # KeyError when absent: the loader contract
        assert blake3(b"tree\x00" + data) == node_hash
        return data


@pytest.fixture
def store() -> NodeStore:
    return NodeStore()


@pytest.fixture
def tree(store: NodeStore):
    with Tree(store.load) as t:
        yield t
