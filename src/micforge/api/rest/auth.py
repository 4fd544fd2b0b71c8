"""Bearer-token authentication and per-token rate limiting, in one place.

One ``before_request`` hook covers every route except the public service
endpoints; views read the caller with :func:`current_user`. Tokens are checked
against the auth DB (``services.auth.authenticate``, i.e. ``verify_token`` plus
the token's id for the rate limiter) on every request, so a revoked token stops
working at once (no cache to go stale).
"""

from __future__ import annotations

from flask import Flask, g, request

from micforge.errors import Unauthorized

# The limiter lives with the services, shared by REST and gRPC; re-exported here
# for the callers that know it by its old home.
from micforge.service.ratelimit import RateLimiter

__all__ = [
    "PUBLIC_ENDPOINTS",
    "RateLimiter",
    "bearer_token",
    "challenge",
    "current_user",
    "install",
]

# Endpoints that need no token (API.md "Service").
PUBLIC_ENDPOINTS = frozenset({"service.healthz", "service.metrics", "service.openapi"})
REALM = "micforge"


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_token() -> str:
    token = _presented_token()
    if token is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return token


def challenge() -> str:
    """The ``WWW-Authenticate`` value every 401 carries (RFC 7235 §4.1, RFC 6750 §3).

    ``error="invalid_token"`` when a bearer token was presented (unknown,
    malformed, expired or revoked); none when there was none, as RFC 6750
    asks for a request without credentials.
    """
    if _presented_token() is None:
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token"'


def current_user():
    """The authenticated caller (``micforge.auth.User``) of this request."""
    return g.micforge_user


def install(app: Flask) -> None:
    state = app.extensions["micforge"]

    @app.before_request
    def authenticate() -> None:
        if request.routing_exception is not None or request.endpoint in PUBLIC_ENDPOINTS:
            return  # unknown routes answer 404/405 without asking for a token
        user, token_info = state.services.auth.authenticate(bearer_token())
        g.micforge_user = user
        request.environ["micforge.user_id"] = user.id  # for the request log
        state.limiter.take(token_info.id)
