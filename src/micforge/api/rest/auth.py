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

__all__ = ["PUBLIC_ENDPOINTS", "RateLimiter", "bearer_token", "current_user", "install"]

# Endpoints that need no token (API.md "Service").
PUBLIC_ENDPOINTS = frozenset({"service.healthz", "service.metrics", "service.openapi"})


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return token


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
