"""Sessions: lifecycle, recording, validation, permissions, concurrent updates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from micforge.errors import Forbidden, InvalidRequest, InvalidState, NotFound, TooLarge

from .conftest import World


def test_start_get_and_shape(world: World) -> None:
    w = world
    view = w.services.sessions.start(w.writer, w.project, "fix the parser")
    assert (
        view["state"] == "open" and view["base_position"] == 0 and view["landed_position"] is None
    )
    assert (
        view["owner"] == w.writer.id
        and view["project"] == w.project
        and view["goal"] == "fix the parser"
    )
    assert len(view["id"]) == 32
    assert view["operations"] == view["decisions"] == view["conversation"] == []
    assert view["created_at"].endswith("Z")
    assert w.services.sessions.get(w.reader, w.project, view["id"]) == view


def test_later_operation_on_a_path_replaces_the_earlier(world: World) -> None:
    w = world
    sid = w.session()
    h1, h2 = w.blob(b"one"), w.blob(b"two")
    s = w.services.sessions
    s.record_operations(w.owner, w.project, sid, [{"op": "write", "path": "f", "blob_hash": h1}])
    s.record_operations(
        w.owner, w.project, sid, [{"op": "write", "path": "g", "blob_hash": h1, "mode": "exec"}]
    )
    view = s.record_operations(
        w.owner,
        w.project,
        sid,
        [{"op": "write", "path": "f", "blob_hash": h2}, {"op": "delete", "path": "g"}],
    )
    assert view["operations"] == [
        {"op": "write", "path": "f", "blob_hash": h2, "mode": "file"},
        {"op": "delete", "path": "g", "mode": "file"},
    ]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "write", "path": "../etc/passwd", "blob_hash": "0" * 64},
        {"op": "write", "path": "/abs", "blob_hash": "0" * 64},
        {"op": "write", "path": "a//b", "blob_hash": "0" * 64},
        {"op": "write", "path": "a/./b", "blob_hash": "0" * 64},
        {"op": "write", "path": "nul\x00", "blob_hash": "0" * 64},
        {"op": "write", "path": "x" * 4097, "blob_hash": "0" * 64},
        {"op": "write", "path": "ok", "blob_hash": "ABC"},
        {"op": "write", "path": "ok", "blob_hash": "A" * 64},
        {"op": "write", "path": "ok"},
        {"op": "rename", "path": "ok"},
        {"op": "write", "path": "ok", "blob_hash": "0" * 64, "mode": "dir"},
        "not an object",
    ],
)
def test_bad_operations_are_rejected_and_change_nothing(world: World, op: object) -> None:
    w = world
    sid = w.session()
    with pytest.raises(InvalidRequest):
        w.services.sessions.record_operations(w.owner, w.project, sid, [op])
    assert w.services.sessions.get(w.owner, w.project, sid)["operations"] == []


def test_writing_a_blob_not_in_the_project_names_the_hash(world: World) -> None:
    w = world
    sid = w.session()
    missing = "ab" * 32
    with pytest.raises(InvalidRequest) as caught:
        w.services.sessions.record_operations(
            w.owner, w.project, sid, [{"op": "write", "path": "f", "blob_hash": missing}]
        )
    assert missing in caught.value.message
    # Blobs belong to one project: a blob of another project does not count.
    w.auth.create_project("other", w.owner.id)
    elsewhere, _ = w.services.blobs.put(w.owner, "other", b"elsewhere")
    with pytest.raises(InvalidRequest):
        w.services.sessions.record_operations(
            w.owner, w.project, sid, [{"op": "write", "path": "f", "blob_hash": elsewhere["hash"]}]
        )


def test_limits(make_world) -> None:
    w = make_world(goal_max_bytes=10, entry_max_bytes=10, operations_per_session_max=2)
    with pytest.raises(TooLarge):
        w.services.sessions.start(w.owner, w.project, "x" * 11)
    sid = w.session(goal="short")
    with pytest.raises(TooLarge):
        w.services.sessions.record_decision(w.owner, w.project, sid, "y" * 11)
    h = w.blob(b"z")
    ops = [{"op": "write", "path": f"p{i}", "blob_hash": h} for i in range(3)]
    with pytest.raises(TooLarge):
        w.services.sessions.record_operations(w.owner, w.project, sid, ops)
    w.services.sessions.record_operations(w.owner, w.project, sid, ops[:2])
    with pytest.raises(TooLarge):
        w.services.sessions.record_operations(w.owner, w.project, sid, ops[2:])


def test_decisions_and_conversation(world: World) -> None:
    w = world
    sid = w.session()
    s = w.services.sessions
    s.record_decision(w.owner, w.project, sid, "use a prolly tree")
    s.record_conversation(w.owner, w.project, sid, "user", "why?")
    view = s.record_conversation(w.owner, w.project, sid, "agent", "history independence")
    assert [d["content"] for d in view["decisions"]] == ["use a prolly tree"]
    assert [(m["role"], m["content"]) for m in view["conversation"]] == [
        ("user", "why?"),
        ("agent", "history independence"),
    ]
    with pytest.raises(InvalidRequest):
        s.record_conversation(w.owner, w.project, sid, "robot", "no such role")
    with pytest.raises(InvalidRequest):
        s.record_decision(w.owner, w.project, sid, 42)


def test_permissions(world: World) -> None:
    w = world
    s = w.services.sessions
    with pytest.raises(Forbidden):
        s.start(w.reader, w.project, "readers cannot start sessions")
    with pytest.raises(NotFound):
        s.start(w.stranger, w.project, "strangers do not see the project")
    sid = w.session(user=w.writer)
    with pytest.raises(Forbidden):
        s.record_decision(w.reader, w.project, sid, "no")
    other = w.session(user=w.owner)
    with pytest.raises(Forbidden):
        s.record_decision(w.writer, w.project, other, "not my session")
    s.record_decision(w.owner, w.project, sid, "a project owner may")
    with pytest.raises(NotFound):
        s.get(w.stranger, w.project, sid)
    with pytest.raises(NotFound):
        s.get(w.owner, w.project, "0" * 32)
    with pytest.raises(InvalidRequest):
        s.get(w.owner, w.project, "not-a-session-id")


def test_abandon_and_rebase_states(world: World) -> None:
    w = world
    s = w.services.sessions
    sid = w.session()
    assert s.abandon(w.owner, w.project, sid)["state"] == "abandoned"
    assert s.abandon(w.owner, w.project, sid)["state"] == "abandoned"  # idempotent
    with pytest.raises(InvalidState):
        s.record_decision(w.owner, w.project, sid, "too late")
    fresh = w.session()
    w.write(fresh, "f", b"1")
    w.land(fresh)
    newer = w.session()
    assert s.rebase(w.owner, w.project, newer)["base_position"] == 1


def test_list_filters_and_paginates(world: World) -> None:
    w = world
    s = w.services.sessions
    ids = [w.session(goal=f"g{i}") for i in range(7)]
    s.abandon(w.owner, w.project, ids[1])
    s.abandon(w.owner, w.project, ids[4])
    seen, cursor = [], None
    while True:
        page, cursor = s.list(w.reader, w.project, limit=3, cursor=cursor)
        seen += [v["id"] for v in page]
        if cursor is None:
            break
    assert seen == ids  # creation order, every state
    abandoned, cursor = s.list(w.reader, w.project, state="abandoned", limit=50)
    assert [v["id"] for v in abandoned] == [ids[1], ids[4]] and cursor is None
    with pytest.raises(InvalidRequest):
        s.list(w.reader, w.project, state="sleeping")
    with pytest.raises(InvalidRequest):
        s.list(w.reader, w.project, cursor="!!garbage!!")


def test_concurrent_recording_loses_no_update(any_world: World) -> None:
    w = any_world
    sid = w.session()
    hashes = [w.blob(f"content {i}".encode()) for i in range(16)]

    def record(i: int) -> None:
        w.services.sessions.record_operations(
            w.owner, w.project, sid, [{"op": "write", "path": f"f{i}", "blob_hash": hashes[i]}]
        )
        w.services.sessions.record_decision(w.owner, w.project, sid, f"decision {i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(record, range(16)))
    view = w.services.sessions.get(w.owner, w.project, sid)
    assert sorted(op["path"] for op in view["operations"]) == sorted(f"f{i}" for i in range(16))
    assert sorted(d["content"] for d in view["decisions"]) == sorted(
        f"decision {i}" for i in range(16)
    )
