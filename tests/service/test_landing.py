"""Landing: the protocol of DESIGN.md, on LocalStore and on a real moto S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from micforge.core.tree import EMPTY_TREE_HASH
from micforge.errors import Conflict, Forbidden, InvalidState, NotFound
from micforge.service import build_services
from micforge.storage import keys

from .conftest import World, another_process, make_config


def test_land_advances_tip_and_tree(any_world: World) -> None:
    w = any_world
    sid = w.session(goal="add readme")
    w.write(sid, "README.md", b"hello\n")
    result = w.land(sid)
    assert result["position"] == 1
    assert result["session"]["state"] == "landed"
    assert result["session"]["landed_position"] == 1
    head = w.services.content.head(w.owner, w.project)
    assert head["position"] == 1
    assert head["tree_hash"] == result["tree_hash"] != EMPTY_TREE_HASH.hex()
    size, chunks = w.services.content.file(w.reader, w.project, "README.md")
    assert size == 6 and b"".join(chunks) == b"hello\n"


def test_landing_twice_returns_the_original_position(any_world: World) -> None:
    w = any_world
    sid = w.session()
    w.write(sid, "a.txt", b"a")
    first = w.land(sid)
    other = w.session()
    w.write(other, "b.txt", b"b")
    w.land(other)
    again = w.land(sid)
    assert again["position"] == first["position"] == 1
    assert w.services.history.tip(w.project) == 2


def test_conflict_reports_the_real_paths_and_marks_session(world: World) -> None:
    w = world
    a, b = w.session(), w.session()
    w.write(a, "shared.txt", b"from a")
    w.write(a, "only-a.txt", b"a")
    w.write(b, "shared.txt", b"from b")
    w.write(b, "only-b.txt", b"b")
    w.land(a)
    with pytest.raises(Conflict) as caught:
        w.land(b)
    assert caught.value.paths == ["shared.txt"]
    session = w.services.sessions.get(w.owner, w.project, b)
    assert session["state"] == "conflicted"
    assert session["conflict_paths"] == ["shared.txt"]
    # A conflicted session cannot land or record until it is rebased.
    with pytest.raises(InvalidState):
        w.land(b)
    with pytest.raises(InvalidState):
        w.write(b, "x.txt", b"x")
    rebased = w.services.sessions.rebase(w.owner, w.project, b)
    assert rebased["state"] == "open" and rebased["base_position"] == 1
    assert {op["path"] for op in rebased["operations"]} == {"shared.txt", "only-b.txt"}
    assert w.land(b)["position"] == 2
    size, chunks = w.services.content.file(w.owner, w.project, "shared.txt")
    assert b"".join(chunks) == b"from b"


def test_identical_content_on_one_path_is_still_a_conflict(world: World) -> None:
    # By design: two sessions that both decided to write a path race on it, even
    # when they happen to agree on the bytes; the second must look at the first.
    w = world
    a, b = w.session(), w.session()
    w.write(a, "same.txt", b"identical")
    w.write(b, "same.txt", b"identical")
    w.land(a)
    with pytest.raises(Conflict) as caught:
        w.land(b)
    assert caught.value.paths == ["same.txt"]


def test_disjoint_sessions_both_land(world: World) -> None:
    w = world
    a, b = w.session(), w.session()
    w.write(a, "a/x", b"1")
    w.write(b, "b/x", b"2")
    assert w.land(a)["position"] == 1
    assert w.land(b)["position"] == 2
    listing = w.services.content.tree(w.owner, w.project)
    assert [e["path"] for e in listing["entries"]] == ["a/x", "b/x"]


def test_empty_session_lands_and_keeps_the_tree(world: World) -> None:
    w = world
    sid = w.session()
    w.write(sid, "f", b"f")
    tree_before = w.land(sid)["tree_hash"]
    empty = w.session(goal="only a decision")
    w.services.sessions.record_decision(w.owner, w.project, empty, "nothing to change")
    result = w.land(empty)
    assert result["position"] == 2
    assert result["tree_hash"] == tree_before
    assert w.land(empty)["position"] == 2  # and it stays landed once
    log = w.services.content.log(w.owner, w.project)
    assert [entry["position"] for entry in log["landings"]] == [2, 1]
    assert log["landings"][0]["paths"] == []
    assert log["landings"][0]["goal"] == "only a decision"


def test_deleting_an_absent_path_lands_and_changes_nothing(world: World) -> None:
    w = world
    sid = w.session()
    w.services.sessions.record_operations(
        w.owner, w.project, sid, [{"op": "delete", "path": "ghost.txt"}]
    )
    result = w.land(sid)
    assert result["position"] == 1
    assert result["tree_hash"] == EMPTY_TREE_HASH.hex()


def test_abandoned_session_cannot_land(world: World) -> None:
    w = world
    sid = w.session()
    w.write(sid, "f", b"f")
    w.services.sessions.abandon(w.owner, w.project, sid)
    with pytest.raises(InvalidState):
        w.land(sid)
    with pytest.raises(InvalidState):
        w.services.sessions.rebase(w.owner, w.project, sid)


def test_landed_session_cannot_be_abandoned_or_changed(world: World) -> None:
    w = world
    sid = w.session()
    w.land(sid)
    with pytest.raises(InvalidState):
        w.services.sessions.abandon(w.owner, w.project, sid)
    with pytest.raises(InvalidState):
        w.services.sessions.record_decision(w.owner, w.project, sid, "late")


def test_permissions_on_landing(world: World) -> None:
    w = world
    mine = w.session(user=w.writer)
    w.write(mine, "w.txt", b"w", user=w.writer)
    with pytest.raises(Forbidden):
        w.land(mine, user=w.reader)  # read role is too low
    with pytest.raises(NotFound):
        w.land(mine, user=w.stranger)  # no access: the project does not exist for them
    other = w.session(user=w.owner)
    with pytest.raises(Forbidden):
        w.land(other, user=w.writer)  # not the session's owner
    assert w.land(mine, user=w.owner)["position"] == 1  # a project owner may land it


def test_tip_is_found_past_a_lagging_head(world: World) -> None:
    w = world
    for i in range(5):
        sid = w.session()
        w.write(sid, f"f{i}", b"x")
        w.land(sid)
    # Roll the head hint back as if the landers of 2..5 crashed before advancing it.
    from micforge.core import Head, encode_head

    first = w.services.history.record(w.project, 1)
    w.store.delete(keys.head(w.project))
    w.store.put(
        keys.head(w.project),
        encode_head(Head(position=1, tree_hash=first.tree_hash, hlc=first.hlc)),
    )
    # Another process, which has seen nothing of this project yet, starts from the head.
    with another_process(w) as fresh:
        assert fresh.history.tip(w.project) == 5
    with another_process(w) as fresh:
        assert fresh.content.head(w.owner, w.project)["position"] == 5
    with another_process(w) as fresh:
        sid = fresh.sessions.start(w.owner, w.project, "after the lag")["id"]
        assert fresh.sessions.get(w.owner, w.project, sid)["base_position"] == 5
    with another_process(w) as fresh:
        view, _ = fresh.blobs.put(w.owner, w.project, b"changed")
        fresh.sessions.record_operations(
            w.owner, w.project, sid, [{"op": "write", "path": "f0", "blob_hash": view["hash"]}]
        )
        assert fresh.landing.land(w.owner, w.project, sid)["position"] == 6


def test_rollups_are_built_when_a_window_completes(world: World) -> None:
    w = world
    for i in range(100):
        sid = w.session()
        w.write(sid, f"dir/{i}", str(i).encode())
        w.land(sid)
    assert w.store.head(keys.rollup(w.project, 1, 1)) is not None
    rollup = w.services.history.rollup(w.project, 1, 1)
    assert rollup is not None and rollup.count == 100
    from micforge.core import Bloom

    with Bloom.from_bytes(rollup.bloom) as bloom:
        assert all(bloom.may_contain(f"dir/{i}") for i in range(100))


def test_a_missing_rollup_is_never_read_as_no_conflict(world: World) -> None:
    w = world
    base = w.session()  # based at 0
    w.write(base, "target", b"mine")
    for i in range(100):
        sid = w.session()
        w.write(sid, "target" if i == 42 else f"other/{i}", b"x")
        w.land(sid)
    w.store.delete(keys.rollup(w.project, 1, 1))  # its builder "crashed"
    with pytest.raises(Conflict) as caught:
        w.land(base)
    assert caught.value.paths == ["target"]


def test_a_lander_that_meets_its_own_record_returns_it(world: World) -> None:
    """Agent B read the session before agent A committed it: B's conflict check then
    meets the session's own landing record and must answer with that position."""
    import dataclasses

    from micforge.core import STATE_OPEN, decode_session, encode_session

    w = world
    sid = w.session()
    w.write(sid, "x.txt", b"x")
    assert w.land(sid)["position"] == 1
    data, etag = w.store.get(keys.session(w.project, sid))
    stale = dataclasses.replace(
        decode_session(data), state=STATE_OPEN, landed_position=0, attempt_position=0
    )
    w.store.put(keys.session(w.project, sid), encode_session(stale), if_match=etag)
    with another_process(w) as b:  # B remembers nothing: it reads the stale session
        again = b.landing.land(w.owner, w.project, sid)
        assert b.landing.last_check is not None and b.landing.last_check.own_position == 1
    assert again["position"] == 1 and again["session"]["state"] == "landed"
    assert w.services.history.tip(w.project) == 1


