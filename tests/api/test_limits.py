"""413 too_large and 429 rate_limited, on servers configured with small limits."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    assert_error,
    create_project,
    land,
    record,
    send_head,
    start_session,
    upload,
    write_op,
)

BLOB_MAX = 64 * 1024
JSON_MAX = 2048
GOAL_MAX = 100
ENTRY_MAX = 200
DIFF_MAX = 3


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from tests.fixtures.server import start_server

    server = start_server(
        tmp_path_factory.mktemp("small") / "data",
        {
            "MICFORGE_BLOB_MAX_BYTES": str(BLOB_MAX),
            "MICFORGE_JSON_BODY_MAX_BYTES": str(JSON_MAX),
            "MICFORGE_GOAL_MAX_BYTES": str(GOAL_MAX),
            "MICFORGE_ENTRY_MAX_BYTES": str(ENTRY_MAX),
            "MICFORGE_DIFF_CHANGES_MAX": str(DIFF_MAX),
        },
    )
    yield server
    server.stop()


def _chunks(total_bytes: int, chunk_bytes: int = 8192):
    # A generator body makes requests send Transfer-Encoding: chunked (no Content-Length).
    sent = 0
    while sent < total_bytes:
        size = min(chunk_bytes, total_bytes - sent)
        yield b"z" * size
        sent += size


def test_blob_over_the_limit_is_413_and_nothing_is_stored(small_server):
    api = small_server.client(small_server.create_user().token)
    project = create_project(api)
    blobs = f"/api/mic/projects/{project}/blobs"
    exact = api.post(blobs, data=b"z" * BLOB_MAX)
    assert exact.status_code == 201, exact.text
    assert_error(api.post(blobs, data=b"y" * (BLOB_MAX + 1)), 413, "too_large")
    assert_error(api.post(blobs, data=_chunks(BLOB_MAX + 1)), 413, "too_large")
    # Far over: refused by waitress itself, before reading the body, in the same JSON shape.
    assert_error(api.post(blobs, data=b"y" * (4 * BLOB_MAX)), 413, "too_large")
    # The same bytes within the limit hash to a blob that was never stored by the refusals.
    fits = api.post(blobs, data=b"y" * 10)
    assert fits.status_code == 201
    chunked = api.post(blobs, data=_chunks(BLOB_MAX - 1))
    assert chunked.status_code == 201 and chunked.json()["size"] == BLOB_MAX - 1


def test_json_body_goal_and_entries_over_their_limits_are_413(small_server):
    api = small_server.client(small_server.create_user().token)
    project = create_project(api)
    big = {"id": "x" * 10, "padding": "p" * JSON_MAX}
    assert_error(api.post("/api/mic/projects", json=big), 413, "too_large")
    assert_error(
        api.post(
            "/api/mic/projects",
            data=_chunks(JSON_MAX + 1),
            headers={"Content-Type": "application/json"},
        ),
        413,
        "too_large",
    )
    sessions = f"/api/mic/projects/{project}/sessions"
    assert_error(api.post(sessions, json={"goal": "g" * (GOAL_MAX + 1)}), 413, "too_large")
    assert api.post(sessions, json={"goal": "g" * GOAL_MAX}).status_code == 201
    sid = start_session(api, project)["id"]
    assert_error(
        api.post(f"{sessions}/{sid}/decisions", json={"content": "d" * (ENTRY_MAX + 1)}),
        413,
        "too_large",
    )
    assert_error(
        api.post(
            f"{sessions}/{sid}/conversation",
            json={"role": "user", "content": "c" * (ENTRY_MAX + 1)},
        ),
        413,
        "too_large",
    )
    assert api.get(f"{sessions}/{sid}").json()["decisions"] == []


def test_rate_limit_is_per_token_with_retry_after(micforge_server_factory):
    # 2 per minute: a burst of 2, then one more every 30 s (far longer than this test).
    server = micforge_server_factory(MICFORGE_RATE_LIMIT_PER_MINUTE="2")
    first = server.create_user()  # spends one request (GET /me)
    api = server.client(first.token)
    assert api.get("/api/mic/me").status_code == 200
    limited = api.get("/api/mic/me")
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    # Another token has its own bucket; the public endpoints are not limited.
    assert server.client(server.create_user().token).get("/api/mic/me").status_code == 200
    assert all(api.get("/healthz").status_code == 200 for _ in range(5))


def _send_headers_only(
    url: str, token: str, method: str, path: str, content_length: int, expect: bool
) -> bytes:
    """Send a request's headers announcing ``content_length`` bytes, and no body."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Length: {content_length}",
    ]
    if expect:
        lines.append("Expect: 100-continue")
    return send_head(url, ("\r\n".join(lines) + "\r\n\r\n").encode(), timeout_s=5)


@pytest.mark.parametrize("expect", [False, True])
def test_413_is_decided_from_content_length_before_the_body_is_read(small_server, expect):
    """The server answers 413 from the headers alone: a client that announces too much
    gets the answer without sending a byte of body (and no 100 Continue)."""
    user = small_server.create_user()
    api = small_server.client(user.token)
    project = create_project(api)
    answer = _send_headers_only(
        small_server.url,
        user.token,
        "POST",
        f"/api/mic/projects/{project}/sessions",
        JSON_MAX + 1,
        expect,
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"100 Continue" not in answer
    blob_answer = _send_headers_only(
        small_server.url,
        user.token,
        "POST",
        f"/api/mic/projects/{project}/blobs",
        BLOB_MAX + 1,
        expect,
    )
    assert blob_answer.startswith(b"HTTP/1.1 413"), blob_answer[:200]
    # Under its limit a blob upload is not refused early: the server waits for the body.
    ok = _send_headers_only(
        small_server.url,
        user.token,
        "POST",
        f"/api/mic/projects/{project}/blobs",
        JSON_MAX + 1,
        True,
    )
    assert ok.startswith(b"HTTP/1.1 100 Continue"), ok[:200]


def test_a_diff_with_more_changes_than_the_limit_is_413(small_server):
    api = small_server.client(small_server.create_user().token)
    project = create_project(api)
    blob = upload(api, project, b"same")
    for paths in (["a", "b", "c"], ["d"]):
        sid = start_session(api, project)["id"]
        record(api, project, sid, *(write_op(p, blob) for p in paths))
        assert land(api, project, sid).status_code == 200
    diff = f"/api/mic/projects/{project}/diff"
    fits = api.get(diff, params={"from": 0, "to": 1})
    assert fits.status_code == 200 and len(fits.json()["changes"]) == DIFF_MAX
    error = assert_error(api.get(diff, params={"from": 0, "to": 2}), 413, "too_large")
    assert f"more than {DIFF_MAX} changes" in error["message"]
    assert len(api.get(diff, params={"from": 1, "to": 2}).json()["changes"]) == 1
