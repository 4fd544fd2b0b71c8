"""HTTP/1.1 framing at the edge, where waitress alone falls short of RFC 9112: what
a request's headers say about its body and its connection (api/serve.py's parser).
Raw sockets, since client libraries never send most of these requests."""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import create_project

JSON_MAX = 2048
BLOB_MAX = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.fixtures.server import start_server

    running = start_server(
        tmp_path_factory.mktemp("framing") / "data",
        {"MICFORGE_BLOB_MAX_BYTES": str(BLOB_MAX), "MICFORGE_JSON_BODY_MAX_BYTES": str(JSON_MAX)},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def owner(server):
    user = server.create_user()
    return user.token, create_project(server.client(user.token))


def _exchange(url: str, raw: bytes, wait_s: float = 30) -> tuple[bytes, bool]:
    """Send ``raw`` on a new connection; return what came back within ``wait_s``, and
    whether the server closed the connection."""
    parts = urlsplit(url)
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=wait_s) as sock:
        sock.sendall(raw)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received, False
            except ConnectionResetError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
    return received, False


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def _statuses(answer: bytes) -> list[int]:
    """The status of each response in ``answer`` (a body need not end in CRLF, so a
    pipelined response's status line may follow it on the same line)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


@pytest.mark.parametrize("coding", ["gzip", "Z", "gzip, chunked"])
def test_a_transfer_coding_other_than_chunked_is_a_400_in_the_error_shape(server, owner, coding):
    """Waitress alone answers 501 to a Transfer-Encoding it cannot decode; API.md's
    errors for a client's mistake are 4xx, with the JSON body and a request id."""
    token, project = owner
    head = (
        f"POST /api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: {_host(server.url)}\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: {coding}\r\n\r\n"
    ).encode()
    answer, closed = _exchange(server.url, head + b"5\r\nhello\r\n0\r\n\r\n")
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 400"), answer[:300]
    assert closed
    assert b"content-type: application/json" in head_bytes.lower()
    assert b"x-request-id: " in head_bytes.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request"
    assert f"Transfer-Encoding {coding!r} is not supported" in error["message"]


def test_expect_100_continue_without_a_body_gets_its_final_answer(server, owner):
    """Waitress sent ``100 Continue`` to a request with nothing to send, then never
    answered it (the connection hung until its idle timeout)."""
    token, project = owner
    health = (
        f"GET /healthz HTTP/1.1\r\nHost: {_host(server.url)}\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    )
    answer, _ = _exchange(server.url, health.encode(), wait_s=5)
    assert _statuses(answer) == [200], answer[:300]
    empty_blob = (
        f"POST /api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: {_host(server.url)}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 0\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n"
    )
    answer, _ = _exchange(server.url, empty_blob.encode(), wait_s=5)
    assert _statuses(answer) in ([200], [201]), answer[:300]
    assert b'"size":0' in answer.replace(b" ", b"")


@pytest.mark.parametrize("version", [" HTTP/1.0", " HTTP/1.2", " HTTP/2.0", " HTTP/0.9", ""])
@pytest.mark.parametrize("with_length", [True, False], ids=["length", "no-length"])
def test_transfer_encoding_outside_http_1_1_is_400_and_its_body_never_runs_as_a_request(
    server, owner, version, with_length
):
    """Waitress decodes transfer codings only for HTTP/1.1 and reads other versions
    as 1.0: it ignored the header, stored a blob of the wrong bytes (or an empty
    one), and read the body as the next request on the connection (smuggling)."""
    token, project = owner
    smuggled = f"GET /api/mic/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    length = f"Content-Length: {len(smuggled)}\r\n" if with_length else ""
    raw = (
        f"POST /api/mic/projects/{project}/blobs{version}\r\nHost: {_host(server.url)}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: keep-alive\r\n"
        f"Transfer-Encoding: chunked\r\n{length}\r\n"
    ) + smuggled
    answer, closed = _exchange(server.url, raw.encode())
    assert _statuses(answer) == [400], answer[:500]
    assert closed
    assert b"Transfer-Encoding is only accepted in an HTTP/1.1 request" in answer
    assert b"keep-alive" not in answer.lower()  # one Connection header: close


@pytest.mark.parametrize(
    "connection", ["close, TE", "TE, Close", "keep-alive, close"], ids=["first", "last", "mixed"]
)
def test_close_among_several_connection_options_closes(server, connection):
    raw = f"GET /healthz HTTP/1.1\r\nHost: {_host(server.url)}\r\nConnection: {connection}\r\n\r\n"
    answer, closed = _exchange(server.url, raw.encode())
    assert _statuses(answer) == [200], answer[:300]
    assert b"connection: close" in answer.lower()
    assert closed


def test_both_transfer_encoding_and_content_length_closes_after_the_answer(server, owner):
    """RFC 9112, 6.1: chunked wins, and the connection must close afterwards (what
    follows on it cannot be trusted to be a request)."""
    token, project = owner
    raw = (
        f"POST /api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: {_host(server.url)}\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n"
        f"GET /healthz HTTP/1.1\r\nHost: {_host(server.url)}\r\n\r\n"
    )
    answer, closed = _exchange(server.url, raw.encode())
    assert _statuses(answer) in ([200], [201]), answer[:500]  # the upload; not /healthz
    assert b'"size":5' in answer.replace(b" ", b"")
    assert closed


def test_extra_leading_slashes_still_get_the_blob_limit_not_the_json_limit(server, owner):
    """The router ignores extra leading slashes, so the early 413 must too: an upload
    over the JSON limit but under the blob limit is taken."""
    token, project = owner
    body = b"b" * (JSON_MAX * 4)
    raw = (
        f"POST //api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: {_host(server.url)}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    answer, _ = _exchange(server.url, raw)
    assert _statuses(answer) in ([200], [201]), answer[:300]
    assert f'"size":{len(body)}'.encode() in answer.replace(b" ", b"")


def test_keep_alive_and_expect_with_a_body_still_work(server, owner):
    """What the mends must not break: 100 Continue for a request with a body (fixed
    or chunked), and a kept-alive connection serving pipelined requests."""
    token, project = owner
    host = _host(server.url)
    parts = urlsplit(server.url)
    for framing in ("Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n"):
        head = (
            f"POST /api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\n{framing}Expect: 100-continue\r\n\r\n"
        )
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            sock.sendall(head.encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(b"hello" if "Length" in framing else b"5\r\nhello\r\n0\r\n\r\n")
            answer = b""
            while b'"size"' not in answer:
                answer += sock.recv(65536)
        assert _statuses(answer)[0] in (200, 201), answer[:300]
    pipelined = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n" * 2
    answer, closed = _exchange(server.url, pipelined.encode(), wait_s=2)
    assert _statuses(answer) == [200, 200], answer[:500]
    assert not closed  # kept alive
