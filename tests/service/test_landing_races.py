"""A session changed while one of its landings is between its attempt note and its
commit point (DESIGN.md "Landing", steps 5-6): the change must either wait for the
outcome or be refused, never be acknowledged and then undone by the landing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from micforge.errors import Conflict, InvalidState
from micforge.service import build_services
from micforge.storage import Store, keys

from .conftest import World, another_process, make_config
from .wrappers import CountingStore


class PausingLogStore(CountingStore):
    """Holds the first landing-record write of ``project`` until ``release`` is set:
    a lander caught after noting its attempt in the session, before its commit."""

    def __init__(self, inner: Store, project: str) -> None:
        super().__init__(inner)
        self._log_prefix = keys.log_prefix(project)
        self.reached = threading.Event()
        self.release = threading.Event()

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        if key.startswith(self._log_prefix) and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(30), "the test never released the lander"
        return super().put(key, data, if_match=if_match, if_none_match=if_none_match)


@contextmanager
def paused_landing(w: World, sid: str) -> Iterator[tuple[PausingLogStore, Future]]:
    """Another agent lands ``sid`` and stops just before writing its landing record."""
    pausing = PausingLogStore(w.store, w.project)
    config = make_config(Path(w.services.config.data_dir) / "paused-lander")
    with (
        build_services(config, store=pausing, auth_db=w.auth) as lander,
        ThreadPoolExecutor(1) as pool,
    ):
        landing = pool.submit(lander.landing.land, w.owner, w.project, sid)
        try:
            assert pausing.reached.wait(30), landing.exception(timeout=0)
            yield pausing, landing
        finally:
            pausing.release.set()


def _state(w: World, sid: str) -> tuple[str, int | None]:
    view = w.services.sessions.get(w.owner, w.project, sid)
    return view["state"], view["landed_position"]


CHANGES: dict[str, Callable[[World, str], object]] = {
    "abandon": lambda w, sid: w.services.sessions.abandon(w.owner, w.project, sid),
    "rebase": lambda w, sid: w.services.sessions.rebase(w.owner, w.project, sid),
    "record": lambda w, sid: w.write(sid, "late.txt", b"too late"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_during_a_landing_is_refused_and_the_landing_stands(
    world: World, change: str
) -> None:
    w = world
    sid = w.session()
    w.write(sid, "a.txt", b"a")
    with paused_landing(w, sid) as (_, landing):
        with pytest.raises(InvalidState, match="in progress"):
            CHANGES[change](w, sid)
        assert _state(w, sid) == ("open", None)
    assert landing.result(timeout=30)["position"] == 1
    assert _state(w, sid) == ("landed", 1)
    # Once landed, the same change is refused for that reason.
    with pytest.raises(InvalidState, match="landed"):
        CHANGES[change](w, sid)
    assert [
        p for e in w.services.content.log(w.owner, w.project)["landings"] for p in e["paths"]
    ] == ["a.txt"]


def test_history_recorded_during_a_landing_is_kept_by_it(world: World) -> None:
    # Decisions and conversation change no path: they are taken while a landing is in
    # flight, and the landing's own session write keeps them.
    w = world
    sid = w.session()
    w.write(sid, "a.txt", b"a")
    with paused_landing(w, sid) as (_, landing):
        w.services.sessions.record_decision(w.owner, w.project, sid, "during")
        w.services.sessions.record_conversation(w.owner, w.project, sid, "agent", "said")
    assert landing.result(timeout=30)["position"] == 1
    view = w.services.sessions.get(w.owner, w.project, sid)
    assert (view["state"], view["landed_position"]) == ("landed", 1)
    assert [d["content"] for d in view["decisions"]] == ["during"]
    assert [c["content"] for c in view["conversation"]] == ["said"]
    with pytest.raises(InvalidState, match="landed"):
        w.services.sessions.record_decision(w.owner, w.project, sid, "after")


def test_an_abandon_once_the_attempt_lost_its_position_wins_over_the_landing(
    world: World,
) -> None:
    w = world
    sid = w.session()
    w.write(sid, "a.txt", b"a")
    with paused_landing(w, sid) as (pausing, landing):
        # Another session takes position 1, the one the paused lander noted.
        other = w.session(goal="other")
        w.write(other, "b.txt", b"b")
        assert w.land(other)["position"] == 1
        # The attempt has lost: nothing of it can commit any more, so the abandon stands.
        assert w.services.sessions.abandon(w.owner, w.project, sid)["state"] == "abandoned"
        pausing.release.set()
        # The lander meets position 1 taken, reads the session again: abandoned.
        with pytest.raises(InvalidState, match="abandoned"):
            landing.result(timeout=30)
    assert _state(w, sid) == ("abandoned", None)
    assert w.services.content.head(w.owner, w.project)["position"] == 1


def test_an_abandon_before_the_attempt_note_stops_the_landing(world: World) -> None:
    # The other order: the abandon is written first, so the lander's If-Match note fails
    # and it reads the session again.
    w = world
    sid = w.session()
    w.write(sid, "a.txt", b"a")
    w.services.sessions.abandon(w.owner, w.project, sid)
    with pytest.raises(InvalidState, match="abandoned"):
        w.land(sid)
    assert _state(w, sid) == ("abandoned", None)
    assert w.services.content.head(w.owner, w.project)["position"] == 0


def test_racing_land_and_abandon_never_both_succeed(make_world: Callable[..., World]) -> None:
    """The race as a client sees it (found from outside: both answered 200 and the
    session ended landed): whoever wins, the loser is told, and the state agrees."""
    w = make_world()
    for n in range(24):
        sid = w.session(goal=f"race {n}")
        w.write(sid, f"f{n}.txt", b"x")
        barrier = threading.Barrier(2)

        def attempt(call: Callable[[], object], barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            try:
                call()
            except InvalidState:
                return False
            return True

        with ThreadPoolExecutor(2) as pool:
            landed = pool.submit(attempt, lambda s=sid: w.land(s))
            abandoned = pool.submit(
                attempt, lambda s=sid: w.services.sessions.abandon(w.owner, w.project, s)
            )
            ok = (landed.result(timeout=60), abandoned.result(timeout=60))
        state, _ = _state(w, sid)
        assert ok != (True, True), f"both succeeded; the session is {state}"
        assert ok != (False, False), "neither succeeded"
        assert state == ("landed" if ok[0] else "abandoned")


@pytest.mark.parametrize("attempts", [1, 2, 64])
def test_landing_a_conflicted_session_answers_the_same_from_a_stale_copy(
    make_world: Callable[..., World], attempts: int
) -> None:
    """Found by a multi-server race test: a process that had seen the session open
    answered a second land with 409 conflict, the others with 409 invalid_state. The
    answer must not cost landing attempts either (a first fix ended in 503 with 1-2)."""
    w = make_world(landing_max_attempts=attempts)
    sid = w.session()
    w.write(sid, "f.txt", b"mine")  # this process now remembers the session open
    other = w.session(goal="other")
    w.write(other, "f.txt", b"theirs")
    w.land(other)
    with another_process(w) as elsewhere:
        with pytest.raises(Conflict) as conflict:  # (this process: the default attempts)
            elsewhere.landing.land(w.owner, w.project, sid)
        assert conflict.value.paths == ["f.txt"]
        with pytest.raises(InvalidState, match="conflicted"):
            elsewhere.landing.land(w.owner, w.project, sid)
    with pytest.raises(InvalidState, match="conflicted"):  # not Conflict: the same answer
        w.land(sid)
    view = w.services.sessions.get(w.owner, w.project, sid)
    assert (view["state"], view["conflict_paths"]) == ("conflicted", ["f.txt"])
