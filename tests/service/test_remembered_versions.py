"""What a process remembers between requests (docs/landing.md, "Versions this process
remembers"): the last version of each session it read or wrote, the last head version,
and the highest position it has seen. Each saves requests, and each may be stale at any
moment because other agents (processes) act on the same store; these tests make it
stale on purpose and check that the outcome is the one a fresh read would give."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from micforge.core import decode_head
from micforge.errors import Conflict
from micforge.storage import keys
from micforge.storage.base import StorageUnavailable

from .conftest import World, another_process
from .wrappers import CountingStore


@pytest.fixture(params=["local", "s3"])
def counted_world(request: pytest.FixtureRequest, make_world: Callable[..., World]) -> World:
    if request.param == "local":
        return make_world(wrap=CountingStore)
    return make_world(request.getfixturevalue("make_s3_store")(), wrap=CountingStore)


def _write(services, w: World, sid: str, path: str, content: bytes) -> dict:
    view, _ = services.blobs.put(w.owner, w.project, content)
    return services.sessions.record_operations(
        w.owner, w.project, sid, [{"op": "write", "path": path, "blob_hash": view["hash"]}]
    )


def _head_position(w: World) -> int:
    return decode_head(w.store.get(keys.head(w.project))[0]).position


def test_record_and_land_read_almost_nothing_in_the_process_that_started_the_session(
    counted_world: World,
) -> None:
    w = counted_world
    counting: CountingStore = w.store  # type: ignore[assignment]
    warm = w.session()
    w.write(warm, "warm.txt", b"warm")
    w.land(warm)
    sid = w.session()
    blob = w.blob(b"content")

    counting.reset()
    w.services.sessions.record_operations(
        w.owner, w.project, sid, [{"op": "write", "path": "f.txt", "blob_hash": blob}]
    )
    # The session as this process wrote it (no GET), the blob's size from the cache.
    assert (counting.reads, counting.writes) == (0, 1)

    counting.reset()
    assert w.land(sid)["position"] == 2
    # One read: the probe that proves log/3 is free. No session GET, no head GET, no GET
    # of log/2 for the parent tree (this process wrote it).
    assert counting.reads == 1
    # Attempt note, tree node(s), log/2, head, session marked landed.
    assert 5 <= counting.writes <= 7, counting.writes


def test_an_operation_recorded_by_another_process_is_in_the_landing(world: World) -> None:
    """The lander's remembered session lacks the other process's operation; the attempt
    note's If-Match fails on it, and the landing is built from the fresh session."""
    w = world
    sid = w.session()
    w.write(sid, "mine.txt", b"mine")
    with another_process(w) as other:
        _write(other, w, sid, "theirs.txt", b"theirs")
    result = w.land(sid)
    assert result["position"] == 1
    assert w.services.history.record(w.project, 1).paths == ["mine.txt", "theirs.txt"]
    listing = w.services.content.tree(w.owner, w.project)
    assert [e["path"] for e in listing["entries"]] == ["mine.txt", "theirs.txt"]


def test_a_session_another_process_landed_is_not_landed_again(world: World) -> None:
    """A session with no paths: nothing in the log finds it but its attempt position, which
    only the fresh session shows. The remembered one says open with no attempt."""
    w = world
    sid = w.session()
    w.services.sessions.record_decision(w.owner, w.project, sid, "nothing to change")
    with another_process(w) as other:
        assert other.landing.land(w.owner, w.project, sid)["position"] == 1
    again = w.land(sid)
    assert again["position"] == 1 and again["session"]["state"] == "landed"
    assert w.services.history.tip(w.project) == 1


def test_a_refusal_is_not_decided_from_a_stale_session(world: World) -> None:
    """This process remembers the session as conflicted; another process rebased it.
    Recording and landing must go ahead, as they would from a fresh read."""
    w = world
    s, t = w.session(), w.session()
    w.write(s, "x.txt", b"from s")
    w.write(t, "x.txt", b"from t")
    w.land(t)
    with pytest.raises(Conflict):
        w.land(s)
    with another_process(w) as other:
        assert other.sessions.rebase(w.owner, w.project, s)["state"] == "open"
    w.write(s, "y.txt", b"more from s")
    with another_process(w) as other:
        other.sessions.rebase(w.owner, w.project, s)  # a no-op rebase: the etag moves again
    assert w.land(s)["position"] == 2


def test_a_stale_position_is_never_taken_for_the_tip(world: World) -> None:
    w = world
    first = w.session()
    w.write(first, "a.txt", b"1")
    w.land(first)  # this process has seen position 1
    with another_process(w) as other:
        for i in range(4):
            sid = other.sessions.start(w.owner, w.project, "other")["id"]
            _write(other, w, sid, "b.txt", str(i).encode())
            other.landing.land(w.owner, w.project, sid)
    sid = w.session()
    assert w.services.sessions.get(w.owner, w.project, sid)["base_position"] == 5
    assert w.services.content.head(w.owner, w.project)["position"] == 5
    late = w.session()
    w.write(late, "b.txt", b"late")
    assert w.land(late)["position"] == 6


