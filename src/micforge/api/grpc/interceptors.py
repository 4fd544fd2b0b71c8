"""Server interceptors: request logging and metrics, error mapping, authentication.

This module is the one place where domain errors (``micforge.errors``) become
gRPC status codes (REST's twin is ``api/rest/errors.py``); both key on the
error's API.md ``code``, so the two transports cannot drift apart silently.
Servicers stay thin: they never see a token and never build a status.

Interceptors run outermost first, as listed by :func:`default_interceptors`:
logging/metrics sees the final status of every call, the error interceptor
sees every exception (authentication failures included), and authentication
hands the caller to the servicer through a per-call :class:`CallContext`
(never a global or a thread-local, so concurrent calls cannot mix up users).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from micforge.errors import Conflict, MicError, RateLimited, Unauthorized, Unavailable
from micforge.storage import StoreError, store_unusable

if TYPE_CHECKING:
    from micforge.api.grpc.lifecycle import StallGuard, Watched
    from micforge.auth import TokenInfo, User
    from micforge.service.ratelimit import RateLimiter

log = logging.getLogger("micforge.grpc")

# API.md error code -> gRPC status. Keyed by code (not class) so that a new
# subclass reusing a code maps the same way as it does in REST.
STATUS_BY_CODE: dict[str, grpc.StatusCode] = {
    "invalid_request": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.ABORTED,
    "invalid_state": grpc.StatusCode.FAILED_PRECONDITION,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "rate_limited": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
}

# Trailing metadata keys a client may rely on (documented in docs/grpc.md).
ERROR_CODE_KEY = "mic-error-code"  # the API.md code, e.g. "too_large" vs "rate_limited"
CONFLICT_PATHS_KEY = "mic-conflict-paths"  # JSON list of the real conflicting paths
CONFLICT_COUNT_KEY = "mic-conflict-count"  # how many there are (the list may be cut short)
# gRPC clients refuse metadata past a limit (grpcio: 8 KiB soft, 16 KiB hard; others
# drop the call): the trailer lists as many paths as fit in this many bytes, and the
# status message as many as fit in CONFLICT_DETAILS_MAX_CHARS. The session's
# conflict_paths (GetSession) always holds them all.
CONFLICT_PATHS_MAX_BYTES = 4096
CONFLICT_DETAILS_MAX_CHARS = 1024
# The status message travels as metadata too (grpc-message, percent-encoded: a
# non-ASCII byte, a control byte or "%" takes 3): any message is cut to this many
# bytes once encoded. With the conflict trailer, a status stays under ~6.2 KiB.
DETAILS_MAX_BYTES = 2048
# Bytes grpc-message carries as they are (gRPC's PROTOCOL-HTTP2: %x20-%x7E but "%").
_UNESCAPED = bytes(b for b in range(0x20, 0x7F) if b != 0x25)
RETRY_AFTER_KEY = "retry-after"  # seconds, as HTTP's Retry-After

# grpc's own health and reflection services: no token (like /healthz), and no
# wrapping but the stall guard's around reflection. Health's Watch is
# "non-blocking" (it parks a callback instead of a worker thread) only while its
# handler is grpc's original function; a wrapped Watch would hold one of
# config.threads workers per watcher for as long as the watcher stays connected.
_HEALTH_PREFIX = "/grpc.health.v1."
_INFRASTRUCTURE_PREFIXES = (_HEALTH_PREFIX, "/grpc.reflection.")


def _ours(handler: grpc.RpcMethodHandler | None, handler_call_details: Any) -> bool:
    """True for a known method of our own services (the ones to intercept)."""
    return handler is not None and not handler_call_details.method.startswith(
        _INFRASTRUCTURE_PREFIXES
    )


def _watched_for_stalls(handler: grpc.RpcMethodHandler | None, handler_call_details: Any) -> bool:
    """True for the streams the stall guard watches: ours, and reflection's. Reflection
    needs no token, so idle reflection streams, opened by anyone, would otherwise hold
    every worker. Not health's: its Watch parks a callback and holds no worker."""
    return handler is not None and not handler_call_details.method.startswith(_HEALTH_PREFIX)


_BEARER = "bearer "


def status_for(error: MicError) -> grpc.StatusCode:
    """The gRPC status of a domain error; unknown codes fall back on the HTTP class."""
    status = STATUS_BY_CODE.get(error.code)
    if status is not None:
        return status
    return (
        grpc.StatusCode.INVALID_ARGUMENT
        if 400 <= error.http_status < 500
        else grpc.StatusCode.INTERNAL
    )


