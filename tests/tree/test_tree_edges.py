"""Edge cases, golden hashes, costs and error mapping of micforge.core.tree."""

from __future__ import annotations

import struct
import threading

import pytest

from micforge.core import MODE_EXEC, MODE_FILE, MODE_SYMLINK, Corrupt, InvalidArgument, blake3
from micforge.core._ffi import InvalidHandle, NotFoundNode
from micforge.core.tree import (
    EMPTY_TREE_HASH,
    NODE_BYTES_MAX,
    PATH_BYTES_MAX,
    Tree,
    TreeEdit,
    TreeEntry,
)

from .conftest import NodeStore


def entries_for(paths: list[str], seed: int = 1) -> list[TreeEntry]:
    return [
        TreeEntry(p, bytes([i % 256]) + bytes([seed]) * 31, MODE_FILE, len(p.encode()))
        for i, p in enumerate(sorted(paths, key=str.encode))
    ]


def build(tree: Tree, store: NodeStore, entries: list[TreeEntry]) -> bytes:
    root, nodes = tree.build(entries)
    store.put_all(nodes)
    return root


def test_empty_tree_hash_is_pinned_and_needs_no_store(tree: Tree, store: NodeStore) -> None:
    assert (
        EMPTY_TREE_HASH.hex() == "9d64d302ad451434581da742bc366d3e62995cd10a6416e91717537ce5932c36"
    )
    # An independent encoding (docs/formats.md): magic, version, level 0, count 0.
    assert blake3(b"tree\x00" + b"MICT\x01\x00\x00\x00") == EMPTY_TREE_HASH
    assert tree.build([])[0] == EMPTY_TREE_HASH
    assert tree.stats(EMPTY_TREE_HASH) == (0, 0)
    assert tree.lookup(EMPTY_TREE_HASH, "a") is None
    assert tree.list(EMPTY_TREE_HASH) == []
    assert store.loads == 0


def test_fixed_tree_root_is_pinned_and_matches_an_independent_encoder(tree: Tree) -> None:
    # Same entries as the Zig golden test in zig/tree.zig.
    paths = ["README.md", "a", "a.b", "a/b", "src/main.zig", "été"]
    entries = [
        TreeEntry(p, bytes([i]) + b"\x01" * 31, MODE_FILE, len(p.encode()))
        for i, p in enumerate(paths)
    ]
    root, nodes = tree.build(entries)
    assert root.hex() == "f9ee7aa653f43b6c8227c6556298346ffd95e0610ccd2cda263ad33bef9cea54"
    body = b"MICT" + bytes([1, 0]) + struct.pack("<H", len(entries))
    for e in entries:
        key = e.path.encode()
        body += struct.pack("<H", len(key)) + key + e.blob_hash + struct.pack("<BQ", e.mode, e.size)
    assert nodes == [(root, body)]
    assert blake3(b"tree\x00" + body) == root


def test_deleting_absent_paths_and_rewriting_same_content_are_no_ops(
    tree: Tree, store: NodeStore
) -> None:
    entries = entries_for([f"dir/{i:05d}" for i in range(5_000)])
    root = build(tree, store, entries)
    same, nodes = tree.apply(
        root, [TreeEdit("nope", None), TreeEdit("dir/99999", None), TreeEdit("0", None)]
    )
    assert (same, nodes) == (root, [])
    e = entries[2_500]
    same, nodes = tree.apply(root, [TreeEdit(e.path, e.blob_hash, e.mode, e.size)])
    assert (same, nodes) == (root, [])
    same, nodes = tree.apply(root, [])
    assert (same, nodes) == (root, [])
    # A mode or size change is a change.
    changed, nodes = tree.apply(root, [TreeEdit(e.path, e.blob_hash, MODE_EXEC, e.size)])
    assert changed != root and nodes


def test_paths_that_are_prefixes_of_each_other(tree: Tree, store: NodeStore) -> None:
    paths = ["a", "a/b", "a.b", "a/b/c", "ab", "a-", "b"]
    root = build(tree, store, entries_for(paths))
    assert [e.path for e in tree.list(root, "a")] == ["a", "a-", "a.b", "a/b", "a/b/c", "ab"]
    assert [e.path for e in tree.list(root, "a/")] == ["a/b", "a/b/c"]
    assert [e.path for e in tree.list(root, "a", start_after="a.b", limit=2)] == ["a/b", "a/b/c"]
    assert [e.path for e in tree.list(root, "a/b")] == ["a/b", "a/b/c"]
    for p in paths:
        assert tree.lookup(root, p) is not None
    root2, nodes = tree.apply(root, [TreeEdit("a", None), TreeEdit("a/b/c", None)])
    store.put_all(nodes)
    assert [e.path for e in tree.list(root2, "a")] == ["a-", "a.b", "a/b", "ab"]
    assert [(c.path, c.change) for c in tree.diff(root, root2)] == [
        ("a", "deleted"),
        ("a/b/c", "deleted"),
    ]