def test_a_stale_head_version_still_moves_the_head_forward(world: World) -> None:
    w = world
    with another_process(w) as other:
        for position in range(1, 7):
            services = w.services if position % 2 else other
            sid = services.sessions.start(w.owner, w.project, "alternate")["id"]
            _write(services, w, sid, f"f{position}", b"x")
            assert services.landing.land(w.owner, w.project, sid)["position"] == position
            # Each lander's remembered head version is stale by one landing of the other.
            assert _head_position(w) == position


def test_a_session_rebased_by_another_process_is_checked_from_its_new_base(
    world: World,
) -> None:
    """The remembered session has an old base, so its conflict check reports a real path
    change after that base; the conflicted mark's If-Match then fails, and the fresh
    session (rebased past that change) lands instead of being marked conflicted."""
    w = world
    s, t = w.session(), w.session()
    w.write(s, "x.txt", b"from s")
    w.write(t, "x.txt", b"from t")
    w.land(t)
    with another_process(w) as other:
        assert other.sessions.rebase(w.owner, w.project, s)["base_position"] == 1
    result = w.land(s)
    assert result["position"] == 2 and result["session"]["state"] == "landed"


def test_a_lander_whose_head_version_went_stale_still_advances_the_head(make_world) -> None:
    """Another process lands position 1 while this one is between its attempt note and
    its log write: this lander loses log/1 (and so learns position 1 exists without
    reading the head), lands at 2, and advances the head from the version it remembers,
    which is stale; the 412 makes it read the head again and write 2."""
    from .wrappers import HookStore

    w = make_world(wrap=HookStore)
    w.services.history.read_head(w.project)  # remember the (absent) head
    sid = w.session()
    w.write(sid, "mine.txt", b"mine")

    def land_elsewhere() -> None:
        with another_process(w) as other:
            theirs = other.sessions.start(w.owner, w.project, "theirs")["id"]
            _write(other, w, theirs, "theirs.txt", b"theirs")
            assert other.landing.land(w.owner, w.project, theirs)["position"] == 1

    w.store.suffix = keys.session(w.project, sid)
    w.store.hook = land_elsewhere
    assert w.land(sid)["position"] == 2
    assert w.store.hook is None  # the interleaving really happened
    assert _head_position(w) == 2


class _LostResponseStore(CountingStore):
    """Performs the write to ``lose``, then reports it as failed in transit: what
    S3Store raises for an If-Match write whose outcome it cannot establish."""

    lose: str | None = None

    def put(self, key, data, *, if_match=None, if_none_match=False):  # type: ignore[no-untyped-def]
        etag = super().put(key, data, if_match=if_match, if_none_match=if_none_match)
        if key == self.lose:
            self.lose = None
            raise StorageUnavailable("the response was lost after the write happened")
        return etag


@pytest.mark.parametrize("record", ["decision", "conversation"])
def test_a_session_write_of_unknown_outcome_is_not_applied_twice(
    make_world: Callable[..., World], record: str
) -> None:
    # The process remembers the session it created; the write of the change happens
    # but its response is lost. The caller must hear "unavailable", not get a 200 from
    # the change decided a second time (which would append the entry twice).
    w = make_world(wrap=_LostResponseStore)
    store: _LostResponseStore = w.store  # type: ignore[assignment]
    sid = w.session()
    store.lose = keys.session(w.project, sid)
    with pytest.raises(StorageUnavailable):
        if record == "decision":
            w.services.sessions.record_decision(w.owner, w.project, sid, "use sqlite")
        else:
            w.services.sessions.record_conversation(w.owner, w.project, sid, "user", "hello")
    view = w.services.sessions.get(w.owner, w.project, sid)
    assert len(view["decisions"]) + len(view["conversation"]) == 1
    # The next change, from the (now stale) remembered version, still lands exactly once.
    w.services.sessions.record_decision(w.owner, w.project, sid, "second")
    view = w.services.sessions.get(w.owner, w.project, sid)
    assert len(view["decisions"]) + len(view["conversation"]) == 2


def test_what_a_process_remembers_per_project_is_bounded(tmp_path) -> None:
    """A server may see any number of projects: the hints it keeps per project are
    dropped least recently used first, and a dropped hint is only a read more."""
    from concurrent.futures import ThreadPoolExecutor

    from micforge.service.history import History
    from micforge.service.metrics import Metrics
    from micforge.storage import LocalStore

    with ThreadPoolExecutor(1) as pool:
        history = History(LocalStore(tmp_path), Metrics(), pool, projects_remembered_max=2)
        history.saw("a", 1)
        history.saw("b", 2)
        history.saw("a", 1)  # a is now the most recently used
        history.saw("c", 3)
        assert (history.seen("a"), history.seen("b"), history.seen("c")) == (1, None, 3)
        for project in ("a", "b", "c"):
            assert history.read_head(project).position == 0  # no head yet: the empty one
        assert list(history._heads) == ["b", "c"]  # a's head version, the oldest, went
        assert len(history._seen) == 2
