"""The S3 circuit breaker: fail fast while the endpoint gives no answer at all, probe
one call at a time after the cooldown, close on any answer (storage/breaker.py)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from micforge.storage import RetryPolicy, S3Store, StorageUnavailable
from micforge.storage.breaker import BreakerOpen, CircuitBreaker
from tests.fixtures.moto_server import create_bucket
from tests.fixtures.tcp_proxy import TcpProxy
from tests.storage.fault_proxy import FaultProxy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _in_thread(call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` on another thread (another caller); return what it raised."""
    raised: list[BaseException | None] = [None]

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001
            raised[0] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0]


def test_it_opens_after_failures_in_a_row_and_any_answer_resets_the_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, cooldown_s=5, probe_lease_s=20, clock=clock)
    breaker.no_answer()
    breaker.no_answer()
    breaker.answered()  # an answer in between: the count starts again
    breaker.no_answer()
    breaker.no_answer()
    breaker.before_call("s3://b")  # two in a row: still closed
    breaker.no_answer()
    assert breaker.is_open
    with pytest.raises(StorageUnavailable, match="failing fast"):
        breaker.before_call("s3://b")


def test_after_the_cooldown_one_probe_goes_and_its_answer_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown_s=5, probe_lease_s=20, clock=clock)
    breaker.no_answer()
    clock.now += 5
    breaker.before_call("s3://b")  # this thread probes
    assert isinstance(_in_thread(lambda: breaker.before_call("s3://b")), StorageUnavailable)
    breaker.no_answer()  # the probe got no answer: open for another cooldown
    with pytest.raises(StorageUnavailable):
        breaker.before_call("s3://b")
    clock.now += 5
    breaker.before_call("s3://b")  # the next probe
    breaker.answered()
    assert not breaker.is_open
    assert _in_thread(lambda: breaker.before_call("s3://b")) is None


def test_a_probe_that_never_reports_frees_its_place_after_its_lease() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown_s=5, probe_lease_s=20, clock=clock)
    breaker.no_answer()
    clock.now += 5
    assert _in_thread(lambda: breaker.before_call("s3://b")) is None  # a probe that vanishes
    with pytest.raises(StorageUnavailable):
        breaker.before_call("s3://b")
    clock.now += 20
    breaker.before_call("s3://b")


def test_zero_failures_means_off() -> None:
    breaker = CircuitBreaker(0, cooldown_s=5, probe_lease_s=20)
    for _ in range(10):
        breaker.no_answer()
    breaker.before_call("s3://b")
    assert not breaker.is_open


def test_dropped_connections_open_it_only_when_they_go_on_for_the_drop_span() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, cooldown_s=5, probe_lease_s=20, clock=clock, drop_span_s=1.0)
    for _ in range(20):  # a burst: many pooled connections reset at once
        breaker.no_answer(dropped=True)
    assert not breaker.is_open
    clock.now += 0.5
    breaker.no_answer(dropped=True)
    assert not breaker.is_open
    breaker.answered()  # the retries got through: the run is over
    breaker.no_answer(dropped=True)
    clock.now += 1.0
    breaker.no_answer(dropped=True)
    breaker.before_call("s3://b")  # a new run of two: under the count
    breaker.no_answer(dropped=True)  # three in a row over a second: the endpoint is down
    assert breaker.is_open


def test_no_connection_or_no_answer_opens_it_at_once_even_among_drops() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, cooldown_s=5, probe_lease_s=20, clock=clock, drop_span_s=1.0)
    breaker.no_answer(dropped=True)
    breaker.no_answer(dropped=True)
    breaker.no_answer()  # a timeout or a refused connection in the run
    assert breaker.is_open


def test_a_probe_that_ends_in_a_local_error_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown_s=5, probe_lease_s=20, clock=clock)
    breaker.no_answer()
    clock.now += 5
    breaker.before_call("s3://b")  # this thread probes...
    with pytest.raises(BreakerOpen, match="another call is probing"):
        _raise(_in_thread(lambda: breaker.before_call("s3://b")))
    breaker.probe_ended()  # ...and fails on its own side: no verdict on the endpoint
    assert breaker.is_open
    assert _in_thread(lambda: breaker.before_call("s3://b")) is None  # the next probe


def _raise(error: BaseException | None) -> None:
    if error is not None:
        raise error


def test_a_hung_endpoint_fails_fast_once_the_breaker_opens() -> None:
    with socket.socket() as silent:  # accepts (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        retry = RetryPolicy(
            max_attempts=5, read_timeout_s=0.3, breaker_failures=2, breaker_cooldown_s=30
        )
        store = S3Store(
            "hung-bucket",
            endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            retry=retry,
        )
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.get("k")
        first_s = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="failing fast"):
            store.head("k")
        second_s = time.monotonic() - started
        store.close()
    assert first_s < 1.4  # two timeouts of 0.3 s, then fast: not five attempts
    assert second_s < 0.2


COOLDOWN_S = 2.0


