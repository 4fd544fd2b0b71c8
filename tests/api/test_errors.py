"""Every error row of API.md, over real HTTP, each answered with the error JSON shape."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.api.helpers import (
    assert_error,
    create_project,
    land,
    record,
    start_session,
    upload,
    write_op,
)

GOOD_HASH = "ab" * 32
GOOD_SID = "cd" * 16


@pytest.fixture(scope="module")
def owner(micforge_server):
    return micforge_server.create_user()


@pytest.fixture
def api(micforge_server, owner):
    return micforge_server.client(owner.token)


def raw_request(
    base_url: str, method: str, target: str, token: str, body: bytes = b"", headers=None
):
    """Send the request target byte for byte (requests/urllib3 would normalise '..' away)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        conn.request(method, target, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


# -- 400 invalid_request ------------------------------------------------------


def test_json_endpoints_reject_malformed_json_wrong_type_and_non_objects(api):
    url = "/api/mic/projects"
    assert_error(
        api.post(url, data=b"{", headers={"Content-Type": "application/json"}),
        400,
        "invalid_request",
    )
    assert_error(
        api.post(url, data=b'{"id": NaN}', headers={"Content-Type": "application/json"}),
        400,
        "invalid_request",
    )
    assert_error(
        api.post(url, data=b"\xff\xfe", headers={"Content-Type": "application/json"}),
        400,
        "invalid_request",
    )
    assert_error(api.post(url, json=["acme"]), 400, "invalid_request")
    assert_error(api.post(url, json="acme"), 400, "invalid_request")
    assert_error(
        api.post(url, data=json.dumps({"id": "x"}), headers={"Content-Type": "text/plain"}),
        400,
        "invalid_request",
    )
    assert_error(
        api.post(url, data=json.dumps({"id": "x"})), 400, "invalid_request"
    )  # no Content-Type
    assert_error(api.post(url, json={"id": 7}), 400, "invalid_request")
    assert_error(api.post(url, json={}), 400, "invalid_request")
    assert_error(api.post(url, json={"id": "Upper"}), 400, "invalid_request")
    # A charset parameter is fine.
    ok = api.post(
        url,
        data=b'{"id": "charset-ok-%d"}' % id(api),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201, ok.text


def test_session_bodies_wrong_types_unknown_op_bad_paths_and_hashes(api):
    project = create_project(api)
    blob = upload(api, project, b"data")
    sid = start_session(api, project)["id"]
    base = f"/api/mic/projects/{project}/sessions"
    assert_error(api.post(base, json={"goal": 5}), 400, "invalid_request")
    assert_error(api.post(base, json={"goal": "\ud800"}), 400, "invalid_request")
    ops = f"{base}/{sid}/operations"
    bad_bodies = [
        {"op": "rename", "path": "a", "blob_hash": blob},
        {"op": "write", "path": "a"},
        {"op": "write", "path": "a", "blob_hash": blob, "mode": "dir"},
        {"op": "write", "path": "a", "blob_hash": blob, "mode": ""},
        {"op": "write", "path": "a", "blob_hash": blob.upper()},
        {"op": "write", "path": "a", "blob_hash": blob[:-2]},
        {"op": "write", "path": 5, "blob_hash": blob},
        {"operations": []},
        {"operations": "nope"},
        {"operations": [write_op("ok", blob), {"op": "delete"}]},
    ]
    bad_paths = ["../etc/passwd", "/abs", "a//b", "a/./b", "a/..", "", "nul\x00byte", "a/"]
    bad_bodies += [write_op(path, blob) for path in bad_paths]
    for body in bad_bodies:
        assert_error(api.post(ops, json=body), 400, "invalid_request")
    assert_error(
        api.post(f"{base}/{sid}/decisions", json={"content": ["x"]}), 400, "invalid_request"
    )
    assert_error(
        api.post(f"{base}/{sid}/conversation", json={"role": "bot", "content": "x"}),
        400,
        "invalid_request",
    )
    # Nothing of the refused batches was recorded.
    assert api.get(f"{base}/{sid}").json()["operations"] == []


def test_write_of_a_blob_stored_in_another_project_names_the_hash(api):
    mine, other = create_project(api), create_project(api)
    foreign = upload(api, other, b"lives elsewhere")
    sid = start_session(api, mine)["id"]
    error = assert_error(
        api.post(
            f"/api/mic/projects/{mine}/sessions/{sid}/operations", json=write_op("f", foreign)
        ),
        400,
        "invalid_request",
    )
    assert foreign in error["message"]


def test_malformed_ids_hashes_and_paths_in_urls(micforge_server, api, owner):
    project = create_project(api)
    for path in (
        f"/api/mic/projects/{project}/blobs/{GOOD_HASH.upper()}",
        f"/api/mic/projects/{project}/blobs/abc",
        f"/api/mic/projects/{project}/sessions/not-a-session-id",
        "/api/mic/projects/Bad_Id",
    ):
        assert_error(api.get(path), 400, "invalid_request")
    for target in (
        f"/api/mic/projects/{project}/files/../secret",
        f"/api/mic/projects/{project}/files/a/../b",
        f"/api/mic/projects/{project}/files//etc/passwd",
        f"/api/mic/projects/{project}/files/a//b",
        f"/api/mic/projects/{project}/files/a%00b",
        f"/api/mic/projects/{project}/files/",
    ):
        status, content_type, body = raw_request(micforge_server.url, "GET", target, owner.token)
        assert (status, content_type) == (400, "application/json"), (target, status, body)
        assert json.loads(body)["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    ["/sessions?limit=abc", "/sessions?limit=0", "/sessions?limit=1001", "/sessions?state=done",
     "/tree?at=-1", "/tree?at=1.5", "/tree?prefix=../x", "/log?from=x", "/log?limit=-3",
     "/diff?from=0", "/diff?to=0", "/diff?from=a&to=0", "/files/f?at=%2B1",
     "/sessions?cursor=not-a-cursor", "/diff?from=&to=1"],
)  # fmt: skip
def test_query_parameters_are_validated(api, query):
    project = create_project(api)
    assert_error(api.get(f"/api/mic/projects/{project}{query}"), 400, "invalid_request")


@pytest.mark.parametrize(
    "target",
    ["/api/mic/projects/{p}/sessions?limt=5", "/api/mic/projects/{p}/log?limit=5&from=1&x=1",
     "/api/mic/projects/{p}/tree?=null", "/api/mic/projects/{p}?state=open", "/api/mic/me?at=1",
     "/api/mic/projects/{p}/files/a.txt?prefix=a"],
)  # fmt: skip
def test_unknown_query_parameters_are_400_and_named(api, target):
    # A misspelt parameter is not silently ignored (docs/api.md).
    project = create_project(api)
    response = api.get(target.replace("{p}", project))
    assert_error(response, 400, "invalid_request")
    name = target.split("?", 1)[1].split("&")[-1].split("=")[0]
    assert f"unknown query parameter {name!r}" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "query",
    ["?limit=5&limit=6", "?limit=5&limit=5", "?state=open&limit=1&state=", "?cursor=&cursor="],
)
def test_a_repeated_query_parameter_is_400_and_named(api, query):
    project = create_project(api)
    response = api.get(f"/api/mic/projects/{project}/sessions{query}")
    assert_error(response, 400, "invalid_request")
    name = "state" if "state" in query else query[1:].split("=")[0]
    assert f"query parameter {name!r} given 2 times" in response.json()["error"]["message"]


