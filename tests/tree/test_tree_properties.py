"""History independence and agreement with a plain dict model (hypothesis).

Trees are big enough to have several levels (a base of ~3,000 entries with about
32 entries per node), and edit keys interleave with the base keys, so edits land
in every part of the tree, including node boundaries and both ends.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micforge.core.tree import EMPTY_TREE_HASH, Tree, TreeEdit, TreeEntry

from .conftest import NodeStore

Value = tuple[int, int]  # (blob byte, mode); None in a model means absent

BASE_SIZE = 3_000
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

odd_paths = st.text(alphabet="ab/.é", min_size=1, max_size=5)
base_paths = st.integers(0, BASE_SIZE + 200).map(lambda i: f"p{i:05d}")
paths = st.one_of(base_paths, odd_paths, st.sampled_from(["a", "a/b", "a.b", "~end", "!start"]))
values = st.none() | st.tuples(st.integers(0, 255), st.integers(0, 2))


def entry(path: str, value: Value) -> TreeEntry:
    blob, mode = value
    return TreeEntry(path, bytes([blob]) * 32, mode, blob * 3)


def edit(path: str, value: Value | None) -> TreeEdit:
    if value is None:
        return TreeEdit(path, None)
    e = entry(path, value)
    return TreeEdit(path, e.blob_hash, e.mode, e.size)


def build(tree: Tree, store: NodeStore, model: dict[str, Value]) -> bytes:
    root, nodes = tree.build(
        entry(p, v) for p, v in sorted(model.items(), key=lambda kv: kv[0].encode())
    )
    store.put_all(nodes)
    return root


def base_model(density: int) -> dict[str, Value]:
    return {f"p{i:05d}": (i % 256, i % 3) for i in range(BASE_SIZE) if i % density}


def apply_batches(
    tree: Tree, store: NodeStore, root: bytes, batches: list[dict[str, Value | None]]
) -> bytes:
    for batch in batches:
        root, nodes = tree.apply(root, [edit(p, v) for p, v in batch.items()])
        store.put_all(nodes)
    return root


def split(items: list, cuts: list[int]) -> list[list]:
    points = sorted({c % (len(items) + 1) for c in cuts})
    out, start = [], 0
    for p in points + [len(items)]:
        out.append(items[start:p])
        start = p
    return [chunk for chunk in out if chunk]


@SETTINGS
@given(
    density=st.integers(2, 7),
    final=st.dictionaries(paths, values, max_size=120),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_any_order_and_batching_gives_the_built_root(
    tree: Tree, store: NodeStore, density: int, final: dict, order, cuts: list[int]
) -> None:
    model = base_model(density)
    start = build(tree, store, model)
    ops = list(final.items())
    order.shuffle(ops)
    batches = [dict(chunk) for chunk in split(ops, cuts)]
    root = apply_batches(tree, store, start, batches)
    for path, value in final.items():
        if value is None:
            model.pop(path, None)
        else:
            model[path] = value
    assert root == build(tree, store, model)
    # One batch of everything at once gets there too.
    assert apply_batches(tree, store, start, [final]) == root


@SETTINGS
@given(
    density=st.integers(2, 7),
    sequence=st.lists(st.tuples(paths, values), max_size=150),
    cuts=st.lists(st.integers(0, 200), max_size=8),
)
def test_edit_history_does_not_matter(
    tree: Tree, store: NodeStore, density: int, sequence: list, cuts: list[int]
) -> None:
    model = base_model(density)
    root = build(tree, store, model)
    for chunk in split(sequence, cuts):
        batch: dict[str, Value | None] = {}
        for path, value in chunk:  # within one batch, the last edit of a path wins
            batch[path] = value
        root = apply_batches(tree, store, root, [batch])
        for path, value in batch.items():
            if value is None:
                model.pop(path, None)
            else:
                model[path] = value
    assert root == build(tree, store, model)
    assert tree.stats(root) == (len(model), sum(v[0] * 3 for v in model.values()))


@SETTINGS
@given(
    density=st.integers(2, 9),
    changes=st.dictionaries(paths, values, max_size=80),
    probes=st.lists(paths, max_size=20),
    prefix=st.sampled_from(["", "p", "p01", "p029", "a", "a/", "a.", "é", "zz"]),
    start_after=st.none() | paths,
    limit=st.integers(0, 400),
)
def test_lookup_list_and_diff_agree_with_a_dict(
    tree: Tree,
    store: NodeStore,
    density: int,
    changes: dict,
    probes: list[str],
    prefix: str,
    start_after: str | None,
    limit: int,
) -> None:
    old_model = base_model(density)
    old_root = build(tree, store, old_model)
    new_root = apply_batches(tree, store, old_root, [changes])
    new_model = dict(old_model)
    for path, value in changes.items():
        if value is None:
            new_model.pop(path, None)
        else:
            new_model[path] = value

    for path in probes + list(changes):
        expected = new_model.get(path)
        assert tree.lookup(new_root, path) == (None if expected is None else entry(path, expected))

    keys = sorted((p for p in new_model if p.startswith(prefix)), key=str.encode)
    if start_after is not None:
        keys = [p for p in keys if p.encode() > start_after.encode()]
    listed = tree.list(new_root, prefix, start_after, limit)
    assert listed == [entry(p, new_model[p]) for p in keys[:limit]]

    expected_changes = []
    for path in sorted(set(old_model) | set(new_model), key=str.encode):
        old, new = old_model.get(path), new_model.get(path)
        if old == new:
            continue
        kind = "added" if old is None else "deleted" if new is None else "modified"
        expected_changes.append((path, kind, old and entry(path, old), new and entry(path, new)))
    got = [(c.path, c.change, c.old, c.new) for c in tree.diff(old_root, new_root)]
    assert got == expected_changes
    reverse = [(c.path, c.change) for c in tree.diff(new_root, old_root)]
    flip = {"added": "deleted", "deleted": "added", "modified": "modified"}
    assert reverse == [(p, flip[k]) for p, k, _, _ in expected_changes]


@SETTINGS
@given(sequence=st.lists(st.tuples(paths, values), max_size=60))
def test_small_trees_from_empty(tree: Tree, store: NodeStore, sequence: list) -> None:
    root, model = EMPTY_TREE_HASH, {}
    for path, value in sequence:
        root = apply_batches(tree, store, root, [{path: value}])
        if value is None:
            model.pop(path, None)
        else:
            model[path] = value
    assert root == build(tree, store, model)
    assert tree.list(root, limit=1000) == [
        entry(p, model[p]) for p in sorted(model, key=str.encode)
    ]
