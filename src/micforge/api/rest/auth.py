"""Bearer-token authentication and per-token rate limiting, in one place.

One ``before_request`` hook covers every route except the public service
endpoints; views read the caller with :func:`current_user`. Tokens are checked
against the auth DB (``services.auth.authenticate``, i.e. ``verify_token`` plus
the token's id for the rate limiter) on every request, so a revoked token stops
working at once (no cache to go stale).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from flask import Flask, g, request

from micforge.errors import RateLimited, Unauthorized

# Endpoints that need no token (API.md "Service").
PUBLIC_ENDPOINTS = frozenset({"service.healthz", "service.metrics", "service.openapi"})

_BUCKETS_MAX = 100_000  # bound on the limiter's memory; idle full buckets are dropped first


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """Token bucket per API token: ``per_minute`` burst, refilled at ``per_minute``/60 per second.

    In-process, so the limit holds per agent process (docs/api.md). ``per_minute
    == 0`` turns it off.
    """

    def __init__(
        self, per_minute: int, clock=time.monotonic, max_buckets: int = _BUCKETS_MAX
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, key: str) -> None:
        """Spend one request for ``key`` or raise ``RateLimited`` with the wait in seconds."""
        if not self.enabled:
            return
        rate_per_s = self.per_minute / 60.0
        now_s = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    self._prune(now_s, rate_per_s)
                bucket = self._buckets[key] = _Bucket(float(self.per_minute), now_s)
            bucket.tokens = min(
                float(self.per_minute), bucket.tokens + (now_s - bucket.updated_s) * rate_per_s
            )
            bucket.updated_s = now_s
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait_s = (1.0 - bucket.tokens) / rate_per_s
        raise RateLimited(
            f"more than {self.per_minute} requests per minute with this token",
            retry_after_s=max(1, math.ceil(wait_s)),
        )

    def _prune(self, now_s: float, rate_per_s: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now_s - b.updated_s) * rate_per_s >= self.per_minute
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_buckets:  # all busy: forget the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated_s)
            for key in oldest[: self._max_buckets // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


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