def trailing_metadata_for(error: MicError) -> list[tuple[str, str]]:
    metadata = [(ERROR_CODE_KEY, error.code)]
    if isinstance(error, Conflict):
        listed = _fitting(error.paths, CONFLICT_PATHS_MAX_BYTES, lambda p: len(_json(p)) + 1)
        metadata.append((CONFLICT_PATHS_KEY, _json(listed)))  # ASCII: non-ASCII is escaped
        metadata.append((CONFLICT_COUNT_KEY, str(len(error.paths))))
    if isinstance(error, RateLimited):
        metadata.append((RETRY_AFTER_KEY, str(error.retry_after_s)))
    return metadata


def details_for(error: MicError) -> str:
    if isinstance(error, Conflict) and error.paths:
        # The paths also go in the message so that a plain client sees them. They are
        # counted as sent (percent-encoded), with room kept for the "and N more" tail,
        # so that _capped never has to cut the count off (non-ASCII paths take 3-9
        # bytes a character).
        head = f"{error.message}: "
        tail = " and {} more (the session's conflict_paths has them all)"
        budget = min(
            CONFLICT_DETAILS_MAX_CHARS,
            DETAILS_MAX_BYTES
            - grpc_message_size(head)
            - grpc_message_size(tail.format(len(error.paths))),
        )
        shown = _fitting(error.paths, budget, lambda p: grpc_message_size(p) + 2)
        more = len(error.paths) - len(shown)
        return head + ", ".join(shown) + (tail.format(more) if more else "")
    return error.client_message


def grpc_message_size(details: str) -> int:
    """How many bytes ``details`` takes as ``grpc-message`` (UTF-8, percent-encoded)."""
    encoded = details.encode("utf-8", "surrogatepass")
    return len(encoded) + 2 * len(encoded.translate(None, _UNESCAPED))


def _capped(details: str) -> str:
    """``details`` cut to ``DETAILS_MAX_BYTES`` as sent in ``grpc-message`` (a
    4,096-byte non-ASCII path echoed in an error would take 12 KiB), so that
    clients' metadata limits let the status through."""
    if grpc_message_size(details) <= DETAILS_MAX_BYTES:
        return details
    encoded = details.encode("utf-8", "surrogatepass")
    budget = DETAILS_MAX_BYTES - len(" ...")
    size = cut = 0
    for index, byte in enumerate(encoded):
        size += 1 if byte in _UNESCAPED else 3
        if size > budget:
            break
        cut = index + 1
    return encoded[:cut].decode("utf-8", "ignore") + " ..."


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _fitting(paths: list[str], budget: int, cost: Callable[[str], int]) -> list[str]:
    """The first of ``paths`` whose costs add up to at most ``budget`` (at least none)."""
    shown: list[str] = []
    for path in paths:
        budget -= cost(path)
        if budget < 0:
            break
        shown.append(path)
    return shown


class CallContext:
    """The servicer's view of one call: grpc's context plus the authenticated caller.

    Delegates everything else to the wrapped ``grpc.ServicerContext``.
    """

    def __init__(self, context: grpc.ServicerContext, user: User) -> None:
        self._context = context
        self.user = user

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


Behavior = Callable[[Any, Any], Any]


def _rewrap(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior]
) -> grpc.RpcMethodHandler:
    """A copy of ``handler`` whose behaviour is ``wrap(behaviour, response_streaming)``.

    Response-streaming behaviours return a generator that grpc iterates after
    the behaviour itself has returned, so a wrapper that must see errors or
    the end of the call has to wrap the iteration too (hence the flag).
    """
    serializers = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), *serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), *serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), *serializers)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), *serializers)


