"""Content reads: tree at a position, files, log pagination, diff."""

from __future__ import annotations

import pytest

from micforge.auth import AuthDB
from micforge.errors import (
    AlreadyExists,
    Corrupt,
    InvalidRequest,
    NotFound,
    TooLarge,
    Unavailable,
)
from micforge.service import build_services
from micforge.service.blobs import HEADER_BYTES
from micforge.storage import StorageUnavailable, keys

from .conftest import CHEAP_SCRYPT, World, make_config
from .wrappers import CountingStore


def _land(w: World, writes: dict[str, bytes], deletes: tuple[str, ...] = ()) -> int:
    sid = w.session(goal=f"change {sorted(writes)}")
    ops = [{"op": "write", "path": p, "blob_hash": w.blob(c)} for p, c in writes.items()]
    ops += [{"op": "delete", "path": p} for p in deletes]
    w.services.sessions.record_operations(w.owner, w.project, sid, ops)
    return w.land(sid)["position"]


def test_tree_listing_prefix_pagination_and_positions(world: World) -> None:
    w = world
    c = w.services.content
    _land(w, {"src/a.py": b"a", "src/b.py": b"bb", "README": b"r", "src.txt": b"s"})
    _land(w, {"src/c.py": b"ccc"}, deletes=("README",))
    tree = c.tree(w.reader, w.project)
    assert tree["position"] == 2
    assert [e["path"] for e in tree["entries"]] == ["src.txt", "src/a.py", "src/b.py", "src/c.py"]
    assert tree["entries"][1] == {
        "path": "src/a.py",
        "blob_hash": w.blob(b"a"),
        "mode": "file",
        "size": 1,
    }
    src = c.tree(w.reader, w.project, prefix="src/")
    assert [e["path"] for e in src["entries"]] == ["src/a.py", "src/b.py", "src/c.py"]
    page1 = c.tree(w.reader, w.project, prefix="src/", limit=2)
    assert [e["path"] for e in page1["entries"]] == ["src/a.py", "src/b.py"] and page1[
        "next_cursor"
    ]
    page2 = c.tree(w.reader, w.project, prefix="src/", limit=2, cursor=page1["next_cursor"])
    assert [e["path"] for e in page2["entries"]] == ["src/c.py"] and page2["next_cursor"] is None
    old = c.tree(w.reader, w.project, at=1)
    assert [e["path"] for e in old["entries"]] == ["README", "src.txt", "src/a.py", "src/b.py"]
    assert c.tree(w.reader, w.project, at=0)["entries"] == []
    with pytest.raises(NotFound):
        c.tree(w.reader, w.project, at=3)
    with pytest.raises(InvalidRequest):
        c.tree(w.reader, w.project, prefix="../x")


def test_file_and_its_size_at_positions(make_world) -> None:
    w = make_world(cache_ram_bytes=0)  # read through to the tampered store below
    c = w.services.content
    _land(w, {"f.txt": b"v1"})
    _land(w, {"f.txt": b"version two"})
    assert b"".join(c.file(w.reader, w.project, "f.txt")[1]) == b"version two"
    assert b"".join(c.file(w.reader, w.project, "f.txt", at=1)[1]) == b"v1"
    assert c.file_size(w.reader, w.project, "f.txt") == len(b"version two")
    assert c.file_size(w.reader, w.project, "f.txt", at=1) == 2
    for read in (c.file, c.file_size):  # the same lookup and the same refusals
        with pytest.raises(NotFound):
            read(w.reader, w.project, "f.txt", at=0)
        with pytest.raises(NotFound):
            read(w.reader, w.project, "nope.txt")
        with pytest.raises(InvalidRequest):
            read(w.reader, w.project, "a/../f.txt")
        with pytest.raises(NotFound):  # no read role: the project is not there for them
            read(w.stranger, w.project, "f.txt")
    # file_size answers from the blob's header alone: a blob whose body was replaced
    # still answers its size, where reading it fails its integrity check.
    key = keys.blob(w.project, w.blob(b"version two"))
    stored, _ = w.store.get(key)
    w.store.delete(key)
    w.store.put(key, stored[:HEADER_BYTES] + b"\x00" * (len(stored) - HEADER_BYTES))
    assert c.file_size(w.reader, w.project, "f.txt") == len(b"version two")
    with pytest.raises(Corrupt):
        b"".join(c.file(w.reader, w.project, "f.txt")[1])