def test_operations_recorded_during_a_landing_are_conflict_checked(make_world) -> None:
    """An operation recorded between the conflict check and the attempt note makes the
    note's If-Match fail; the retry must check the new path over the whole range."""
    from .wrappers import HookStore

    w = make_world(wrap=HookStore)
    s, t = w.session(), w.session()
    w.write(s, "a.txt", b"from s")
    w.write(t, "b.txt", b"from t")
    assert w.land(t)["position"] == 1
    late = w.blob(b"from s too")

    def record_late_operation() -> None:
        w.services.sessions.record_operations(
            w.owner, w.project, s, [{"op": "write", "path": "b.txt", "blob_hash": late}]
        )

    w.store.suffix = keys.session(w.project, s)
    w.store.hook = record_late_operation
    with pytest.raises(Conflict) as caught:
        w.land(s)
    assert caught.value.paths == ["b.txt"]
    assert w.store.hook is None  # the interleaving really happened
    size, chunks = w.services.content.file(w.owner, w.project, "b.txt")
    assert b"".join(chunks) == b"from t"


def test_a_session_abandoned_while_it_is_marked_conflicted_is_reported_abandoned(
    make_world,
) -> None:
    """The conflicted mark meets a session abandoned since the check: the lander must
    say the session is abandoned (InvalidState), not that it conflicted."""
    from .wrappers import HookStore

    w = make_world(wrap=HookStore)
    s, t = w.session(), w.session()
    w.write(s, "shared.txt", b"from s")
    w.write(t, "shared.txt", b"from t")
    assert w.land(t)["position"] == 1

    w.store.suffix = keys.session(w.project, s)
    w.store.hook = lambda: w.services.sessions.abandon(w.owner, w.project, s)
    with pytest.raises(InvalidState, match="abandoned"):
        w.land(s)
    assert w.store.hook is None  # the interleaving really happened
    assert w.services.sessions.get(w.owner, w.project, s)["state"] == "abandoned"