def test_a_bounded_diff_stops_at_its_bound_and_says_whether_more_exist(
    tree: Tree, store: NodeStore
) -> None:
    entries = entries_for([f"d{i % 7}/f{i:05d}" for i in range(2_000)])
    root = build(tree, store, entries)
    half, nodes = tree.apply(root, [TreeEdit(e.path, None) for e in entries[::2]])
    store.put_all(nodes)
    whole = tree.diff(EMPTY_TREE_HASH, root)
    assert len(whole) == 2_000
    for bound in (1, 999, 1_999, 2_000, 2_001, 10**9):
        store.loads = 0
        changes, more = tree.diff_bounded(EMPTY_TREE_HASH, root, bound)
        assert changes == whole[:bound] and more == (bound < 2_000)
    # A small bound reads a few nodes, not the tree: the walk stops.
    store.loads = 0
    tree.diff_bounded(EMPTY_TREE_HASH, root, 3)
    assert store.loads <= 4
    deleted = tree.diff(root, half)
    assert tree.diff_bounded(root, half, 1_000) == (deleted, False)
    assert tree.diff_bounded(root, half, 999) == (deleted[:999], True)
    assert tree.diff_bounded(root, half, 2**80) == (deleted, False)  # a bound past u64
    # Modifications are bounded too (the walk's third kind of change).
    modified, nodes = tree.apply(
        root, [TreeEdit(e.path, b"\x77" * 32, MODE_FILE, 9) for e in entries[1::3]]
    )
    store.put_all(nodes)
    changed = tree.diff(root, modified)
    assert {c.change for c in changed} == {"modified"} and len(changed) > 600
    assert tree.diff_bounded(root, modified, 600) == (changed[:600], True)
    assert tree.diff_bounded(root, modified, len(changed)) == (changed, False)
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError):
            tree.diff_bounded(root, half, bad)  # type: ignore[arg-type]


def test_4096_byte_paths(tree: Tree, store: NodeStore) -> None:
    long_paths = [("d/" + "x" * (PATH_BYTES_MAX - 8) + f"{i:06d}") for i in range(300)]
    assert all(len(p.encode()) == PATH_BYTES_MAX for p in long_paths)
    entries = entries_for(long_paths)
    root, nodes = tree.build(entries)
    store.put_all(nodes)
    assert all(len(data) <= NODE_BYTES_MAX for _, data in nodes)
    assert len(nodes) > 10  # the byte cap split them
    assert tree.lookup(root, long_paths[123]) == next(
        e for e in entries if e.path == long_paths[123]
    )
    # Incremental edits on long keys still equal a fresh build.
    extra = "d/" + "y" * (PATH_BYTES_MAX - 2)
    e0 = entries[0]
    root2, nodes2 = tree.apply(root, [TreeEdit(extra, b"\x05" * 32), TreeEdit(e0.path, None)])
    store.put_all(nodes2)
    fresh = entries_for(long_paths[:0]) + [e for e in entries if e.path != e0.path]
    fresh.append(TreeEntry(extra, b"\x05" * 32, MODE_FILE, 0))
    assert root2 == tree.build(sorted(fresh, key=lambda e: e.path.encode()))[0]
    with pytest.raises(InvalidArgument):
        tree.lookup(root, "x" * (PATH_BYTES_MAX + 1))
    with pytest.raises(InvalidArgument):
        tree.apply(root, [TreeEdit("x" * (PATH_BYTES_MAX + 1), b"\x00" * 32)])


def test_non_ascii_paths_sort_by_utf8_bytes(tree: Tree, store: NodeStore) -> None:
    paths = ["été/ñ.txt", "日本語/ファイル", "emoji/🙂", "Zebra", "zebra", "é", "e\u0301"]
    root = build(tree, store, entries_for(paths))
    listed = [e.path for e in tree.list(root)]
    assert listed == sorted(paths, key=str.encode)
    # No normalisation: the composed and decomposed é are two paths.
    assert tree.lookup(root, "é") != tree.lookup(root, "e\u0301")
    assert tree.lookup(root, "日本語/ファイル") is not None