def test_log_newest_first_with_pages(world: World) -> None:
    w = world
    c = w.services.content
    for i in range(5):
        _land(w, {f"f{i}": b"x"})
    first = c.log(w.reader, w.project, limit=2)
    assert [e["position"] for e in first["landings"]] == [5, 4] and first["next"] == 3
    entry = first["landings"][0]
    assert set(entry) == {
        "position",
        "session_id",
        "goal",
        "owner",
        "tree_hash",
        "paths",
        "landed_at",
    }
    assert entry["paths"] == ["f4"] and entry["owner"] == w.owner.id
    second = c.log(w.reader, w.project, from_position=3, limit=2)
    assert [e["position"] for e in second["landings"]] == [3, 2] and second["next"] == 1
    last = c.log(w.reader, w.project, from_position=1, limit=2)
    assert [e["position"] for e in last["landings"]] == [1] and last["next"] is None
    with pytest.raises(NotFound):
        c.log(w.reader, w.project, from_position=6)


def test_diff_between_positions(world: World) -> None:
    w = world
    p1 = _land(w, {"keep": b"k", "change": b"1", "drop": b"d"})
    p2 = _land(w, {"change": b"2", "new": b"n"}, deletes=("drop",))
    diff = w.services.content.diff(w.reader, w.project, p1, p2)["changes"]
    by_path = {d["path"]: d for d in diff}
    assert set(by_path) == {"change", "new", "drop"}
    assert by_path["change"]["change"] == "modified"
    assert by_path["change"]["old_hash"] == w.blob(b"1") and by_path["change"][
        "new_hash"
    ] == w.blob(b"2")
    assert by_path["new"] == {
        "path": "new",
        "change": "added",
        "old_hash": None,
        "new_hash": w.blob(b"n"),
    }
    assert by_path["drop"] == {
        "path": "drop",
        "change": "deleted",
        "old_hash": w.blob(b"d"),
        "new_hash": None,
    }
    assert w.services.content.diff(w.reader, w.project, p2, p2)["changes"] == []


def test_a_diff_over_the_limit_is_too_large_and_at_the_limit_is_whole(make_world) -> None:
    w = make_world(diff_changes_max=5)
    c = w.services.content
    p1 = _land(w, {f"f{i}": b"x" for i in range(3)})
    p2 = _land(w, {f"g{i}": b"y" for i in range(2)})  # 5 paths from 0
    p3 = _land(w, {"h": b"z"})  # 6 from 0
    assert len(c.diff(w.reader, w.project, 0, p2)["changes"]) == 5
    assert len(c.diff(w.reader, w.project, p1, p3)["changes"]) == 3
    with pytest.raises(TooLarge, match="from position 0 to 3 has more than 5 changes"):
        c.diff(w.reader, w.project, 0, p3)
    with pytest.raises(TooLarge):  # either direction
        c.diff(w.reader, w.project, p3, 0)
    with pytest.raises(TooLarge, match="to 3"):  # to the tip by default (gRPC's unset to)
        c.diff(w.reader, w.project, 0)


def test_project_views(world: World) -> None:
    w = world
    p = w.services.projects
    view = p.get(w.reader, w.project)
    assert view["id"] == w.project and view["head"]["position"] == 0
    created = p.create(w.stranger, "fresh-project")
    assert created["head"]["position"] == 0
    assert [v["id"] for v in p.list(w.stranger)] == ["fresh-project"]
    with pytest.raises(NotFound):
        p.get(w.stranger, w.project)


