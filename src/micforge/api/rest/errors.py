"""The one mapping from errors to the JSON error shape of API.md.

Every error response of the REST app is built by :func:`error_response`, and
the handlers registered here are the only place a ``MicError`` or a Werkzeug
``HTTPException`` becomes a status code. The gRPC server has its own mapping in
``api/grpc/interceptors.py``.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from micforge.api.rest.auth import challenge
from micforge.errors import MicError, RateLimited, Unauthorized
from micforge.storage import StoreError, store_unusable

log = logging.getLogger("micforge.api.rest")

# Werkzeug's own HTTP errors (routing, method, malformed requests) mapped to
# API.md codes. 405 has no row in API.md, so it gets its own code (docs/api.md).
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "invalid_request",
    413: "too_large",
    415: "invalid_request",
    429: "rate_limited",
    431: "too_large",
    503: "unavailable",
}


def code_for_status(status: int) -> str:
    return _HTTP_CODES.get(status, "internal" if status >= 500 else "invalid_request")


def error_body(code: str, message: str, **details: object) -> dict:
    return {"error": {"code": code, "message": message, **details}}


def error_response(status: int, code: str, message: str, **details: object) -> Response:
    response = jsonify(error_body(code, message, **details))
    response.status_code = status
    return response


def _mic_error(error: MicError) -> Response:
    # Details (e.g. Conflict's "paths") are part of the body; API.md documents them.
    details = {k: v for k, v in error.details.items() if k not in ("code", "message")}
    response = error_response(error.http_status, error.code, error.client_message, **details)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(max(1, int(error.retry_after_s)))
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = challenge()
    if error.http_status >= 500:
        log.warning("request failed: %s: %s", error.code, error.message)
    return response


def _store_error(error: StoreError) -> Response:
    """A storage error the service layer let through: a 500 like any bug, unless it
    means the store cannot be used (``store_unusable``), which API.md answers with
    503 ``unavailable``. The detail (file paths, bucket names) goes to the log only.
    """
    if not store_unusable(error):
        return _unexpected(error)
    log.warning("store unusable: %s: %s", type(error).__name__, error)
    return error_response(503, "unavailable", "storage is unavailable")


def _http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    response = error_response(status, code_for_status(status), error.description or error.name)
    # Keep headers Werkzeug adds for a reason (405's Allow), not its HTML content type.
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _unexpected(error: Exception) -> Response:
    # Never leak internals to the client; the traceback goes to the log.
    log.exception("unhandled error")
    return error_response(500, "internal", "internal server error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(MicError, _mic_error)
    # Also catches StorageUnavailable, which is a MicError too: Flask picks the
    # handler of the first class in the MRO, and StoreError comes before MicError.
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)
