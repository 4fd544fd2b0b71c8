"""GET /tree paging over real HTTP: a cursor keeps the first page's snapshot."""

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


@pytest.fixture
def api(micforge_server):
    return micforge_server.client(micforge_server.create_user().token)


def _land(api, project: str, *ops: dict) -> int:
    sid = start_session(api, project)["id"]
    record(api, project, sid, *ops)
    response = land(api, project, sid)
    assert response.status_code == 200, response.text
    return response.json()["position"]


def test_paging_without_at_across_a_landing_reads_one_snapshot(api):
    project = create_project(api)
    blob = upload(api, project, b"x")
    _land(api, project, *(write_op(p, blob) for p in ("a", "b", "c", "d")))
    tree_url = f"/api/mic/projects/{project}/tree"

    page1 = api.get(tree_url, params={"limit": 2}).json()
    assert page1["position"] == 1 and [e["path"] for e in page1["entries"]] == ["a", "b"]
    _land(api, project, {"op": "delete", "path": "c"}, write_op("bb", blob))

    page2 = api.get(tree_url, params={"limit": 2, "cursor": page1["next_cursor"]})
    assert page2.status_code == 200, page2.text
    assert page2.json()["position"] == 1
    assert [e["path"] for e in page2.json()["entries"]] == ["c", "d"]

    # The same at as the cursor's is fine; another at is a mistake worth a 400.
    same = api.get(tree_url, params={"limit": 2, "at": 1, "cursor": page1["next_cursor"]})
    assert same.status_code == 200 and same.json()["entries"] == page2.json()["entries"]
    assert_error(
        api.get(tree_url, params={"limit": 2, "at": 2, "cursor": page1["next_cursor"]}),
        400,
        "invalid_request",
    )
    assert_error(api.get(tree_url, params={"cursor": "bm90LWEtY3Vyc29y"}), 400, "invalid_request")
