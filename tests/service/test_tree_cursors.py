"""Tree paging cursors pin the snapshot of the first page.

Without it, paging without ``at`` across a landing read page 1 at one position
and page 2 at the next, silently skipping or repeating entries.
"""

from __future__ import annotations

import base64

import pytest

from micforge.errors import InvalidRequest

from .conftest import World


def _land(w: World, writes: dict[str, bytes], deletes: tuple[str, ...] = ()) -> int:
    sid = w.session(goal="change")
    ops = [{"op": "write", "path": p, "blob_hash": w.blob(c)} for p, c in writes.items()]
    ops += [{"op": "delete", "path": p} for p in deletes]
    w.services.sessions.record_operations(w.owner, w.project, sid, ops)
    return w.land(sid)["position"]


def _paths(page: dict) -> list[str]:
    return [e["path"] for e in page["entries"]]


def test_pages_without_at_stay_on_the_first_pages_snapshot(world: World) -> None:
    w, content = world, world.services.content
    _land(w, {"a": b"1", "b": b"2", "c": b"3", "d": b"4"})
    page1 = content.tree(w.reader, w.project, limit=2)
    assert (page1["position"], _paths(page1)) == (1, ["a", "b"])
    # A landing between the pages: "b" and "c" are gone, "bb" is new.
    _land(w, {"bb": b"5"}, deletes=("b", "c"))
    page2 = content.tree(w.reader, w.project, limit=2, cursor=page1["next_cursor"])
    assert page2["position"] == 1 and page2["tree_hash"] == page1["tree_hash"]
    assert _paths(page2) == ["c", "d"] and page2["next_cursor"] is None
    # A fresh listing (no cursor) reads the new tip.
    assert _paths(content.tree(w.reader, w.project)) == ["a", "bb", "d"]


def test_a_cursor_with_the_same_at_is_accepted(world: World) -> None:
    w, content = world, world.services.content
    _land(w, {"a": b"1", "b": b"2", "c": b"3"})
    _land(w, {"d": b"4"})
    page1 = content.tree(w.reader, w.project, at=1, limit=2)
    page2 = content.tree(w.reader, w.project, at=1, limit=2, cursor=page1["next_cursor"])
    assert (page2["position"], _paths(page2)) == (1, ["c"])


def test_a_cursor_with_another_at_is_400(world: World) -> None:
    w, content = world, world.services.content
    _land(w, {"a": b"1", "b": b"2", "c": b"3"})
    _land(w, {"d": b"4"})
    page1 = content.tree(w.reader, w.project, limit=2)  # at the tip, 2
    with pytest.raises(InvalidRequest):
        content.tree(w.reader, w.project, at=1, limit=2, cursor=page1["next_cursor"])
    with pytest.raises(InvalidRequest):
        content.tree(w.reader, w.project, at=0, limit=2, cursor=page1["next_cursor"])


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        _b64(b"a"),  # a bare path: no position
        _b64(b"x\x00a"),  # a position that is no number
        _b64(b"-1\x00a"),
        _b64(b"1\x00"),  # no path
        _b64(b"1\x00../a"),  # a malformed path
        _b64(b"1\x00\xff"),  # not UTF-8
        _b64(b"01\x00a"),  # another spelling of position 1
        _b64(b"1\x00a") + "=",  # padded
        _b64(b"9\x00a"),  # past the tip: never handed out
    ],
)
def test_malformed_or_forged_cursors_are_400(world: World, cursor: str) -> None:
    w = world
    _land(w, {"a": b"1", "b": b"2"})
    with pytest.raises(InvalidRequest):
        w.services.content.tree(w.reader, w.project, limit=1, cursor=cursor)
