"""URLs whose path or query is not UTF-8 are 400, never a lookup of U+FFFD.

Werkzeug decodes the URL path with errors="replace" and keeps undecodable
query bytes percent-encoded; API.md compares paths byte for byte and makes a
malformed path in a URL a 400, so the raw bytes are checked first.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import create_project, land, record, start_session, upload, write_op

REPLACEMENT = "\ufffd"  # what Werkzeug makes of an undecodable byte
REPLACEMENT_URL = "%EF%BF%BD"  # the same character, honestly encoded


@pytest.fixture(scope="module")
def owner(micforge_server):
    return micforge_server.create_user()


@pytest.fixture(scope="module")
def project(micforge_server, owner):
    """A project whose tree holds a file literally named U+FFFD, and one in a directory
    whose name starts with it (a path cannot be both a file and a directory)."""
    api = micforge_server.client(owner.token)
    project = create_project(api)
    sid = start_session(api, project)["id"]
    blob = upload(api, project, b"replacement character")
    record(api, project, sid, write_op(REPLACEMENT, blob), write_op(f"{REPLACEMENT}.d/x", blob))
    assert land(api, project, sid).status_code == 200
    return project


def get(server, target: str, token: str | None) -> tuple[int, str | None, bytes]:
    """GET the request target byte for byte (no client-side re-encoding)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def assert_invalid_request(answer: tuple[int, str | None, bytes]) -> None:
    status, content_type, body = answer
    assert status == 400, (status, body)
    assert content_type is not None and content_type.startswith("application/json")
    assert b'"invalid_request"' in body, body


@pytest.mark.parametrize(
    "encoded",
    [
        "%ff",  # never valid in UTF-8
        "%c3",  # a lead byte without its continuation
        "%80",  # a continuation byte alone
        "a/%c3/b",  # inside a longer path
        "%c0%af",  # overlong "/"
        "%ed%a0%80",  # an encoded surrogate
    ],
)
def test_file_path_that_is_not_utf8_is_400(micforge_server, owner, project, encoded):
    target = f"/api/mic/projects/{project}/files/{encoded}"
    assert_invalid_request(get(micforge_server, target, owner.token))


def test_the_real_replacement_character_is_still_served(micforge_server, owner, project):
    status, _, body = get(
        micforge_server, f"/api/mic/projects/{project}/files/{REPLACEMENT_URL}", owner.token
    )
    assert (status, body) == (200, b"replacement character")


@pytest.mark.parametrize("prefix", ["%ff", "%c3", "%80/", "a%ed%a0%80"])
def test_query_value_that_is_not_utf8_is_400(micforge_server, owner, project, prefix):
    target = f"/api/mic/projects/{project}/tree?prefix={prefix}"
    assert_invalid_request(get(micforge_server, target, owner.token))


def test_utf8_query_values_still_work(micforge_server, owner, project):
    status, _, body = get(
        micforge_server,
        f"/api/mic/projects/{project}/tree?prefix={REPLACEMENT_URL}.d/",
        owner.token,
    )
    assert status == 200, body
    assert f'"path":"{REPLACEMENT}.d/x"'.encode() in body


def test_non_utf8_url_is_400_before_asking_for_a_token(micforge_server, project):
    # The URL is malformed whoever asks; routing on a mangled path would mean nothing.
    assert_invalid_request(get(micforge_server, f"/api/mic/projects/{project}/files/%ff", None))


def test_public_service_routes_still_ignore_their_parameters(micforge_server):
    assert get(micforge_server, "/healthz?probe=%ff", None)[0] == 200