def test_public_service_routes_ignore_query_parameters(micforge_server):
    # Probes and scrapers may add their own parameters.
    for target in ["/healthz?probe=1", "/metrics?format=text", "/api/openapi.json?v=1"]:
        assert requests.get(micforge_server.url + target, timeout=30).status_code == 200, target


def test_documented_query_parameters_are_accepted_and_empty_is_absent(api):
    project = create_project(api)
    for target in ["/sessions?state=open&limit=5", "/log?limit=5", "/tree?at=0&prefix=src&limit=5",
                   "/tree?prefix=&at=&limit=&cursor=", "/log?from=&limit="]:  # fmt: skip
        assert api.get(f"/api/mic/projects/{project}{target}").status_code == 200, target
    start_session(api, project)
    every = api.get(f"/api/mic/projects/{project}/sessions?state=&limit=&cursor=").json()
    assert len(every["sessions"]) == 1
    landed = api.get(f"/api/mic/projects/{project}/sessions?state=landed").json()
    assert landed["sessions"] == []


# -- 401 unauthorized ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer not-a-token"},
     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer mic_" + "0" * 40}],
)  # fmt: skip
def test_missing_or_unknown_tokens_are_401(micforge_server, headers):
    response = requests.get(micforge_server.url + "/api/mic/me", headers=headers, timeout=30)
    assert_error(response, 401, "unauthorized")


