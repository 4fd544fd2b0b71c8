"""``micforge serve``: the REST app on waitress and the gRPC server, in one process.

Waitress is a production WSGI server (a fixed pool of worker threads behind
one asyncore loop), not Flask's development server. Shutdown on SIGTERM or
SIGINT is graceful: with ``shutdown_drain_ms`` set, health first reports
unhealthy for that long while both ports still serve (a second signal ends
the wait); then the listening sockets close, requests already received are
answered and flushed (up to ``SHUTDOWN_GRACE_S``), the gRPC server gets the
same grace, and only then are the store and auth DB closed.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, TransferEncodingNotImplemented
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import RequestEntityTooLarge
from waitress.wasyncore import close_all, dispatcher

from micforge.api.allocator import tune_allocator
from micforge.api.grpc import build_grpc_server
from micforge.api.rest import create_app
from micforge.api.rest.errors import code_for_status, error_body
from micforge.api.rest.observe import request_id_for
from micforge.config import Config, Limits
from micforge.redact import has_secret, redact_url

log = logging.getLogger("micforge.serve")

SHUTDOWN_GRACE_S = 30.0  # in-flight requests get this long to finish after SIGTERM
# A server that never started has idle workers, which exit at once; this only bounds the wait.
_IDLE_WORKERS_EXIT_S = 5.0
_DRAIN_POLL_S = 0.05
_BODY_HEADROOM_BYTES = 64 * 1024


class _JsonErrorTask(ErrorTask):
    """Waitress's own error answers (body over its cap, bad HTTP) in API.md's JSON shape.

    They never reach the app, so the request id the app's middleware adds to
    every response is added here, by the same rule (the caller's, if tame).
    """

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps(
            error_body(code_for_status(error.code), f"{error.reason}: {error.body}")
        ).encode("utf-8")
        offered = self.request.headers.get("X_REQUEST_ID", "")  # waitress's header key form
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.response_headers.append(("X-Request-Id", request_id_for(offered)))
        # Closing: without this, a 1.0 keep-alive request's answer would also say
        # "Connection: Keep-Alive" next to "Connection: close".
        self.request.headers["CONNECTION"] = "close"
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class RestBindError(OSError):
    """The REST server could not bind its address (taken, not ours, unknown host)."""


class _KeepAliveTask(WSGITask):
    """Waitress's WSGI task, but a 204 or 304 keeps an HTTP/1.1 connection open.

    Waitress closes the connection after any response without a Content-Length,
    to delimit its body, and so also after the statuses that never have one
    (RFC 9112, 6.3): a client revalidating blobs with If-None-Match, or revoking
    tokens, would reconnect for every request. Marking the task as closing while
    waitress builds the head keeps it from adding ``Connection: close``; the mark
    is then taken back unless the client asked to close.
    """

    def build_response_header(self) -> bytes:
        if self.version != "1.1" or self.has_body or self.close_on_finish:
            return super().build_response_header()  # type: ignore[no-any-return]
        self.close_on_finish = True
        try:
            return super().build_response_header()  # type: ignore[no-any-return]
        finally:
            wanted_close = self.request.headers.get("CONNECTION", "").lower() == "close"
            self.close_on_finish = wanted_close


class _Channel(HTTPChannel):
    task_class = _KeepAliveTask
    error_task_class = _JsonErrorTask


# Werkzeug's router ignores extra leading slashes; a trailing one is not this route.
_BLOB_UPLOAD = re.compile(r"/+api/mic/projects/[^/]+/blobs")
_TRANSFER_ENCODING = re.compile(rb"^transfer-encoding:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def _channel_class(limits: Limits) -> type[HTTPChannel]:
    """A channel whose parser decides 413 from Content-Length, per endpoint, as soon as
    the headers are in: the body over the limit is never read, and no ``100 Continue`` is
    sent for it. (Waitress alone only knows one server-wide cap, so without this a JSON
    endpoint would take a body up to the blob limit before the app could refuse it.)

    The parser also mends waitress's framing where RFC 9112 asks for more:
    a transfer coding other than chunked is 400 (waitress: 501); Transfer-Encoding
    on a request of any version but 1.1 is 400 (waitress ignored it and read the
    body as the next request); a request with both Transfer-Encoding and Content-Length, or
    with ``close`` among several Connection options, closes the connection after
    its response; and ``Expect: 100-continue`` on a request without a body is not
    answered with a ``100 Continue`` (waitress then never sent the final answer).
    """

    class _LimitedParser(HTTPRequestParser):
        def parse_header(self, header_plus: bytes) -> None:
            try:
                super().parse_header(header_plus)
            except TransferEncodingNotImplemented:
                # Waitress answers 501 (RFC 9112's SHOULD); a coding other than chunked
                # is the client's mistake, and API.md's errors are 4xx for those.
                # (Waitress has already taken the header out of self.headers.)
                named = _TRANSFER_ENCODING.search(header_plus)
                coding = named.group(1).decode("latin-1").strip() if named else ""
                raise ParsingError(
                    f"Transfer-Encoding {coding[:64]!r} is not supported: send the body "
                    "with Content-Length or Transfer-Encoding: chunked"
                ) from None
            if self.version != "1.1" and "TRANSFER_ENCODING" in self.headers:
                # Waitress decodes (and removes) transfer codings only for exactly 1.1
                # and reads any other version (1.0, 1.2, 2.0, none) as 1.0; a proxy in
                # front may frame the body as chunked: a request smuggled behind. RFC
                # 9112, 6.1: faulty framing; the connection closes after the 400.
                raise ParsingError(
                    f"Transfer-Encoding is only accepted in an HTTP/1.1 request, "
                    f"not HTTP/{self.version or '?'}"
                )
            options = {
                o.strip(" \t").lower() for o in self.headers.get("CONNECTION", "").split(",")
            }
            if "close" in options or (self.chunked and "CONTENT_LENGTH" in self.headers):
                # RFC 9112, 9.6 and 6.1. Waitress's task only closes for exactly
                # "close" in this header (and _KeepAliveTask reads it too).
                self.headers["CONNECTION"] = "close"
            if self.expect_continue and not self.chunked and self.content_length == 0:
                self.expect_continue = False  # no body to wait for
            upload = self.command == "POST" and _BLOB_UPLOAD.fullmatch(self.path or "")
            limit = limits.blob_max_bytes if upload else limits.json_body_max_bytes
            if self.content_length > limit:
                self.error = RequestEntityTooLarge(
                    f"request body is {self.content_length} bytes; the limit is {limit} bytes"
                )
                self.expect_continue = False
                self.completed = True

    class _LimitedChannel(_Channel):
        parser_class = _LimitedParser

    return _LimitedChannel


def _host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_url(host: str, port: int) -> str:
    return f"http://{_host_port(host, port)}"


class Server:
    """The REST and gRPC servers of one process, started and stopped together.

    ``serve()`` is the command; tests and benchmarks may drive this class
    directly with their own ``services``.
    """

    def __init__(self, config: Config, *, services: Any | None = None) -> None:
        if services is None:
            from micforge.service import build_services

            services = build_services(config)
        self.config = config
        self.services = services  # ours from here on: stop() closes them
        try:
            self._build_rest(config, services)
        except BaseException:
            # Typically the REST port is taken: there will be no stop(), so close now.
            self._close_services()
            raise
        self.grpc_server: Any | None = None  # built in start(), so a failed bind leaves nothing
        self.grpc_port: int | None = None
        self._http_thread = threading.Thread(target=self.http.run, name="micforge-http")
        self._stopped = threading.Event()
        self._drain_over = threading.Event()

    def _build_rest(self, config: Config, services: Any) -> None:
        self.app = create_app(config, services=services)
        body_max_bytes = max(config.limits.blob_max_bytes, config.limits.json_body_max_bytes)
        # Our own worker pool, handed in: create_server starts its workers before it
        # binds, and a bind that fails (port taken) would leave them running with no
        # server to stop them. (`_dispatcher` is waitress's own parameter for this.)
        workers = ThreadedTaskDispatcher()
        workers.set_thread_count(config.threads)
        sockets: dict[int, Any] = {}  # waitress's socket map: what close_all closes
        try:
            try:
                self.http = self._create_http(config, workers, body_max_bytes, sockets)
            except (OSError, ValueError) as error:  # taken, not ours, or an unknown host
                where = _host_port(config.host, config.port)
                raise RestBindError(f"cannot start REST on {where}: {error}") from error
            # A host that resolves to several addresses ("localhost": ::1 and
            # 127.0.0.1) gets a listening server on each, in one socket map
            # (waitress's MultiSocketServer); all of them are configured and stopped.
            self._sockets = sockets
            self._workers = workers
            self._listeners = [d for d in sockets.values() if isinstance(d, BaseWSGIServer)]
            channel_class = _channel_class(config.limits)
            for listener in self._listeners:
                listener.channel_class = channel_class
            # Waitress reports the port as getnameinfo()'s numeric string.
            self.http_port = int(self._listeners[0].effective_port)
        except BaseException:
            close_all(sockets)
            workers.shutdown(cancel_pending=True, timeout=_IDLE_WORKERS_EXIT_S)
            raise

    def _create_http(
        self,
        config: Config,
        workers: ThreadedTaskDispatcher,
        body_max_bytes: int,
        sockets: dict[int, Any],
    ) -> Any:
        return create_server(
            self.app,
            map=sockets,
            _dispatcher=workers,
            host=config.host,
            port=config.port,
            threads=config.threads,
            ident="micforge",
            # Waitress refuses a body itself (JSON-shaped, see _Channel) at this size without
            # reading it. It counts chunked framing too (and uses >=), hence the headroom: the
            # app enforces the exact per-endpoint limits, from Content-Length or while reading.
            max_request_body_size=body_max_bytes + body_max_bytes // 8 + _BODY_HEADROOM_BYTES,
            clear_untrusted_proxy_headers=True,
        )

    def start(self) -> None:
        """Start gRPC, then serve REST. If gRPC cannot start (OSError when its address
        is taken), everything opened so far is closed before the error propagates."""
        try:
            self._start_grpc()
        except BaseException:
            self.stop(grace_s=0)
            raise
        self._http_thread.start()

    def _start_grpc(self) -> None:
        bind = _host_port(self.config.host, self.config.grpc_port)
        self.grpc_server, self.grpc_port = build_grpc_server(self.config, self.services, bind=bind)
        self.grpc_server.start()

    @property
    def rest_url(self) -> str:
        return _http_url(self.config.host, self.http_port)

    def _busy_channels(self) -> int:
        busy = 0
        for channel in list(self._sockets.values()):
            if not isinstance(channel, HTTPChannel):
                continue
            # Requests queued or running, a request half received, or output not yet sent.
            if channel.requests or channel.request is not None or channel.total_outbufs_len:
                busy += 1
        return busy

    def stop(self, grace_s: float = SHUTDOWN_GRACE_S, drain_s: float | None = None) -> None:
        """Report unhealthy while still serving for ``drain_s`` (default
        ``config.shutdown_drain_ms``; ``end_drain()`` cuts it short), then stop
        accepting, let in-flight requests finish (up to ``grace_s``), close everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if drain_s is None:
            drain_s = self.config.shutdown_drain_ms / 1000
        if drain_s > 0 and self._http_thread.is_alive():
            self._drain(drain_s)
        grpc_done = self.grpc_server.stop(grace_s) if self.grpc_server is not None else None
        listeners, sockets = self._listeners, self._sockets
        trigger = listeners[0].trigger  # any server's trigger wakes the one loop of the map

        def stop_listening() -> None:
            # Runs in the loop thread: asyncore maps are not safe to touch from others.
            for listener in listeners:
                listener.accepting = False
                dispatcher.close(listener)

        if self._http_thread.is_alive():
            trigger.pull_trigger(stop_listening)
            deadline_s = time.monotonic() + grace_s
            while self._busy_channels() and time.monotonic() < deadline_s:
                time.sleep(_DRAIN_POLL_S)
            if busy := self._busy_channels():
                log.warning("shutdown: %d connections still busy after %.0fs", busy, grace_s)
            # Closing every channel (and the trigger) empties the map, which ends the loop.
            trigger.pull_trigger(lambda: close_all(sockets))
            self._http_thread.join(timeout=grace_s)
        else:  # never started (start() failed): no loop thread to hand the work to
            close_all(sockets)
            grace_s = max(grace_s, _IDLE_WORKERS_EXIT_S)  # nothing in flight: just join them
        self._workers.shutdown(cancel_pending=True, timeout=grace_s)
        if grpc_done is not None:
            grpc_done.wait(grace_s)
        self._close_services()

    def end_drain(self) -> None:
        """End a drain in progress (a second signal): the ports close now."""
        self._drain_over.set()

    def _drain(self, drain_s: float) -> None:
        # Health first: /healthz answers 503 and gRPC health NOT_SERVING (open Watch
        # streams are told at once), while every port still takes calls, so that load
        # balancers probing either stop sending new calls before the ports close.
        shutting_down = getattr(self.services, "shutting_down", None)
        if shutting_down is not None:
            shutting_down()
        if self.grpc_server is not None:
            self.grpc_server.health.enter_graceful_shutdown()
        log.info(
            "shutdown: reporting unhealthy, still serving for %.1fs before closing the ports",
            drain_s,
        )
        deadline_s = time.monotonic() + drain_s
        # In slices, so that a signal handler on this thread (end_drain) is acted on.
        while (remaining_s := deadline_s - time.monotonic()) > 0:
            if self._drain_over.wait(min(remaining_s, _DRAIN_POLL_S)):
                log.info("shutdown: drain ended early by a second signal")
                break

    def _close_services(self) -> None:
        close = getattr(self.services, "close", None)
        if close is not None:
            close()
            return
        self.services.store.close()
        self.services.auth.close()

    def banner(self) -> str:
        config = self.config
        data_dir = config.data_dir.resolve()
        default = Config(data_dir=config.data_dir)
        create_user = f"micforge user create --email you@example.com --data-dir {data_dir}"
        endpoint = ""
        if config.store_url.startswith("s3://") and config.s3_endpoint_url:
            endpoint = f" at {redact_url(config.s3_endpoint_url)}"
        auth_note = []
        if config.auth_db_url != default.auth_db_url:
            if not has_secret(config.auth_db_url):
                create_user += f" --auth-db '{config.auth_db_url}'"
            else:
                # The password is never printed, so a masked URL could not be pasted: name
                # the variable the command reads instead.
                auth_note = ["  (with MICFORGE_AUTH_DB_URL set to this server's auth DB URL)"]
        grpc = (
            _host_port(config.host, self.grpc_port) if self.grpc_port is not None else "not running"
        )
        return "\n".join(
            [
                f"micforge REST listening on {self.rest_url}",
                f"micforge gRPC listening on {grpc}",
                f"data dir: {data_dir}",
                f"store:    {redact_url(config.store_url)}{endpoint}",
                f"auth db:  {redact_url(config.auth_db_url)}",
                "Create the first user (prints its API token on the last line):",
                f"  {create_user}",
                *auth_note,
            ]
        )


def serve(config: Config, *, services: Any | None = None) -> int:
    """Run until SIGTERM or SIGINT; returns the process exit status."""
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    log.info(tune_allocator())  # process-wide, so here and not in the app factories
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"micforge: cannot create the data dir {config.data_dir}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    try:
        server = Server(config, services=services)
    except RestBindError as error:  # other errors (a bad store URL...) are main()'s to report
        print(f"micforge: {error}", file=sys.stderr)
        return 1
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop_requested.is_set():  # a second signal: no more waiting for balancers
            log.info("received %s again: ending the drain", signal.Signals(signum).name)
            server.end_drain()
            return
        log.info("received %s: shutting down gracefully", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server.start()  # on failure it has closed what it opened (REST socket, services)
        except OSError as error:  # typically the gRPC port is taken or not ours to bind
            print(f"micforge: cannot start: {error}", file=sys.stderr)
            return 1
        print(server.banner(), flush=True)
        # wait() with a timeout so the signal handler gets to run promptly.
        while not stop_requested.wait(0.5):
            pass
        try:
            server.stop()
        except OSError:
            # main() prints only the message; the log keeps where it came from. (Seen
            # once in CI under load, as "Bad file descriptor", not reproduced since.)
            log.exception("shutdown failed")
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0
