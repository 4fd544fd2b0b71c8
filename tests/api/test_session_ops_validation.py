"""Recording operations and listing sessions, over real HTTP, to the letter of API.md.

- a delete carries no blob_hash and no mode but 'file' (a malformed one is 400, not dropped);
- a batch's error names the operation's index, also when a write's blob is missing;
- the operations limit counts the operations the session would hold, not the batch's length;
- a sessions listing's next_cursor is null once no further session matches, for every
  filter, and a cursor from another project's listing is 400.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    assert_error,
    create_project,
    land,
    record,
    start_session,
    upload,
    write_op,
)

OPS_MAX = 20  # the small server's operations_per_session_max
MISSING_HASH = "ef" * 32


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from tests.fixtures.server import start_server

    server = start_server(
        tmp_path_factory.mktemp("ops") / "data",
        {"MICFORGE_OPERATIONS_PER_SESSION_MAX": str(OPS_MAX)},
    )
    yield server
    server.stop()


@pytest.fixture
def api(micforge_server):
    return micforge_server.client(micforge_server.create_user().token)


def _ops_url(project: str, sid: str) -> str:
    return f"/api/mic/projects/{project}/sessions/{sid}/operations"


def _session(api, project: str, sid: str) -> dict:
    response = api.get(f"/api/mic/projects/{project}/sessions/{sid}")
    assert response.status_code == 200, response.text
    return response.json()


# -- a delete's blob_hash and mode -----------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"blob_hash": "NOTAHASH"}, "blob_hash"),
        ({"blob_hash": "ab" * 32}, "blob_hash"),  # well-formed, but a delete has no content
        ({"blob_hash": 7}, "blob_hash"),
        ({"mode": "exec"}, "mode"),
        ({"mode": "symlink"}, "mode"),
        ({"mode": "bogus"}, "mode"),
        ({"mode": ""}, "mode"),
        ({"mode": 1}, "mode"),
    ],
)
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_delete_with_a_blob_hash_or_a_mode_is_400_and_records_nothing(
    api, extra: dict, needle: str, batch: bool
) -> None:
    project = create_project(api)
    sid = start_session(api, project)["id"]
    delete = {"op": "delete", "path": "d2", **extra}
    body = {"operations": [{"op": "delete", "path": "d1"}, delete]} if batch else delete
    error = assert_error(api.post(_ops_url(project, sid), json=body), 400, "invalid_request")
    assert needle in error["message"]
    if batch:
        assert error["message"].startswith("operations[1]: "), error
    assert _session(api, project, sid)["operations"] == []


def test_a_delete_accepts_null_fields_and_its_own_session_json_back(api) -> None:
    project = create_project(api)
    sid = start_session(api, project)["id"]
    # Generic serializers send absent optional fields as null; the session JSON shows a
    # delete's mode as "file". Both describe a plain delete and are accepted.
    shown = record(
        api,
        project,
        sid,
        {"op": "delete", "path": "a", "blob_hash": None, "mode": None},
        {"op": "delete", "path": "b", "mode": "file"},
    )["operations"]
    assert shown == [
        {"op": "delete", "path": "a", "mode": "file"},
        {"op": "delete", "path": "b", "mode": "file"},
    ]
    again = record(api, project, sid, *shown)["operations"]
    assert again == shown


def test_a_write_still_takes_mode_and_null_mode_is_file(api) -> None:
    project = create_project(api)
    h = upload(api, project, b"#!/bin/sh\n")
    sid = start_session(api, project)["id"]
    shown = record(
        api,
        project,
        sid,
        write_op("tool", h, "exec"),
        {"op": "write", "path": "plain", "blob_hash": h, "mode": None},
    )["operations"]
    assert [(o["path"], o["mode"]) for o in shown] == [("plain", "file"), ("tool", "exec")]
    error = assert_error(
        api.post(_ops_url(project, sid), json={"op": "write", "path": "x", "blob_hash": None}),
        400,
        "invalid_request",
    )
    assert "blob_hash" in error["message"]


@pytest.mark.parametrize(
    "single",
    [
        {"op": "delete", "path": "x"},
        {"path": "x"},
        {"op": "write"},
        {"blob_hash": "ab" * 32},
        {"mode": "exec"},
    ],
)
def test_a_body_with_a_batch_and_a_single_operation_is_400_and_records_nothing(
    api, single: dict
) -> None:
    # Either would be dropped silently: the batch (before, the single op was).
    project = create_project(api)
    sid = start_session(api, project)["id"]
    body = {"operations": [{"op": "delete", "path": "d1"}], **single}
    error = assert_error(api.post(_ops_url(project, sid), json=body), 400, "invalid_request")
    assert "not both" in error["message"] and repr(next(iter(single))) in error["message"]
    assert _session(api, project, sid)["operations"] == []
    # Null single fields are absent ones (as everywhere in an operation).
    nulls = {"operations": [{"op": "delete", "path": "d1"}], "op": None, "path": None}
    assert api.post(_ops_url(project, sid), json=nulls).status_code == 200
    assert [op["path"] for op in _session(api, project, sid)["operations"]] == ["d1"]


# -- errors name the operation ------------------------------------------------------------------


def test_a_missing_blob_in_a_batch_names_its_index_and_hash(api) -> None:
    project = create_project(api)
    h = upload(api, project, b"there\n")
    sid = start_session(api, project)["id"]
    body = {
        "operations": [write_op("a", h), {"op": "write", "path": "b", "blob_hash": MISSING_HASH}]
    }
    error = assert_error(api.post(_ops_url(project, sid), json=body), 400, "invalid_request")
    assert error["message"].startswith("operations[1]: "), error
    assert MISSING_HASH in error["message"] and error["blob_hash"] == MISSING_HASH
    assert _session(api, project, sid)["operations"] == []
    # The single-operation form has no index to name.
    single = assert_error(
        api.post(
            _ops_url(project, sid), json={"op": "write", "path": "b", "blob_hash": MISSING_HASH}
        ),
        400,
        "invalid_request",
    )
    assert single["message"].startswith("blob ") and single["blob_hash"] == MISSING_HASH


def test_a_malformed_operation_in_a_batch_names_its_index(api) -> None:
    project = create_project(api)
    sid = start_session(api, project)["id"]
    for bad, needle in (
        ({"op": "delete", "path": "a/../b"}, "'..'"),
        ({"op": "rename", "path": "a"}, "op"),
        ({"op": "write", "path": "a", "blob_hash": "AB" * 32}, "blob_hash"),
        ({"op": "write", "path": "a"}, "blob_hash"),
        ("delete a", "object"),
    ):
        body = {"operations": [{"op": "delete", "path": "ok"}, bad]}
        error = assert_error(api.post(_ops_url(project, sid), json=body), 400, "invalid_request")
        assert error["message"].startswith("operations[1]: ") and needle in error["message"], error


# -- the operations limit counts the session ---------------------------------------------------


def test_the_operations_limit_counts_what_the_session_would_hold(small_server) -> None:
    api = small_server.client(small_server.create_user().token)
    project = create_project(api)
    sid = start_session(api, project)["id"]
    url = _ops_url(project, sid)
    # 25 deletes of one path leave one operation: well within the limit of 20.
    same = api.post(url, json={"operations": [{"op": "delete", "path": "d"}] * 25})
    assert same.status_code == 200, same.text
    assert len(same.json()["operations"]) == 1
    # 19 more paths fill the session exactly; re-recording them replaces, never adds.
    fill = [{"op": "delete", "path": f"f{i:02}"} for i in range(OPS_MAX - 1)]
    assert len(record(api, project, sid, *fill)["operations"]) == OPS_MAX
    assert len(record(api, project, sid, *fill, *fill)["operations"]) == OPS_MAX
    # One more path is one too many, whatever the batch's length.
    error = assert_error(api.post(url, json={"op": "delete", "path": "one-more"}), 413, "too_large")
    assert str(OPS_MAX) in error["message"]
    assert len(_session(api, project, sid)["operations"]) == OPS_MAX


def test_a_batch_with_more_paths_than_the_limit_is_413_before_any_blob_is_looked_up(
    small_server,
) -> None:
    api = small_server.client(small_server.create_user().token)
    project = create_project(api)
    sid = start_session(api, project)["id"]
    # 21 distinct paths cannot fit whatever the session holds: 413, not the 400 of the
    # missing blobs a lookup would find.
    ops = [
        {"op": "write", "path": f"p{i:02}", "blob_hash": MISSING_HASH} for i in range(OPS_MAX + 1)
    ]
    assert_error(api.post(_ops_url(project, sid), json={"operations": ops}), 413, "too_large")


# -- listing ------------------------------------------------------------------------------------


def _list(api, project: str, **params) -> dict:
    response = api.get(f"/api/mic/projects/{project}/sessions", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_next_cursor_is_null_once_no_further_session_matches(api) -> None:
    project = create_project(api)
    ids = [start_session(api, project, f"goal {i}")["id"] for i in range(5)]
    for sid in (ids[1], ids[3]):
        assert land(api, project, sid).status_code == 200
    assert api.post(f"/api/mic/projects/{project}/sessions/{ids[2]}/abandon").status_code == 200
    # landed: ids 1 and 3 (exactly the limit); open: 0 and 4; abandoned: 2.
    for state, expected in (
        ("landed", [ids[1], ids[3]]),
        ("open", [ids[0], ids[4]]),
        ("abandoned", [ids[2]]),
        ("conflicted", []),
    ):
        page = _list(api, project, state=state, limit=2)
        assert [s["id"] for s in page["sessions"]] == expected, state
        assert page["next_cursor"] is None, state
    # With one more match than the limit, the cursor leads to exactly that one.
    first = _list(api, project, state="open", limit=1)
    assert [s["id"] for s in first["sessions"]] == [ids[0]] and first["next_cursor"]
    rest = _list(api, project, state="open", limit=1, cursor=first["next_cursor"])
    assert [s["id"] for s in rest["sessions"]] == [ids[4]] and rest["next_cursor"] is None
    whole = _list(api, project, limit=5)
    assert [s["id"] for s in whole["sessions"]] == ids and whole["next_cursor"] is None


def test_a_cursor_from_another_projects_listing_is_400(api) -> None:
    project = create_project(api)
    other = create_project(api)
    for p in (project, other):
        for i in range(2):
            start_session(api, p, f"goal {i}")
    cursor = _list(api, other, limit=1)["next_cursor"]
    assert cursor
    response = api.get(f"/api/mic/projects/{project}/sessions", params={"cursor": cursor})
    error = assert_error(response, 400, "invalid_request")
    assert "cursor" in error["message"]
    # The same cursor still pages its own listing, with or without a state filter.
    assert len(_list(api, other, cursor=cursor)["sessions"]) == 1
    assert len(_list(api, other, cursor=cursor, state="open")["sessions"]) == 1
