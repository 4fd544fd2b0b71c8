"""Small helpers shared by the REST tests (flows every test repeats)."""

from __future__ import annotations

import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

from tests.fixtures.server import Api


def send_head(url: str, head: bytes, timeout_s: float = 30) -> bytes:
    """Send ``head`` (a request's bytes, no body) to the server at ``url`` on a raw
    socket, and return what came back up to the end of the response's headers: for
    answers a client library would not let us ask for (no body sent, raw bytes)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def new_project_id() -> str:
    return f"p-{uuid.uuid4().hex[:16]}"


def assert_error(response: Any, status: int, code: str) -> dict:
    """The response is API.md's error JSON with this status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]


def create_project(api: Api) -> str:
    project = new_project_id()
    response = api.post("/api/mic/projects", json={"id": project})
    assert response.status_code == 201, response.text
    return project


def upload(api: Api, project: str, data: bytes) -> str:
    response = api.post(f"/api/mic/projects/{project}/blobs", data=data)
    assert response.status_code in (200, 201), response.text
    return response.json()["hash"]


def start_session(api: Api, project: str, goal: str = "a goal") -> dict:
    response = api.post(f"/api/mic/projects/{project}/sessions", json={"goal": goal})
    assert response.status_code == 201, response.text
    return response.json()


def record(api: Api, project: str, sid: str, *ops: dict) -> dict:
    body: dict = {"operations": list(ops)} if len(ops) != 1 else ops[0]
    response = api.post(f"/api/mic/projects/{project}/sessions/{sid}/operations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def land(api: Api, project: str, sid: str) -> Any:
    return api.post(f"/api/mic/projects/{project}/sessions/{sid}/land")


def write_op(path: str, blob_hash: str, mode: str | None = None) -> dict:
    op = {"op": "write", "path": path, "blob_hash": blob_hash}
    if mode is not None:
        op["mode"] = mode
    return op
