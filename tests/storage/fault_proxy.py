"""A loopback HTTP proxy in front of moto that injects faults, for storage tests.

Each incoming request takes the next fault from a queue (or from ``default``):

``ok``          forward to moto and relay the response
``error500``    answer 500 InternalError without forwarding (nothing happens upstream)
``drop``        close the connection without forwarding (nothing happens upstream)
``drop_after``  forward to moto, then close without answering: the request *did*
                happen but its response is lost (the ambiguous case)
``conflict409`` answer 409 ConditionalRequestConflict without forwarding (what AWS
                returns to a conditional write racing another one; moto never does)
``slowdown503`` answer 503 SlowDown (throttling) without forwarding
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FAULTS = {"ok", "error500", "drop", "drop_after", "conflict409", "slowdown503"}
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._default = "ok"
        self.log: list[tuple[str, str, str]] = []  # (method, path, fault)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def inject(self, faults: Iterable[str]) -> None:
        """Queue faults for the next requests, in order."""
        with self._lock:
            for fault in faults:
                if fault not in FAULTS:
                    raise ValueError(f"unknown fault {fault!r}")
                self._queue.append(fault)

    def set_default(self, fault: str) -> None:
        """The fault for requests once the queue is empty."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._default = fault

    def count(self, fault: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, _, f in self.log
                if (fault is None or f == fault) and (method is None or m == method)
            )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self, method: str, path: str) -> str:
        with self._lock:
            fault = self._queue.popleft() if self._queue else self._default
            self.log.append((method, path, fault))
            return fault

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault = self._next_fault(handler.command, handler.path)
        canned = {
            "error500": (500, "InternalError"),
            "conflict409": (409, "ConditionalRequestConflict"),
            "slowdown503": (503, "SlowDown"),
        }
        if fault in canned:
            status, code = canned[fault]
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected</Message></Error>"
            ).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if fault == "drop":
            handler.close_connection = True
            return
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
            conn.request(handler.command, handler.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        if fault == "drop_after":
            handler.close_connection = True
            return
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() in _HOP_HEADERS:
                continue
            if name.lower() == "content-length" and handler.command != "HEAD":
                continue  # recomputed below; a HEAD keeps the object's length
            handler.send_header(name, value)
        if handler.command != "HEAD":
            handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)