class LoggingInterceptor(grpc.ServerInterceptor):
    """One log line and one metrics sample per call, with its final status."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if not _ours(handler, handler_call_details):
            return handler  # None for an unknown method: grpc answers UNIMPLEMENTED
        method = handler_call_details.method

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    call = LoggedCall(context)
                    started = time.perf_counter()
                    try:
                        yield from behavior(request, call)
                    finally:
                        self._finish(method, call, started)

                return streaming

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                call = LoggedCall(context)
                started = time.perf_counter()
                try:
                    return behavior(request, call)
                finally:
                    self._finish(method, call, started)

            return unary

        return _rewrap(handler, wrap)

    def _finish(self, method: str, call: LoggedCall, started: float) -> None:
        elapsed_s = time.perf_counter() - started
        code = final_status(call)
        self._metrics.requests.labels(method=method, code=code.name).inc()
        self._metrics.latency.labels(method=method).observe(elapsed_s)
        log.info(
            "grpc %s %s %.1fms user=%s peer=%s",
            method,
            code.name,
            elapsed_s * 1000,
            call.user_id or "-",
            call.peer_address,
        )


class LoggedCall:
    """grpc's context plus what the log line wants to know from inner layers.

    The auth interceptor, further in, fills ``user_id``; the logging
    interceptor, outermost, reads it once the call ends.
    """

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context
        self.user_id: str | None = None
        # Read now: once a call is cancelled or past its deadline, grpc's peer() is "".
        self.peer_address: str = context.peer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def final_status(context: grpc.ServicerContext) -> grpc.StatusCode:
    """The status a call ended with, as far as the server can tell."""
    code = context.code()
    if code is not None:
        return code
    return _client_gone(context) or grpc.StatusCode.OK


def _client_gone(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    """DEADLINE_EXCEEDED or CANCELLED if the client is no longer waiting for this call."""
    remaining_s = context.time_remaining()
    if remaining_s is not None and remaining_s <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if not context.is_active():
        return grpc.StatusCode.CANCELLED
    return None


class ErrorInterceptor(grpc.ServerInterceptor):
    """Turns every exception into a status: domain errors by STATUS_BY_CODE, the rest INTERNAL."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if not _ours(handler, handler_call_details):
            return handler
        method = handler_call_details.method

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    try:
                        yield from behavior(request, context)
                    except Exception as exc:  # noqa: BLE001 - every error becomes a status here
                        _abort_for(exc, method, context)

                return streaming

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return behavior(request, context)
                except Exception as exc:  # noqa: BLE001 - every error becomes a status here
                    _abort_for(exc, method, context)

            return unary

        return _rewrap(handler, wrap)


def _abort_for(exc: Exception, method: str, context: grpc.ServicerContext) -> None:
    """Abort the call with the status of ``exc`` (always raises)."""
    if isinstance(exc, StoreError) and store_unusable(exc):
        # As REST (api/rest/errors.py): UNAVAILABLE; the detail (file paths, bucket,
        # endpoint) goes to the log only.
        log.warning("store unusable: %s: %s", type(exc).__name__, exc)
        exc = Unavailable("storage is unavailable")
    if isinstance(exc, MicError):
        if exc.http_status >= 500 and exc.message != exc.client_message:
            log.warning("grpc %s failed: %s: %s", method, exc.code, exc.message)  # the detail
        status, details = status_for(exc), details_for(exc)
        gone = _client_gone(context)
        if gone is not None:
            # The call ended on the client's side (its deadline passed, or it cancelled)
            # before this error: that is the call's status, and the error's own code
            # (mic-error-code) would contradict it, so it is not sent.
            why = "deadline exceeded" if gone == grpc.StatusCode.DEADLINE_EXCEEDED else "cancelled"
            context.abort(gone, _capped(f"{why} (the call was ending with: {details})"))
        context.set_trailing_metadata(trailing_metadata_for(exc))
        context.abort(status, _capped(details))
    if isinstance(exc, grpc.RpcError) or context.code() is not None:
        # grpc's own signals: the client cancelled (raised by the request
        # iterator) or the call was already aborted. grpc knows these and
        # finishes the call quietly if it gets them back unchanged.
        raise exc
    # A bug or an unexpected library error: log it with its traceback, tell the
    # client only that it happened (internals are not part of the contract).
    log.exception("grpc %s failed", method)
    context.set_trailing_metadata([(ERROR_CODE_KEY, "internal")])
    context.abort(grpc.StatusCode.INTERNAL, "internal error")


class StallInterceptor(grpc.ServerInterceptor):
    """Streaming calls (ours and reflection's) are watched by ``guard``, which cancels
    one once its client stops moving (api/grpc/lifecycle.py): the call ends CANCELLED
    and the reason goes to the log. ``guard=None``: nothing is watched."""

    def __init__(self, guard: StallGuard | None) -> None:
        self._guard = guard

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        guard = self._guard
        if guard is None or not _watched_for_stalls(handler, handler_call_details):
            return handler
        if not (handler.request_streaming or handler.response_streaming):
            return handler
        method = handler_call_details.method
        request_streaming = handler.request_streaming

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:

                def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    with guard.watch(context, method) as watched:
                        if request_streaming:
                            request = _progressing(request, watched)
                        for response in behavior(request, context):
                            yield response
                            watched.progress()  # asked for the next: this one was sent

                return streaming

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                with guard.watch(context, method) as watched:
                    return behavior(_progressing(request, watched), context)

            return unary

        return _rewrap(handler, wrap)