def test_a_project_listing_reads_the_heads_in_parallel_and_keeps_their_order(
    make_world,
) -> None:
    """Each listed project costs a head read; on S3 one after another would add up.
    Every head read here waits at a barrier that only lets all of them through at
    once: one after another, it breaks instead."""
    import threading

    from .wrappers import CountingStore

    class BarrierStore(CountingStore):
        barrier: threading.Barrier | None = None

        def get(self, key: str) -> tuple[bytes, str]:
            if self.barrier is not None and key.endswith("/head"):
                self.barrier.wait(timeout=10)
            return super().get(key)

    w = make_world(wrap=BarrierStore)
    names = ["proj-c", "proj-a", "proj-d", "proj-b"]
    for name in names:
        w.services.projects.create(w.stranger, name)
    listed_before = [v["id"] for v in w.services.projects.list(w.stranger)]

    w.store.barrier = threading.Barrier(len(names))
    views = w.services.projects.list(w.stranger)
    assert not w.store.barrier.broken
    assert [v["id"] for v in views] == listed_before and sorted(listed_before) == sorted(names)
    assert all(v["head"]["position"] == 0 for v in views)


class _SwitchableStore(CountingStore):
    """A real store whose reads fail as a store that went away does while ``down``."""

    down = False

    def _reachable(self, what: str) -> None:
        if self.down:
            raise StorageUnavailable(f"reading {what}: connection refused (injected)")

    def get(self, key: str) -> tuple[bytes, str]:
        self._reachable(key)
        return super().get(key)

    def head(self, key: str) -> str | None:
        self._reachable(key)
        return super().head(key)

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        self._reachable(prefix)
        return super().list(prefix, start_after=start_after, limit=limit)


def test_a_project_is_not_created_when_the_store_cannot_be_read(make_world) -> None:
    # Found from outside: the auth DB row was written, then the head read failed (503),
    # and the retry met 409 already_exists for a project it was told was not made.
    w = make_world(wrap=_SwitchableStore)
    store = w.store
    assert isinstance(store, _SwitchableStore)
    store.down = True
    with pytest.raises(Unavailable):
        w.services.projects.create(w.owner, "newproj")
    with pytest.raises(NotFound):
        w.auth.get_project("newproj")
    store.down = False
    view = w.services.projects.create(w.owner, "newproj")
    assert view["id"] == "newproj" and view["head"]["position"] == 0
    created = w.auth.get_project("newproj").created_at
    assert view == w.services.projects.get(w.owner, "newproj")
    assert view["head"]["updated_at"].startswith(created.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_project_id_with_objects_in_the_store_is_not_handed_to_a_new_owner(
    make_world, tmp_path
) -> None:
    # Found from outside: after `auth restore` of an older auth DB, a project made since
    # is gone from the auth DB but not from the store; whoever created the id again
    # read the earlier owner's files and history.
    w = make_world()
    _land(w, {"secret.txt": b"the earlier owner's"})
    w.auth.create_project("lost", w.owner.id)
    w.services.sessions.start(w.owner, "lost", "only a session, no landing: tip 0")
    # The same store under an auth DB that knows neither project (an older backup's).
    older = AuthDB.open(f"sqlite:///{tmp_path / 'older.db'}", scrypt_params=CHEAP_SCRYPT)
    config = make_config(tmp_path / "after-restore")
    with older, build_services(config, store=w.store, auth_db=older) as services:
        newcomer = older.create_user("newcomer@example.com")
        for project in (w.project, "lost"):
            with pytest.raises(AlreadyExists, match="already exists in the store"):
                services.projects.create(newcomer, project)
            with pytest.raises(NotFound):
                older.get_project(project)
        assert services.projects.create(newcomer, "fresh")["head"]["position"] == 0
