"""Answers `micforge serve` gives before the app runs (413 from the headers, malformed
HTTP) carry an X-Request-Id like every other response."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.api.helpers import send_head
from tests.fixtures.server import MicforgeServer, start_server

JSON_MAX = 2048
_FRESH_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicforgeServer]:
    server = start_server(
        tmp_path_factory.mktemp("early") / "data", {"MICFORGE_JSON_BODY_MAX_BYTES": str(JSON_MAX)}
    )
    yield server
    server.stop()


def _exchange(server: MicforgeServer, head: bytes) -> tuple[str, dict[str, str]]:
    """Send ``head`` (no body) and return the status line and the response headers."""
    answer = send_head(server.url, head)
    status_line, *lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status_line, headers


def _oversized_post(extra_header: str = "") -> bytes:
    return (
        "POST /api/mic/projects/acme/sessions HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {JSON_MAX + 1}\r\n{extra_header}\r\n"
    ).encode("latin-1")


def test_an_early_413_carries_a_fresh_request_id(server: MicforgeServer) -> None:
    status_line, headers = _exchange(server, _oversized_post())
    assert status_line.startswith("HTTP/1.1 413")
    assert _FRESH_ID.fullmatch(headers.get("x-request-id", ""))


def test_an_early_413_echoes_a_tame_client_request_id(server: MicforgeServer) -> None:
    _, kept = _exchange(server, _oversized_post("X-Request-Id: trace-42\r\n"))
    assert kept.get("x-request-id") == "trace-42"
    _, replaced = _exchange(server, _oversized_post("X-Request-Id: a/b\r\n"))
    assert _FRESH_ID.fullmatch(replaced.get("x-request-id", ""))


def test_malformed_http_carries_a_request_id(server: MicforgeServer) -> None:
    status_line, headers = _exchange(server, b"GET /healthz HTTP/1.1\r\nHost\r\n\r\n")
    assert status_line.split(" ")[1] == "400"
    assert _FRESH_ID.fullmatch(headers.get("x-request-id", ""))
