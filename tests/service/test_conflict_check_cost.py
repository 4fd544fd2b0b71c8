"""Conflict detection reads O(log n) objects: synthetic histories built through the store."""

from __future__ import annotations

import pytest

from micforge.core import (
    Bloom,
    Head,
    LandingRecord,
    Rollup,
    encode_head,
    encode_landing,
    encode_rollup,
)
from micforge.core.tree import EMPTY_TREE_HASH
from micforge.errors import Conflict
from micforge.service.history import ROLLUP_SIZES
from micforge.storage import keys

from .conftest import World
from .wrappers import CountingStore

HISTORY = 100_000


def synthetic_path(position: int) -> str:
    return f"src/module{position % 997}/file{position}.py"


def plant_history(w: World, project: str, tip: int, full_records: set[int]) -> None:
    """Write rollups of every complete window, the head, and the landing records the
    check may need (``full_records``); skipping the rest keeps the test fast, and a
    read of a record that is not there fails loudly instead of passing silently."""
    store = w.store
    tree_hash = EMPTY_TREE_HASH  # a real tree, so that land() can build on any position

    def record(position: int) -> bytes:
        return encode_landing(
            LandingRecord(
                position=position,
                session_id=position.to_bytes(16, "big"),
                parent_tree=tree_hash,
                tree_hash=tree_hash,
                hlc=position << 16,
                author="u_synthetic",
                goal=f"synthetic {position}",
                paths=[synthetic_path(position)],
            )
        )

    for position in sorted(full_records | {tip}):
        store.put(keys.log(project, position), record(position))
    store.put(
        keys.head(project), encode_head(Head(position=tip, tree_hash=tree_hash, hlc=tip << 16))
    )
    level1 = ROLLUP_SIZES[1]
    for start in range(1, tip + 1, level1):
        if start + level1 - 1 > tip:
            break
        with Bloom.landing() as bloom:
            bloom.add_many([synthetic_path(p) for p in range(start, start + level1)])
            store.put(
                keys.rollup(project, 1, start),
                encode_rollup(Rollup(1, start, level1, bloom.to_bytes())),
            )
    for level in (2, 3):
        size, child = ROLLUP_SIZES[level], ROLLUP_SIZES[level - 1]
        for start in range(1, tip + 1, size):
            if start + size - 1 > tip:
                break
            with Bloom.landing() as bloom:
                for child_start in range(start, start + size, child):
                    data, _ = store.get(keys.rollup(project, level - 1, child_start))
                    from micforge.core import decode_rollup

                    with Bloom.from_bytes(decode_rollup(data).bloom) as part:
                        bloom.union_in_place(part)
                store.put(
                    keys.rollup(project, level, start),
                    encode_rollup(Rollup(level, start, size, bloom.to_bytes())),
                )


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """One synthetic 100,000-landing history shared by the tests of this module (read only)."""
    from micforge.auth import AuthDB
    from micforge.service import build_services
    from micforge.storage import LocalStore

    from .conftest import CHEAP_SCRYPT, make_config, populate

    root = tmp_path_factory.mktemp("history")
    raw = LocalStore(str(root / "store"))
    counting = CountingStore(raw)
    auth = AuthDB.open(f"sqlite:///{root / 'auth.db'}", scrypt_params=CHEAP_SCRYPT)
    services = build_services(make_config(root), store=counting, auth_db=auth)
    w = populate(services, raw, auth)
    deep = 45_678  # a landing deep in history that the conflicting session touches
    # Records the descent into the window holding `deep` will read, plus the tip.
    window = ((deep - 1) // 100) * 100 + 1
    plant_history(w, w.project, HISTORY, set(range(window, window + 100)))
    yield w, counting, deep
    services.close()
    auth.close()


def _session_based_at(w: World, base: int, paths: list[str]) -> str:
    sid = w.session()
    ops = []
    for path in paths:
        ops.append({"op": "write", "path": path, "blob_hash": w.blob(path.encode())})
    w.services.sessions.record_operations(w.owner, w.project, sid, ops)
    # Rebase the session to ``base`` by rewriting its stored base (as an old session would be).
    import dataclasses

    from micforge.core import decode_session, encode_session

    data, etag = w.store.get(keys.session(w.project, sid))
    rec = dataclasses.replace(decode_session(data), base_position=base)
    w.store.put(keys.session(w.project, sid), encode_session(rec), if_match=etag)
    return sid


def test_session_based_90000_back_reads_a_few_objects(planted) -> None:
    w, counting, _ = planted
    sid = _session_based_at(w, HISTORY - 90_000, ["brand/new/path.py", "another/new.py"])
    counting.reset()
    check = w.services.landing._checker.check(
        w.project,
        bytes.fromhex(sid),
        ["brand/new/path.py", "another/new.py"],
        HISTORY - 90_000 + 1,
        HISTORY,
        HISTORY,
    )
    assert check.conflicts == set()
    assert check.objects_read <= 20, check.objects_read
    assert counting.reads <= 20, counting.reads


def test_a_real_conflict_deep_in_history_is_found_cheaply(planted) -> None:
    w, counting, deep = planted
    path = synthetic_path(deep)
    sid = _session_based_at(w, 10_000, [path, "not/in/history.py"])
    counting.reset()
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == [path]
    check = w.services.landing.last_check
    # 9 L2 rollups, 100 L1 rollups of the one positive L2 window, 100 records of the
    # positive L1 window: a few hundred, never 90,000.
    assert check is not None and check.objects_read <= 9 + 100 + 100 + 5
    assert counting.reads <= 260, counting.reads