def test_the_store_recovers_through_a_probe_once_the_endpoint_is_back(
    make_s3_store: Callable[..., Any], s3_credentials: dict[str, str]
) -> None:
    moto = urlsplit(s3_credentials["endpoint_url"])
    proxy = TcpProxy(moto.hostname or "127.0.0.1", moto.port or 80)
    bucket_store = make_s3_store()  # creates the bucket, directly on moto
    store = make_s3_store(
        bucket=bucket_store.bucket,
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        retry=RetryPolicy(max_attempts=2, breaker_failures=2, breaker_cooldown_s=COOLDOWN_S),
    )
    try:
        store.put("k", b"v")
        proxy.cut()  # connections refused: no answer at all
        for _ in range(2):
            with pytest.raises(StorageUnavailable):
                store.get("k")
        assert store.breaker.is_open
        opened = time.monotonic()
        proxy.restore()
        with pytest.raises(BreakerOpen, match="failing fast"):
            store.get("k")  # still cooling down
        while True:  # after the cooldown the next call probes: answered, closed
            try:
                assert store.get("k")[0] == b"v"
                break
            except BreakerOpen:
                assert time.monotonic() - opened < COOLDOWN_S + 10
                time.sleep(0.1)
        assert time.monotonic() - opened >= COOLDOWN_S * 0.9
        assert not store.breaker.is_open
    finally:
        proxy.close()


def _behind(
    proxy: FaultProxy,
    s3_credentials: dict[str, str],
    make_s3_store: Callable[..., Any],
    **retry: Any,
) -> tuple[S3Store, str]:
    """A store on a new bucket that reaches moto through ``proxy``, and the bucket."""
    bucket = create_bucket(s3_credentials)
    store = make_s3_store(bucket, endpoint_url=proxy.endpoint, retry=RetryPolicy(**retry))
    return store, bucket


def test_a_burst_of_reset_connections_on_a_healthy_endpoint_does_not_open_it(
    proxy: FaultProxy, s3_credentials: dict[str, str], make_s3_store: Callable[..., Any]
) -> None:
    """A load balancer closing many pooled connections at once: every request's
    retry succeeds, so no call may fail fast."""
    store, bucket = _behind(
        proxy,
        s3_credentials,
        make_s3_store,
        max_attempts=5,
        breaker_failures=3,
        breaker_cooldown_s=30,
    )
    make_s3_store(bucket).put("k", b"v")
    callers = 8
    proxy.inject(["drop"] * callers)  # every caller's first attempt is dropped
    barrier = threading.Barrier(callers)
    errors: list[BaseException] = []

    def read() -> None:
        barrier.wait()
        try:
            assert store.get("k")[0] == b"v"
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert proxy.count("drop") == callers
    assert not store.breaker.is_open


def test_a_conditional_write_refused_by_the_open_breaker_is_not_retried_or_ambiguous(
    proxy: FaultProxy, s3_credentials: dict[str, str], make_s3_store: Callable[..., Any]
) -> None:
    store, _ = _behind(
        proxy,
        s3_credentials,
        make_s3_store,
        max_attempts=5,
        breaker_failures=1,
        breaker_cooldown_s=30,
    )
    store.breaker.no_answer()  # open, as after a timeout
    started = time.monotonic()
    with pytest.raises(BreakerOpen):
        store.put("log", b"record", if_none_match=True)
    assert time.monotonic() - started < 0.5  # no backoff between refused attempts
    assert proxy.count() == 0  # nothing went out, so nothing to resolve by HEAD


@pytest.mark.parametrize("conditional", [False, True])
def test_a_refusal_after_an_attempt_went_out_is_not_breaker_open(
    proxy: FaultProxy,
    s3_credentials: dict[str, str],
    make_s3_store: Callable[..., Any],
    conditional: bool,
) -> None:
    """The first attempt is written but its response lost, and that failure opens the
    breaker: the retry's refusal must not claim that nothing was sent."""
    store, bucket = _behind(
        proxy,
        s3_credentials,
        make_s3_store,
        max_attempts=3,
        breaker_failures=2,
        breaker_cooldown_s=30,
    )
    store.breaker.no_answer()  # one timeout already: the next failure opens it
    proxy.inject(["drop_after"])  # written upstream, answer lost
    with pytest.raises(StorageUnavailable) as raised:
        store.put("k", b"v", if_none_match=conditional)
    assert not isinstance(raised.value, BreakerOpen), raised.value
    assert "unknown" in str(raised.value)
    assert store.breaker.is_open
    assert make_s3_store(bucket).get("k")[0] == b"v"  # it did happen


def test_which_transport_failures_count_as_dropped_connections() -> None:
    import botocore.exceptions as bex
    import urllib3.exceptions

    from micforge.storage.s3 import _is_dropped

    url = "https://bucket.s3.example.com/k"
    eof = urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    closed = urllib3.exceptions.SSLError(
        ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed")
    )
    bad_cert = urllib3.exceptions.SSLError(
        ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer")
    )
    assert _is_dropped(bex.ConnectionClosedError(endpoint_url=url))
    assert _is_dropped(bex.SSLError(endpoint_url=url, error=eof))
    assert _is_dropped(bex.SSLError(endpoint_url=url, error=closed))
    assert not _is_dropped(bex.SSLError(endpoint_url=url, error=bad_cert))
    assert not _is_dropped(bex.ReadTimeoutError(endpoint_url=url))
    assert not _is_dropped(bex.ConnectTimeoutError(endpoint_url=url))
    assert not _is_dropped(bex.EndpointConnectionError(endpoint_url=url))
