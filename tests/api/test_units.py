"""In-process tests of the REST layer's own pieces (no server process needed)."""

from __future__ import annotations

import pytest

from micforge.api.rest.auth import RateLimiter
from micforge.api.serve import redact_url
from micforge.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_token_bucket_allows_a_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(per_minute=6, clock=clock)  # one request per 10 s after the burst
    for _ in range(6):
        limiter.take("t1")
    with pytest.raises(RateLimited) as refused:
        limiter.take("t1")
    assert refused.value.retry_after_s == 10
    limiter.take("t2")  # buckets are per token
    clock.now_s += 9.0
    with pytest.raises(RateLimited) as again:
        limiter.take("t1")
    assert again.value.retry_after_s == 1
    clock.now_s += 1.0
    limiter.take("t1")
    clock.now_s += 3600.0  # idle for long: back to a full burst, never more
    for _ in range(6):
        limiter.take("t1")
    with pytest.raises(RateLimited):
        limiter.take("t1")


def test_rate_limit_zero_is_off():
    limiter = RateLimiter(per_minute=0, clock=Clock())
    for _ in range(10_000):
        limiter.take("t")


def test_printed_urls_never_show_a_password():
    assert redact_url("postgresql://mic:s3cret@db:5432/mic") == "postgresql://mic:***@db:5432/mic"
    assert redact_url("sqlite:////srv/auth.db") == "sqlite:////srv/auth.db"
    assert redact_url("s3://bucket/prefix") == "s3://bucket/prefix"
