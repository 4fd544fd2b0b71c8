"""204 No Content answers carry no body and no Content-Type (RFC 9110 §15.3.5)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from tests.api.helpers import create_project


def _delete(server, target: str, token: str) -> http.client.HTTPResponse:
    """The raw answer, headers exactly as the server sent them."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("DELETE", target, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def _assert_no_content(response: http.client.HTTPResponse) -> None:
    assert response.status == 204, response.body  # type: ignore[attr-defined]
    assert response.getheader("Content-Type") is None, response.getheaders()
    assert response.getheader("Content-Length") is None, response.getheaders()
    assert response.body == b""  # type: ignore[attr-defined]


def test_revoking_a_token_answers_a_bare_204(micforge_server):
    owner = micforge_server.create_user()
    token = micforge_server.client(owner.token).post("/api/mic/tokens", json={"name": "t"}).json()
    _assert_no_content(_delete(micforge_server, f"/api/mic/tokens/{token['id']}", owner.token))


def test_removing_a_member_answers_a_bare_204(micforge_server):
    owner, member = micforge_server.create_user(), micforge_server.create_user()
    api = micforge_server.client(owner.token)
    project = create_project(api)
    members_url = f"/api/mic/projects/{project}/members/{member.id}"
    assert api.put(members_url, json={"role": "read"}).status_code == 200
    _assert_no_content(_delete(micforge_server, members_url, owner.token))
