"""docs/formats.md "Tree nodes", implemented again in plain Python, must give the
library's roots and node bytes: the document is the format, not the code."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from micforge.core import blake3
from micforge.core.tree import Tree, TreeEntry

NODE_ENTRIES_MAX = 1024
NODE_SPLIT_BYTES = 32 * 1024
CHUNK_ENTRIES_MIN = 2
CHUNK_ENTRIES_TARGET = 32

# (key, hash, mode, count, size); a leaf entry has count 1.
RefEntry = tuple[bytes, bytes, int, int, int]


def is_boundary_key(level: int, key: bytes) -> bool:
    digest = blake3(b"chunk\x00" + bytes([level]) + key)
    return int.from_bytes(digest[:4], "little") % CHUNK_ENTRIES_TARGET == 0


def encode_node(level: int, entries: list[RefEntry]) -> bytes:
    out = [b"MICT", bytes([1, level]), struct.pack("<H", len(entries))]
    for key, h, mode, count, size in entries:
        out.append(struct.pack("<H", len(key)) + key + h)
        out.append(
            struct.pack("<BQ", mode, size) if level == 0 else struct.pack("<QQ", count, size)
        )
    return b"".join(out)


def entry_bytes(level: int, key: bytes) -> int:
    return 2 + len(key) + 32 + (9 if level == 0 else 16)


def chunk_level(level: int, entries: list[RefEntry]) -> list[bytes]:
    nodes: list[bytes] = []
    current: list[RefEntry] = []
    size = 0
    for e in entries:
        current.append(e)
        size += entry_bytes(level, e[0])
        if (
            len(current) >= NODE_ENTRIES_MAX
            or size >= NODE_SPLIT_BYTES
            or (len(current) >= CHUNK_ENTRIES_MIN and is_boundary_key(level, e[0]))
        ):
            nodes.append(encode_node(level, current))
            current, size = [], 0
    if current:
        nodes.append(encode_node(level, current))
    return nodes


def reference_build(entries: list[TreeEntry]) -> tuple[bytes, dict[bytes, bytes]]:
    level_entries: list[RefEntry] = [
        (e.path.encode(), e.blob_hash, e.mode, 1, e.size) for e in entries
    ]
    store: dict[bytes, bytes] = {}
    if not level_entries:
        empty = encode_node(0, [])
        store[blake3(b"tree\x00" + empty)] = empty
        return blake3(b"tree\x00" + empty), store
    level = 0
    while True:
        nodes = chunk_level(level, level_entries)
        parents: list[RefEntry] = []
        for data in nodes:
            node_hash = blake3(b"tree\x00" + data)
            store[node_hash] = data
            children = level_entries[: int.from_bytes(data[6:8], "little")]
            level_entries = level_entries[len(children) :]
            parents.append(
                (
                    children[-1][0],
                    node_hash,
                    0,
                    sum(c[3] for c in children),
                    sum(c[4] for c in children),
                )
            )
        if len(nodes) == 1:
            return parents[0][1], store
        level_entries, level = parents, level + 1


paths = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(paths, st.tuples(st.integers(0, 255), st.integers(0, 2)), max_size=400),
    st.integers(0, 5_000),
)
def test_library_matches_the_documented_format(model: dict, extra: int) -> None:
    # Extra generated paths make trees of two or three levels.
    model = dict(model)
    for i in range(extra):
        model[f"gen/{i:05d}"] = (i % 256, i % 3)
    entries = [
        TreeEntry(p, bytes([v]) * 32, mode, v * 11)
        for p, (v, mode) in sorted(model.items(), key=lambda kv: kv[0].encode())
    ]
    root, nodes = Tree(lambda h: b"").build(entries)
    ref_root, ref_nodes = reference_build(entries)
    assert root == ref_root
    assert dict(nodes) == ref_nodes


def test_long_keys_split_on_bytes() -> None:
    entries = [TreeEntry("k" * 4000 + f"{i:04d}", b"\x01" * 32) for i in range(100)]
    root, nodes = Tree(lambda h: b"").build(entries)
    assert (root, dict(nodes)) == reference_build(entries)
