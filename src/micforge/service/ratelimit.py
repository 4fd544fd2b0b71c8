"""Per-token rate limiting: one token bucket per API token, shared by every front end.

``build_services`` makes one ``RateLimiter`` and both REST and gRPC spend from
it, so a token's budget is the same whichever protocol it calls (docs/api.md,
"Authentication and rate limiting").
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from micforge.errors import RateLimited

_BUCKETS_MAX = 100_000  # bound on the limiter's memory; idle full buckets are dropped first


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """Token bucket per API token: ``per_minute`` burst, refilled at ``per_minute``/60 per second.

    In-process, so the limit holds per agent process (docs/api.md), across REST
    and gRPC. ``per_minute == 0`` turns it off.
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
