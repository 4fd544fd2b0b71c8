"""Responses without a body (204, 304) keep an HTTP/1.1 connection open.

Waitress alone closes the connection after them, so a client revalidating blobs
with If-None-Match would reconnect for each one (serve.py, _KeepAliveTask)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import create_project, upload
from tests.fixtures.server import MicforgeServer


@pytest.fixture
def connection(micforge_server: MicforgeServer) -> Iterator[http.client.HTTPConnection]:
    parts = urlsplit(micforge_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.connect()
    yield conn
    conn.close()


def _exchange(
    conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    return response, response.read()


def test_a_304_and_a_204_keep_the_connection(
    micforge_server: MicforgeServer, connection: http.client.HTTPConnection
) -> None:
    user = micforge_server.create_user()
    api = micforge_server.client(user.token)
    project = create_project(api)
    blob = upload(api, project, b"cached by the client")
    token = api.post("/api/mic/tokens", json={"name": "spare"}).json()
    auth = {"Authorization": f"Bearer {user.token}"}
    socket_before = connection.sock
    path = f"/api/mic/projects/{project}/blobs/{blob}"

    fresh, _ = _exchange(connection, "GET", path, {**auth, "If-None-Match": f'"{blob}"'})
    assert fresh.status == 304
    assert fresh.getheader("Connection") is None
    revoked, _ = _exchange(connection, "DELETE", f"/api/mic/tokens/{token['id']}", auth)
    assert revoked.status == 204
    assert revoked.getheader("Connection") is None
    again, body = _exchange(connection, "GET", path, auth)
    assert (again.status, body) == (200, b"cached by the client")
    assert connection.sock is socket_before  # one connection for all three


def test_a_client_that_asks_to_close_still_gets_close(
    micforge_server: MicforgeServer, connection: http.client.HTTPConnection
) -> None:
    user = micforge_server.create_user()
    api = micforge_server.client(user.token)
    token = api.post("/api/mic/tokens", json={"name": "spare"}).json()
    headers = {"Authorization": f"Bearer {user.token}", "Connection": "close"}
    revoked, _ = _exchange(connection, "DELETE", f"/api/mic/tokens/{token['id']}", headers)
    assert revoked.status == 204
    assert revoked.getheader("Connection") == "close"
    assert connection.sock is None  # http.client closed it, as the server said it would