def _progressing(requests: Iterator[Any], watched: Watched) -> Iterator[Any]:
    for request in requests:
        watched.progress()
        yield request
    watched.client_done()


class AuthInterceptor(grpc.ServerInterceptor):
    """Verifies `authorization: Bearer <token>`, rate-limits per token, hands the user on.

    Raises ``Unauthorized`` (mapped by ErrorInterceptor, which runs outside
    this one) for a missing, malformed, unknown, expired or revoked token, and
    ``RateLimited`` past ``config.rate_limit_per_minute`` for the token.
    """

    def __init__(
        self,
        authenticate: Callable[[str], tuple[User, TokenInfo]],
        limiter: RateLimiter,
    ) -> None:
        self._authenticate_secret = authenticate
        self._limiter = limiter

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if not _ours(handler, handler_call_details):
            return handler

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            # Authenticating eagerly is right for both kinds: for streaming
            # responses the wrapper above iterates inside its own try block,
            # and it calls this function there too.
            def authenticated(request: Any, context: grpc.ServicerContext) -> Any:
                user = self._authenticate(context)
                if isinstance(context, LoggedCall):
                    context.user_id = user.id
                return behavior(request, CallContext(context, user))

            return authenticated

        return _rewrap(handler, wrap)

    def _authenticate(self, context: grpc.ServicerContext) -> User:
        values = [v for k, v in context.invocation_metadata() if k == "authorization"]
        if not values:
            raise Unauthorized("missing authorization metadata (expected 'Bearer <token>')")
        if len(values) > 1:
            raise Unauthorized("more than one authorization metadata entry")
        value = values[0]
        if not isinstance(value, str) or not value[: len(_BEARER)].lower() == _BEARER:
            raise Unauthorized("authorization metadata must be 'Bearer <token>'")
        secret = value[len(_BEARER) :].strip()
        if not secret:
            raise Unauthorized("empty bearer token")
        # Every call asks the auth DB (no cache), so a revoked token stops at once.
        user, token_info = self._authenticate_secret(secret)
        self._limiter.take(token_info.id)
        return user


class RpcMetrics:
    """RPC counters and latencies on the services' own registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = _registered(
            registry,
            "micforge_grpc_requests_total",
            lambda: Counter(
                "micforge_grpc_requests",
                "gRPC calls by method and final status",
                ["method", "code"],
                registry=registry,
            ),
        )
        self.latency = _registered(
            registry,
            "micforge_grpc_request_duration_seconds",
            lambda: Histogram(
                "micforge_grpc_request_duration_seconds",
                "gRPC call duration by method (streams: until the last message)",
                ["method"],
                registry=registry,
            ),
        )
        self.blob_bytes = _registered(
            registry,
            "micforge_grpc_blob_bytes_total",
            lambda: Counter(
                "micforge_grpc_blob_bytes",
                "Blob bytes moved over gRPC",
                ["direction"],
                registry=registry,
            ),
        )
        self.stalled = _registered(
            registry,
            "micforge_grpc_stalled_calls_total",
            lambda: Counter(
                "micforge_grpc_stalled_calls",
                "gRPC streams cancelled after making no progress for grpc_stall_timeout_ms",
                ["method"],
                registry=registry,
            ),
        )


def _registered(registry: CollectorRegistry, name: str, make: Callable[[], Any]) -> Any:
    # A second gRPC server on the same Services (a test restarting one, say)
    # must reuse the collectors: registering a name twice raises. There is no
    # public lookup, so read the registry's name map.
    existing = getattr(registry, "_names_to_collectors", {}).get(name)
    return existing if existing is not None else make()


def default_interceptors(
    metrics: RpcMetrics,
    authenticate: Callable[[str], tuple[User, TokenInfo]],
    limiter: RateLimiter,
    guard: StallGuard | None = None,
) -> list[grpc.ServerInterceptor]:
    """Outermost first: logging/metrics, error mapping, stalled streams, authentication."""
    return [
        LoggingInterceptor(metrics),
        ErrorInterceptor(),
        StallInterceptor(guard),
        AuthInterceptor(authenticate, limiter),
    ]
