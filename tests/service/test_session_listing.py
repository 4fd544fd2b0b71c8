"""SessionService.list: pages in creation order whose next_cursor is None exactly when no
further session matches (within the scan budget of a filtered page), for every filter and
page size; cursors belong to one project."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from micforge.errors import InvalidRequest
from micforge.service.sessions import LIST_READ_BATCH, LIST_SCAN_MAX
from micforge.storage import Store
from tests.service.conftest import World
from tests.service.wrappers import SlowSessionReadsStore

STATES = (None, "open", "landed", "conflicted", "abandoned")


def _pages(w: World, state: str | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        page, cursor = w.services.sessions.list(
            w.reader, w.project, state=state, limit=limit, cursor=cursor
        )
        pages.append([view["id"] for view in page])
        if cursor is None:
            return pages
        assert len(pages) <= 20, "listing does not end"


def test_every_filter_and_page_size_ends_with_the_last_match(world: World) -> None:
    w = world
    states: dict[str, str] = {}
    for i in range(8):
        sid = w.session()
        if i in (1, 2, 6):
            w.land(sid)
            states[sid] = "landed"
        elif i in (3, 7):
            w.services.sessions.abandon(w.owner, w.project, sid)
            states[sid] = "abandoned"
        else:
            states[sid] = "open"
    ids = list(states)
    for state in STATES:
        expected = [sid for sid in ids if state is None or states[sid] == state]
        for limit in range(1, len(ids) + 2):
            pages = _pages(w, state, limit)
            assert [sid for page in pages for sid in page] == expected, (state, limit)
            # Every page is full except the last, and only the only page may be empty.
            assert all(len(page) == limit for page in pages[:-1]), (state, limit, pages)
            assert pages[-1] or len(pages) == 1, (state, limit, pages)


def test_a_cursor_is_a_position_in_its_own_project_only(world: World) -> None:
    w = world
    s = w.services.sessions
    ids = [w.session() for _ in range(3)]
    w.services.sessions.abandon(w.owner, w.project, ids[2])
    _, cursor = s.list(w.reader, w.project, limit=1)
    assert cursor is not None
    # The same position serves any state filter of the same project.
    assert [v["id"] for v in s.list(w.reader, w.project, cursor=cursor)[0]] == ids[1:]
    assert [v["id"] for v in s.list(w.reader, w.project, state="abandoned", cursor=cursor)[0]] == [
        ids[2]
    ]
    w.auth.create_project("other", w.reader.id)
    w.services.sessions.start(w.reader, "other", "g")
    with pytest.raises(InvalidRequest, match="cursor"):
        s.list(w.reader, "other", cursor=cursor)


def test_a_filtered_page_stops_after_its_scan_budget_and_the_next_one_goes_on(
    world: World,
) -> None:
    w = world
    for _ in range(LIST_SCAN_MAX):
        w.session()
    last = w.session()
    w.services.sessions.abandon(w.owner, w.project, last)
    s = w.services.sessions
    page, cursor = s.list(w.reader, w.project, state="abandoned", limit=5)
    assert page == [] and cursor is not None  # the budget ran out before the match
    page, cursor = s.list(w.reader, w.project, state="abandoned", limit=5, cursor=cursor)
    assert [v["id"] for v in page] == [last] and cursor is None


def test_a_page_reads_its_sessions_several_at_once_and_no_more_than_it_needs(
    make_world: Callable[..., World],
) -> None:
    slow: list[SlowSessionReadsStore] = []

    def wrap(store: Store) -> Store:
        slow.append(SlowSessionReadsStore(store, delay_s=0.02))
        return slow[0]

    w = make_world(wrap=wrap)
    ids = [w.session() for _ in range(40)]
    w.services.sessions.abandon(w.owner, w.project, ids[-1])
    store = slow[0]
    s = w.services.sessions

    store.most_in_flight = store.session_gets = 0
    page, cursor = s.list(w.reader, w.project, limit=25)
    assert [v["id"] for v in page] == ids[:25] and cursor is not None
    assert store.session_gets == 25  # the limit's worth, not the page of keys listed
    assert store.most_in_flight > 1  # an S3 round trip each: not one after another

    store.most_in_flight = store.session_gets = 0
    page, cursor = s.list(w.reader, w.project, state="abandoned", limit=1)
    assert [v["id"] for v in page] == [ids[-1]] and cursor is None
    assert store.session_gets == 40 and store.most_in_flight > 1

    store.session_gets = 0
    page, cursor = s.list(w.reader, w.project, state="open", limit=2)
    assert [v["id"] for v in page] == ids[:2] and cursor is not None
    assert store.session_gets <= max(3, LIST_READ_BATCH)  # one batch read ahead at most