def test_modes_and_sizes_round_trip(tree: Tree, store: NodeStore) -> None:
    entries = [
        TreeEntry("bin/run", b"\x01" * 32, MODE_EXEC, 10),
        TreeEntry("link", b"\x02" * 32, MODE_SYMLINK, 2**63),
        TreeEntry("x", b"\x03" * 32, MODE_FILE, 0),
    ]
    root = build(tree, store, entries)
    assert tree.list(root) == entries
    assert tree.stats(root) == (3, 10 + 2**63)
    # The total would overflow 64 bits: refused, never wrapped.
    with pytest.raises(Exception) as info:
        tree.apply(root, [TreeEdit("y", b"\x04" * 32, MODE_FILE, 2**63)])
    assert info.value.name == "MIC_LIMIT_EXCEEDED"


def test_delete_everything_gives_the_empty_tree(tree: Tree, store: NodeStore) -> None:
    entries = entries_for([f"f{i}" for i in range(2_000)])
    root = build(tree, store, entries)
    empty, _ = tree.apply(root, [TreeEdit(e.path, None) for e in entries])
    assert empty == EMPTY_TREE_HASH
    # And back: one apply of all writes equals the build.
    again, nodes = tree.apply(
        EMPTY_TREE_HASH, [TreeEdit(e.path, e.blob_hash, e.mode, e.size) for e in entries]
    )
    assert again == root


def test_bad_input_is_invalid_argument(tree: Tree) -> None:
    with pytest.raises(InvalidArgument):
        tree.build([TreeEntry("b", b"\x00" * 32), TreeEntry("a", b"\x00" * 32)])
    with pytest.raises(InvalidArgument):
        tree.build([TreeEntry("a", b"\x00" * 32), TreeEntry("a", b"\x00" * 32)])
    with pytest.raises(InvalidArgument):
        tree.apply(EMPTY_TREE_HASH, [TreeEdit("a", None), TreeEdit("a", b"\x00" * 32)])
    with pytest.raises(InvalidArgument):
        tree.apply(EMPTY_TREE_HASH, [TreeEdit("a", b"\x00" * 31)])
    with pytest.raises(InvalidArgument):
        tree.apply(EMPTY_TREE_HASH, [TreeEdit("a", b"\x00" * 32, mode=3)])
    with pytest.raises(InvalidArgument):
        tree.apply(EMPTY_TREE_HASH, [TreeEdit("", b"\x00" * 32)])
    with pytest.raises(InvalidArgument):
        tree.lookup(b"\x00" * 31, "a")
    with pytest.raises(InvalidArgument):
        tree.list(EMPTY_TREE_HASH, limit=10**6)


def test_loader_errors(store: NodeStore) -> None:
    missing = b"\x07" * 32
    with Tree(store.load) as tree:
        with pytest.raises(NotFoundNode):
            tree.stats(missing)

    def down(_hash: bytes) -> bytes:
        raise ConnectionError("store is down")

    with Tree(down) as tree:
        with pytest.raises(ConnectionError, match="store is down"):
            tree.lookup(missing, "a")
        # The empty tree never needs the store.
        assert tree.stats(EMPTY_TREE_HASH) == (0, 0)

    # A store that returns the wrong bytes for a hash.
    with Tree(lambda _h: b"MICT\x01\x00\x00\x00") as tree:
        with pytest.raises(Corrupt):
            tree.stats(missing)
    # A store that returns something that is not bytes.
    with Tree(lambda _h: 42) as tree:  # type: ignore[arg-type, return-value]
        with pytest.raises(TypeError):
            tree.stats(missing)


def test_corrupt_stored_node_is_reported(tree: Tree, store: NodeStore) -> None:
    root = build(tree, store, entries_for([f"f{i:05d}" for i in range(3_000)]))
    # Replace a leaf with a valid but different node under the leaf's name.
    leaf_hash = next(h for h, data in store.nodes.items() if data[5] == 0 and h != root)
    store.nodes[leaf_hash] = b"MICT\x01\x00\x00\x00"
    # No re-hash in this loader: the library itself must catch the mismatch.
    checking = Tree(lambda h: store.nodes[h])
    with pytest.raises(Corrupt):
        [checking.lookup(root, f"f{i:05d}") for i in range(3_000)]
    with pytest.raises(Corrupt):
        checking.list(root, limit=5_000)
    checking.close()


