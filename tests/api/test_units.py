"""In-process tests of the REST layer's own pieces (no server process needed)."""

from __future__ import annotations

import io

import pytest

from micforge.api.rest.auth import RateLimiter
from micforge.errors import RateLimited
from micforge.redact import has_secret, redact_url


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


def test_limiter_memory_stays_bounded_and_drops_idle_buckets_first():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock, max_buckets=4)
    for token in ("a", "b", "c"):
        limiter.take(token)
    clock.now_s += 120.0  # a, b, c are full again: nothing to remember about them
    for _ in range(5):
        limiter.take("busy")
    limiter.take("new")
    assert len(limiter) == 2  # idle a, b, c dropped; the busy bucket kept its debt
    for _ in range(55):
        limiter.take("busy")
    with pytest.raises(RateLimited):
        limiter.take("busy")
    for token in ("x", "y", "z", "w"):  # all busy now: the oldest half goes
        limiter.take(token)
    assert len(limiter) <= 4


def test_rate_limit_zero_is_off():
    limiter = RateLimiter(per_minute=0, clock=Clock())
    for _ in range(10_000):
        limiter.take("t")


def test_printed_urls_never_show_a_password():
    assert redact_url("postgresql://mic:s3cret@db:5432/mic") == "postgresql://mic:***@db:5432/mic"
    assert redact_url("sqlite:////srv/auth.db") == "sqlite:////srv/auth.db"
    assert redact_url("s3://bucket/prefix") == "s3://bucket/prefix"
    # libpq also takes the password as a query parameter.
    assert (
        redact_url("postgresql://mic@db/mic?sslmode=require&password=s3cret")
        == "postgresql://mic@db/mic?sslmode=require&password=***"
    )
    assert redact_url("postgresql://mic:a%40b@db/mic?password=x") == (
        "postgresql://mic:***@db/mic?password=***"
    )
    assert has_secret("postgresql://mic@db/mic?password=") and not has_secret("postgresql://db/x")


@pytest.fixture
def app_and_token(tmp_path):
    from micforge.api.rest import create_app
    from micforge.config import Config, Limits

    config = Config(data_dir=tmp_path, limits=Limits(blob_max_bytes=1000, json_body_max_bytes=100))
    app = create_app(config)
    services = app.extensions["micforge"].services
    user = services.auth.create_user("unit@example.com")
    _, token = services.auth.create_token(user.id, "unit")
    services.projects.create(user, "unit")
    yield app, token
    services.close()


@pytest.mark.parametrize(("size_bytes", "status"), [(1000, 201), (1001, 413), (50_000, 413)])
def test_a_body_without_content_length_is_cut_off_while_streaming(
    app_and_token, size_bytes, status
):
    # A server that streams a chunked body through (input terminated, no length known
    # up front): the app must count the bytes itself and stop at the limit.
    app, token = app_and_token
    chunked = {"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"}
    terminated = {"wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
    response = app.test_client().post(
        "/api/mic/projects/unit/blobs",
        input_stream=io.BytesIO(b"q" * size_bytes),
        headers=chunked,
        environ_overrides=terminated,
    )
    assert response.status_code == status, response.get_data()
    if status == 201:
        assert response.get_json()["size"] == size_bytes
    else:
        assert response.get_json()["error"]["code"] == "too_large"
    json_response = app.test_client().post(
        "/api/mic/projects",
        input_stream=io.BytesIO(b'{"id": "' + b"a" * size_bytes + b'"}'),
        headers={**chunked, "Content-Type": "application/json"},
        environ_overrides=terminated,
    )
    assert json_response.status_code == 413


def test_a_chunked_body_the_server_did_not_terminate_is_refused_not_read_as_empty(app_and_token):
    app, token = app_and_token
    response = app.test_client().post(
        "/api/mic/projects/unit/blobs",
        input_stream=io.BytesIO(b"data"),
        headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