# -- a path is a file or a directory, never both ---------------------------------------------


def _delete(w: World, sid: str, path: str) -> None:
    w.services.sessions.record_operations(w.owner, w.project, sid, [{"op": "delete", "path": path}])


def _tree_paths(w: World) -> list[str]:
    tree = w.services.content.tree(w.owner, w.project)
    return [entry["path"] for entry in tree["entries"]]


def test_a_file_added_below_a_file_is_a_conflict_until_the_file_goes(world: World) -> None:
    w = world
    first = w.session()
    w.write(first, "src", b"a file named src")
    w.land(first)
    sid = w.session()
    w.write(sid, "src/main.py", b"print()")
    w.write(sid, "src/lib/util.py", b"pass")
    w.write(sid, "README", b"unrelated")
    nodes_before = w.store.list(f"projects/{w.project}/trees/")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert w.store.list(f"projects/{w.project}/trees/") == nodes_before  # found before writing
    assert caught.value.paths == ["src", "src/lib/util.py", "src/main.py"]
    assert "a file would also be a directory" in str(caught.value)
    session = w.services.sessions.get(w.owner, w.project, sid)
    assert session["state"] == "conflicted"
    assert session["conflict_paths"] == ["src", "src/lib/util.py", "src/main.py"]
    assert w.services.history.tip(w.project) == 1  # nothing landed
    # Rebased but unchanged, it conflicts again; once it deletes the file, it lands.
    w.services.sessions.rebase(w.owner, w.project, sid)
    with pytest.raises(Conflict):
        w.land(sid)
    w.services.sessions.rebase(w.owner, w.project, sid)
    _delete(w, sid, "src")
    assert w.land(sid)["position"] == 2
    assert _tree_paths(w) == ["README", "src/lib/util.py", "src/main.py"]