def test_one_file_change_touches_few_nodes(tree: Tree, store: NodeStore) -> None:
    entries = entries_for([f"src/{i % 97}/file{i:06d}.py" for i in range(30_000)])
    root = build(tree, store, entries)
    assert tree.stats(root) == (30_000, sum(e.size for e in entries))
    store.loads = 0
    target = entries[17_000]
    new_root, nodes = tree.apply(root, [TreeEdit(target.path, b"\xee" * 32, MODE_FILE, 1)])
    assert 2 <= len(nodes) <= 8
    assert sum(len(d) for _, d in nodes) <= 64 * 1024
    assert store.loads <= 12
    store.put_all(nodes)
    store.loads = 0
    changes = tree.diff(root, new_root)
    assert [(c.path, c.change) for c in changes] == [(target.path, "modified")]
    assert store.loads <= 2 * 4 + 2
    store.loads = 0
    tree.stats(new_root)
    assert store.loads == 1


def test_one_tree_serves_many_threads(tree: Tree, store: NodeStore) -> None:
    entries = entries_for([f"t/{i:05d}" for i in range(4_000)])
    root = build(tree, store, entries)
    failures: list[BaseException] = []

    def reader(offset: int) -> None:
        try:
            for e in entries[offset::8]:
                assert tree.lookup(root, e.path) == e
        except BaseException as exc:  # collected and re-raised in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_closed_tree_is_an_invalid_handle(store: NodeStore) -> None:
    tree = Tree(store.load)
    tree.close()
    tree.close()
    with pytest.raises(InvalidHandle):
        tree.stats(EMPTY_TREE_HASH)


def test_loader_may_return_any_buffer_but_not_oversized_nodes(tree: Tree, store: NodeStore) -> None:
    root = build(tree, store, entries_for([f"m/{i:05d}" for i in range(2_000)]))
    with Tree(lambda h: memoryview(bytearray(store.nodes[h]))) as views:
        assert views.stats(root) == tree.stats(root)
        assert len(views.list(root, limit=5_000)) == 2_000
    with Tree(lambda h: b"\x00" * (NODE_BYTES_MAX + 1)) as huge:
        with pytest.raises(Corrupt):
            huge.stats(root)


@pytest.mark.parametrize("seed", range(20))
def test_ceilings_match_a_sorted_list(tree: Tree, store: NodeStore, seed: int) -> None:
    import bisect
    import random

    rng = random.Random(seed)
    alphabet = ["a", "b", "/", ".", "-", "é", "z"]
    paths = sorted(
        {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(3000)},
        key=str.encode,
    )
    root = build(tree, store, entries_for(paths, seed=seed % 7 + 1))
    keys = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(500)
    ] + paths[::50]
    loads = store.loads
    got = tree.ceilings(root, keys)
    assert store.loads - loads <= len(store.nodes)  # each node once per call
    encoded = [p.encode() for p in paths]
    for key, ceiling in zip(keys, got, strict=True):
        i = bisect.bisect_left(encoded, key.encode())
        assert (ceiling.path if ceiling else None) == (paths[i] if i < len(paths) else None)
    assert got[-1] is not None and got[-1] == tree.lookup(root, keys[-1])  # whole entries
    assert tree.ceilings(root, []) == []


def test_ceilings_reject_bad_keys(tree: Tree, store: NodeStore) -> None:
    root = build(tree, store, entries_for(["a", "b"]))
    for bad in ([""], ["a", "x" * (PATH_BYTES_MAX + 1)], ["\ud800"]):
        with pytest.raises(InvalidArgument):
            tree.ceilings(root, bad)
    assert [c.path if c else None for c in tree.ceilings(root, ["a", "a\x00", "b", "c"])] == [
        "a",
        "b",
        "b",
        None,
    ]


def test_ceilings_of_more_keys_than_one_call_takes(tree: Tree, store: NodeStore) -> None:
    from micforge.core.tree import CEILINGS_KEYS_MAX

    paths = [f"p{i:05d}" for i in range(0, 30_000, 3)]
    root = build(tree, store, entries_for(paths))
    keys = [f"p{i:05d}" for i in range(2 * CEILINGS_KEYS_MAX + 7)]
    got = [c.path if c else None for c in tree.ceilings(root, keys)]
    assert got == [f"p{(i + 2) // 3 * 3:05d}" if i <= 29_997 else None for i in range(len(keys))]


def test_malformed_ceiling_records_are_corrupt() -> None:
    from micforge.core.tree import _decode_ceilings

    entry = b"\x01\x00a" + bytes(32) + b"\x00" + bytes(8)
    assert [c.path if c else None for c in _decode_ceilings(b"\x00\x01" + entry)] == [None, "a"]
    for bad in (b"\x02", b"\x01\x05\x00ab", b"\x01" + entry[:-1], b"\x01\x01"):
        with pytest.raises(Corrupt):
            _decode_ceilings(bad)
