"""A store that fails after a landing's commit point (DESIGN.md "Landing", step 6):
the landing happened, so the call answers it, and reads show it, whatever the
steps after the commit managed (found from outside: a 503 for a committed landing,
and the session still listed as open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from micforge.core import STATE_LANDED, decode_session
from micforge.errors import InvalidState
from micforge.service import build_services
from micforge.storage import StorageUnavailable, Store, keys

from .conftest import World, another_process, make_config
from .wrappers import CountingStore


class FailsAfterTheLog(CountingStore):
    """Every write after the first landing record of ``project`` fails as a store that
    went away does: the head hint, the session's landed mark, rollups."""

    def __init__(self, inner: Store, project: str) -> None:
        super().__init__(inner)
        self._log_prefix = keys.log_prefix(project)
        self.committed = False

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        if self.committed:
            raise StorageUnavailable(f"writing {key}: connection reset (injected)")
        etag = super().put(key, data, if_match=if_match, if_none_match=if_none_match)
        self.committed = key.startswith(self._log_prefix)
        return etag


def _state(services, w: World, sid: str) -> tuple[str, int | None]:
    view = services.sessions.get(w.owner, w.project, sid)
    return view["state"], view["landed_position"]


@pytest.mark.parametrize("paths", [("a.txt",), ()], ids=["paths", "empty"])
def test_a_landing_whose_later_steps_fail_is_answered_and_read_as_landed(
    world: World, paths: tuple[str, ...]
) -> None:
    w = world
    sid = w.session()
    for path in paths:
        w.write(sid, path, b"content")
    failing = FailsAfterTheLog(w.store, w.project)
    config = make_config(Path(w.services.config.data_dir) / "failing-lander")
    with build_services(config, store=failing, auth_db=w.auth) as lander:
        landed = lander.landing.land(w.owner, w.project, sid)
    assert failing.committed
    assert landed["position"] == 1 and landed["session"]["state"] == "landed"
    assert landed["session"]["landed_position"] == 1
    # The stored session still says open (its mark failed); every reader is told landed.
    with another_process(w) as reader:
        assert _state(reader, w, sid) == ("landed", 1)
        listed = {
            state: reader.sessions.list(w.owner, w.project, state=state)[0]
            for state in ("open", "landed")
        }
        assert [s["id"] for s in listed["landed"]] == [sid] and listed["open"] == []
        assert (
            reader.content.head(w.owner, w.project)["position"] == 1
        )  # the hint lags, not the head
        with pytest.raises(InvalidState, match="landed"):
            reader.sessions.abandon(w.owner, w.project, sid)
        # A land of it again answers the same landing, and writes the mark.
        again = reader.landing.land(w.owner, w.project, sid)
        assert (again["position"], again["tree_hash"]) == (1, landed["tree_hash"])
    stored = decode_session(w.store.get(keys.session(w.project, sid))[0])
    assert (stored.state, stored.landed_position) == (STATE_LANDED, 1)  # the mark, written now
    with another_process(w) as fresh:
        assert fresh.content.log(w.owner, w.project)["landings"][0]["session_id"] == sid