def test_a_file_added_over_a_directory_is_a_conflict_until_it_is_emptied(world: World) -> None:
    w = world
    first = w.session()
    w.write(first, "docs/a.md", b"a")
    w.write(first, "docs/b.md", b"b")
    w.land(first)
    sid = w.session()
    w.write(sid, "docs", b"a file named docs")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == ["docs", "docs/a.md"]  # the first entry below it
    w.services.sessions.rebase(w.owner, w.project, sid)
    _delete(w, sid, "docs/a.md")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == ["docs", "docs/b.md"]
    w.services.sessions.rebase(w.owner, w.project, sid)
    _delete(w, sid, "docs/b.md")
    assert w.land(sid)["position"] == 2
    assert _tree_paths(w) == ["docs"]


def test_one_session_cannot_add_a_file_and_a_file_below_it(world: World) -> None:
    w = world
    sid = w.session()
    w.write(sid, "a", b"file")
    w.write(sid, "a/b/c", b"file below it")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == ["a", "a/b/c"]
    assert w.services.history.tip(w.project) == 0


def test_symlinks_are_files_here_too(world: World) -> None:
    w = world
    first = w.session()
    target = w.blob(b"elsewhere")
    w.services.sessions.record_operations(
        w.owner,
        w.project,
        first,
        [{"op": "write", "path": "link", "blob_hash": target, "mode": "symlink"}],
    )
    w.land(first)
    sid = w.session()
    w.write(sid, "link/inside", b"x")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == ["link", "link/inside"]


def test_two_sessions_from_one_base_that_would_collide(world: World) -> None:
    """Their paths differ, so the bloom check passes them; the tree check does not."""
    w = world
    a, b = w.session(), w.session()
    w.write(a, "lib", b"a file")
    w.write(b, "lib/mod.py", b"a file below it")
    w.land(a)
    with pytest.raises(Conflict) as caught:
        w.land(b)
    assert caught.value.paths == ["lib", "lib/mod.py"]
    # And the other way round: the directory lands first.
    c, d = w.session(), w.session()
    w.write(c, "pkg/x.py", b"x")
    w.write(d, "pkg", b"a file")
    w.land(c)
    with pytest.raises(Conflict) as caught:
        w.land(d)
    assert caught.value.paths == ["pkg", "pkg/x.py"]


def test_turning_a_file_into_a_directory_in_one_session_lands(world: World) -> None:
    w = world
    first = w.session()
    w.write(first, "notes", b"one file")
    w.land(first)
    sid = w.session()
    _delete(w, sid, "notes")
    w.write(sid, "notes/2026.md", b"a directory now")
    assert w.land(sid)["position"] == 2
    assert _tree_paths(w) == ["notes/2026.md"]
    # ... and back: delete what is below, write the file.
    back = w.session()
    _delete(w, back, "notes/2026.md")
    w.write(back, "notes", b"a file again")
    assert w.land(back)["position"] == 3
    assert _tree_paths(w) == ["notes"]


def test_byte_prefixes_that_are_not_directories_do_not_collide(world: World) -> None:
    w = world
    first = w.session()
    w.write(first, "src", b"file")
    w.write(first, "lib.d/x", b"x")
    w.land(first)
    sid = w.session()
    for path in ("src.bak", "src-old/a", "srcs/b", "src0", "lib", "lib.d2/y", "li/b"):
        w.write(sid, path, path.encode())
    assert w.land(sid)["position"] == 2
    # Rewriting a file that already is one is no collision either.
    again = w.session()
    w.write(again, "src", b"file, changed")
    assert w.land(again)["position"] == 3