def test_token_never_appears_in_the_request_log(micforge_server, owner, api):
    api.get("/api/mic/me")
    requests.get(
        micforge_server.url + "/api/mic/me",
        headers={"Authorization": "Bearer leaked-secret-xyz"},
        timeout=30,
    )
    log = micforge_server.log_text()
    assert owner.token not in log and "leaked-secret-xyz" not in log
    lines = [
        json.loads(line.split(" ", 4)[-1]) for line in log.splitlines() if "micforge.access" in line
    ]
    me = [
        entry for entry in lines if entry["route"] == "/api/mic/me" and entry["user_id"] == owner.id
    ]
    assert me and {"method", "route", "status", "duration_ms", "user_id", "request_id"} <= set(
        me[-1]
    )


# -- 404 not_found, 405 -------------------------------------------------------


def test_unknown_things_are_404(api):
    project = create_project(api)
    p = f"/api/mic/projects/{project}"
    for path in (
        "/api/mic/projects/no-such-project",
        f"{p}/sessions/{GOOD_SID}",
        f"{p}/blobs/{GOOD_HASH}",
        f"{p}/files/no/such/file",
        f"{p}/tree?at=99",
        f"{p}/diff?from=0&to=99",
        "/api/mic/nothing-here",
        "/not-even-api",
    ):
        assert_error(api.get(path), 404, "not_found")
    assert api.head(f"{p}/blobs/{GOOD_HASH}").status_code == 404
    assert_error(api.delete("/api/mic/tokens/t_doesnotexist"), 404, "not_found")
    assert_error(api.put(f"{p}/members/u_nobody", json={"role": "read"}), 404, "not_found")
    assert_error(land(api, project, GOOD_SID), 404, "not_found")


def test_wrong_method_is_405_with_allow_header(api):
    response = api.delete("/api/mic/projects")
    error = assert_error(response, 405, "method_not_allowed")
    assert error["message"]
    assert "POST" in response.headers["Allow"] and "GET" in response.headers["Allow"]


# -- 409 conflict / invalid_state / already_exists ----------------------------


def test_invalid_state_and_already_exists(api):
    project = create_project(api)
    assert_error(api.post("/api/mic/projects", json={"id": project}), 409, "already_exists")
    blob = upload(api, project, b"x")
    landed = start_session(api, project)["id"]
    record(api, project, landed, write_op("x", blob))
    assert land(api, project, landed).status_code == 200
    base = f"/api/mic/projects/{project}/sessions/{landed}"
    assert_error(api.post(f"{base}/operations", json=write_op("y", blob)), 409, "invalid_state")
    assert_error(api.post(f"{base}/decisions", json={"content": "late"}), 409, "invalid_state")
    assert_error(api.post(f"{base}/abandon"), 409, "invalid_state")
    abandoned = start_session(api, project)["id"]
    gone = api.post(f"/api/mic/projects/{project}/sessions/{abandoned}/abandon")
    assert gone.status_code == 200 and gone.json()["state"] == "abandoned"
    assert_error(
        api.post(
            f"/api/mic/projects/{project}/sessions/{abandoned}/conversation",
            json={"role": "user", "content": "hi"},
        ),
        409,
        "invalid_state",
    )
    assert_error(land(api, project, abandoned), 409, "invalid_state")
