"""Request logs, request ids and HTTP metrics, measured around the whole WSGI call.

A WSGI middleware rather than Flask hooks, so the duration includes streaming
the body of a blob download and every request is counted exactly once, even
one that ends in an unhandled error. The route (the URL rule, not the raw
path) and the user id are left in the WSGI environ by the app for this layer.
Tokens, passwords and bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from werkzeug.wsgi import ClosingIterator

access_log = logging.getLogger("micforge.access")

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED_ROUTE = "<unmatched>"  # keeps metric label cardinality bounded
_LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class HttpMetrics:
    """The REST app's collectors, registered on the services' own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "micforge_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "micforge_http_request_duration_seconds",
            "Time from receiving a request to the end of its response body.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.in_flight = Gauge(
            "micforge_http_requests_in_flight",
            "HTTP requests being served.",
            registry=registry,
        )


def request_id_for(offered: str) -> str:
    """The id of a request whose client offered ``offered`` as X-Request-Id: kept if
    it is tame, so a request can be followed across proxies, else a fresh one. Also
    used for waitress's own answers, which never reach the app (api/serve.py)."""
    return offered if _CLIENT_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


class RequestObserver:
    """WSGI middleware: request id header, one access-log line and metrics per request."""

    def __init__(self, wsgi_app: Callable, metrics: HttpMetrics) -> None:
        self.wsgi_app = wsgi_app
        self.metrics = metrics

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started_s = time.perf_counter()
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        environ["micforge.request_id"] = request_id
        status_box: list[int] = []
        self.metrics.in_flight.inc()

        def observed_start_response(status: str, headers: list, exc_info=None):
            status_box[:] = [int(status.split(" ", 1)[0])]
            return start_response(status, [*headers, ("X-Request-Id", request_id)], exc_info)

        def finish() -> None:
            self._record(environ, status_box[0] if status_box else 500, started_s)

        try:
            body = self.wsgi_app(environ, observed_start_response)
        except BaseException:
            finish()
            raise
        return ClosingIterator(body, [finish])

    def _record(self, environ: dict, status: int, started_s: float) -> None:
        duration_s = time.perf_counter() - started_s
        self.metrics.in_flight.dec()
        method = environ.get("REQUEST_METHOD", "")
        method_label = method if method in _KNOWN_METHODS else "OTHER"
        route = environ.get("micforge.route", UNMATCHED_ROUTE)
        self.metrics.requests.labels(method_label, route, str(status)).inc()
        self.metrics.latency.labels(method_label, route).observe(duration_s)
        access_log.info(
            json.dumps(
                {
                    "request_id": environ["micforge.request_id"],
                    "method": method_label,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_s * 1000.0, 3),
                    "user_id": environ.get("micforge.user_id"),
                },
                separators=(",", ":"),
            )
        )