def test_a_collision_conflict_is_not_marked_on_operations_changed_meanwhile(make_world) -> None:
    """The collision depends on the operations, not only on their paths: a delete
    recorded between the landing's read of the session and the conflicted mark (same
    path set) must make the lander look again, and then land."""
    from .wrappers import HookStore

    w = make_world(wrap=HookStore)
    first = w.session()
    w.write(first, "x", b"file")
    w.write(first, "y", b"file")
    w.land(first)
    sid = w.session()
    w.write(sid, "x/inner", b"below x")
    w.write(sid, "x", b"x rewritten: still a file")

    def delete_x() -> None:  # same paths, now no collision
        _delete(w, sid, "x")

    w.store.suffix = keys.session(w.project, sid)
    w.store.hook = delete_x
    result = w.land(sid)
    assert w.store.hook is None  # the interleaving really happened
    assert result["position"] == 2
    assert _tree_paths(w) == ["x/inner", "y"]


def test_a_file_added_over_a_nested_directory_is_a_conflict(world: World) -> None:
    """The same check one level down, where the added file's own directory exists:
    the entries below the file are found in the tree, not in the session."""
    w = world
    first = w.session()
    w.write(first, "pkg/docs/guide/a.md", b"a")
    w.write(first, "pkg/setup.py", b"s")
    w.land(first)
    sid = w.session()
    w.write(sid, "pkg/docs", b"a file named pkg/docs")
    w.write(sid, "pkg/new/file.txt", b"in a new directory: fine")
    with pytest.raises(Conflict) as caught:
        w.land(sid)
    assert caught.value.paths == ["pkg/docs", "pkg/docs/guide/a.md"]


def test_a_collision_seen_at_an_old_tip_is_not_marked_once_another_lander_moved_on(
    make_world,
) -> None:
    """Unlike a path conflict, a collision can vanish as the tip moves (a landing
    deletes the file). Lander B sees one at tip 1; before its conflicted mark, the
    file is deleted at 2 and agent A lands the session at 3, then dies before its
    landed mark. B must find that landing, not report a conflict."""
    from .wrappers import CountingStore, HookStore, InjectedCrash

    class DiesBeforeTheLandedMark(CountingStore):
        def __init__(self, inner, session_key: str) -> None:
            super().__init__(inner)
            self.session_key = session_key
            self.logged = False

        def put(self, key, data, *, if_match=None, if_none_match=False):
            if key == self.session_key and self.logged:
                raise InjectedCrash("A died after its commit, before the landed mark")
            etag = super().put(key, data, if_match=if_match, if_none_match=if_none_match)
            self.logged = self.logged or key.startswith(keys.log_prefix(w.project))
            return etag

    w = make_world(wrap=HookStore)
    first = w.session()
    w.write(first, "src", b"a file")
    w.land(first)
    sid = w.session()
    w.write(sid, "src/a.txt", b"below it")
    remover = w.session()
    _delete(w, remover, "src")

    def others_act() -> None:
        assert w.land(remover)["position"] == 2
        config = make_config(Path(w.services.config.data_dir) / "agent-a")
        dying = DiesBeforeTheLandedMark(w.store, keys.session(w.project, sid))
        with build_services(config, store=dying, auth_db=w.auth) as agent_a:
            with pytest.raises(InjectedCrash):
                agent_a.landing.land(w.owner, w.project, sid)
        assert dying.logged

    w.store.suffix = keys.session(w.project, sid)
    w.store.hook = others_act
    result = w.land(sid)  # lander B
    assert w.store.hook is None  # the interleaving really happened
    assert result["position"] == 3
    assert result["session"]["state"] == "landed"
    assert _tree_paths(w) == ["src/a.txt"]


def test_collisions_at_the_greatest_path_length(world: World) -> None:
    from micforge.core.tree import PATH_BYTES_MAX

    w = world
    longest = "d/" + "x" * (PATH_BYTES_MAX - 2)  # nothing can lie below it
    sid = w.session()
    w.write(sid, longest, b"long")
    w.write(sid, "x" * (PATH_BYTES_MAX - 1), b"one byte short")
    assert w.land(sid)["position"] == 1
    over = w.session()
    w.write(over, "d", b"a file over the longest path's directory")
    with pytest.raises(Conflict) as caught:
        w.land(over)
    assert caught.value.paths == ["d", longest]
