"""S3Store under injected faults: retries succeed, budgets end in StorageUnavailable,
and a write is never reported as done unless it happened.

A FaultProxy sits between the store and the moto server; ``direct`` is a second
store on the same bucket that bypasses the proxy, to check what really happened.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from micforge.errors import Unavailable
from micforge.storage import (
    KeyNotFound,
    PreconditionFailed,
    RetryPolicy,
    S3Store,
    StorageUnavailable,
    keys,
)
from tests.fixtures.moto_server import create_bucket
from tests.storage.fault_proxy import FaultProxy

ATTEMPTS = 4
KEY = keys.head("p")
LOG = keys.log("p", 1)


@pytest.fixture
def pair(
    proxy: FaultProxy, s3_credentials: dict[str, str], make_s3_store: Callable[..., Any]
) -> tuple[S3Store, S3Store]:
    bucket = create_bucket(s3_credentials)
    direct = make_s3_store(bucket)
    retry = RetryPolicy(
        max_attempts=ATTEMPTS, backoff_base_ms=5, backoff_cap_ms=50, read_timeout_s=10
    )
    faulty = make_s3_store(bucket, endpoint_url=proxy.endpoint, retry=retry)
    return faulty, direct


def test_put_and_get_retry_through_500s_and_drops(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    proxy.inject(["error500", "drop"])
    etag = faulty.put(KEY, b"v1")
    assert direct.get(KEY) == (b"v1", etag)
    proxy.inject(["drop", "error500"])
    assert faulty.get(KEY) == (b"v1", etag)
    proxy.inject(["error500"])
    assert faulty.head(KEY) == etag
    proxy.inject(["drop"])
    assert faulty.list("projects/") == [KEY]
    assert proxy.count("error500") == 3 and proxy.count("drop") == 3


@pytest.mark.parametrize("fault", ["error500", "drop"])
def test_conditional_put_retries_when_nothing_happened(
    proxy: FaultProxy, pair: Any, fault: str
) -> None:
    faulty, direct = pair
    proxy.inject([fault, fault])
    etag = faulty.put(LOG, b"record", if_none_match=True)
    assert direct.get(LOG) == (b"record", etag)
    proxy.inject([fault])
    etag2 = faulty.put(LOG, b"record2", if_match=etag)
    assert direct.get(LOG) == (b"record2", etag2)


def test_lost_response_of_a_successful_create_is_success(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    proxy.inject(["drop_after"])  # the write lands, its response is lost, the retry meets 412
    etag = faulty.put(LOG, b"mine", if_none_match=True)
    assert direct.get(LOG) == (b"mine", etag)
    assert proxy.count("drop_after", "PUT") == 1 and proxy.count(method="PUT") == 2


def test_lost_response_of_a_successful_cas_is_success(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    v1 = direct.put(KEY, b"1")
    proxy.inject(["drop_after"])
    v2 = faulty.put(KEY, b"2", if_match=v1)
    assert direct.get(KEY) == (b"2", v2)


def test_lost_response_then_real_conflict_is_precondition_failed(
    proxy: FaultProxy, pair: Any
) -> None:
    faulty, direct = pair
    direct.put(LOG, b"theirs", if_none_match=True)
    proxy.inject(["error500"])  # ambiguous first attempt, then a 412 that is not ours
    with pytest.raises(PreconditionFailed):
        faulty.put(LOG, b"mine", if_none_match=True)
    assert direct.get(LOG)[0] == b"theirs"


def test_cas_after_lost_response_with_foreign_object_is_unknown(
    proxy: FaultProxy, pair: Any
) -> None:
    faulty, direct = pair
    v1 = direct.put(KEY, b"1")
    direct.put(KEY, b"someone else")
    proxy.inject(["drop"])
    # Could have been ours, then replaced: neither success nor a retryable 412.
    with pytest.raises(StorageUnavailable):
        faulty.put(KEY, b"2", if_match=v1)
    assert direct.get(KEY)[0] == b"someone else"


@pytest.mark.parametrize("fault", ["error500", "drop"])
def test_budget_exhausted_raises_unavailable_and_writes_nothing(
    proxy: FaultProxy, pair: Any, fault: str
) -> None:
    faulty, direct = pair
    proxy.set_default(fault)
    for write in (
        lambda: faulty.put(KEY, b"x"),
        lambda: faulty.put(LOG, b"x", if_none_match=True),
    ):
        with pytest.raises(StorageUnavailable) as info:
            write()
        assert isinstance(info.value, Unavailable)  # maps to 503 in the API layers
    with pytest.raises(StorageUnavailable):
        faulty.get(KEY)
    with pytest.raises(StorageUnavailable):
        faulty.head(KEY)
    assert direct.head(KEY) is None and direct.head(LOG) is None
    # Every conditional attempt was made, no more: the budget bounds the work.
    assert proxy.count(method="PUT") == ATTEMPTS * 2


def test_budget_exhausted_after_the_write_landed_is_not_a_failure_report(
    proxy: FaultProxy, pair: Any
) -> None:
    faulty, direct = pair
    proxy.set_default("drop_after")  # every request happens upstream, no answer comes back
    with pytest.raises(StorageUnavailable):
        faulty.put(LOG, b"mine", if_none_match=True)
    # The write did happen; the store said "unknown", never "failed" or a false "done".
    assert direct.get(LOG)[0] == b"mine"


def test_get_missing_through_faults_is_key_not_found(proxy: FaultProxy, pair: Any) -> None:
    faulty, _ = pair
    proxy.inject(["error500", "drop"])
    with pytest.raises(KeyNotFound):
        faulty.get(KEY)


@pytest.mark.timeout(120)
def test_cas_counter_under_random_faults_never_overreports(proxy: FaultProxy, pair: Any) -> None:
    """4 threads CAS-increment through a proxy that fails ~25% of requests.

    Every increment reported as done must be in the final count, none twice;
    increments that ended in StorageUnavailable may or may not have landed.
    """
    faulty, direct = pair
    direct.put(KEY, b"0")
    rng = random.Random(1234)
    proxy.inject(
        rng.choice(["error500", "drop", "drop_after"]) if rng.random() < 0.25 else "ok"
        for _ in range(3000)
    )
    reported: list[int] = []
    unknown = [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            while True:
                try:
                    data, etag = faulty.get(KEY)
                    value = int(data) + 1
                    faulty.put(KEY, str(value).encode(), if_match=etag)
                except PreconditionFailed:
                    continue
                except StorageUnavailable:
                    with lock:
                        unknown[0] += 1
                    break
                with lock:
                    reported.append(value)
                break

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(direct.get(KEY)[0])
    assert len(set(reported)) == len(reported), "one value reported written twice"
    assert max(reported, default=0) <= final
    assert len(reported) <= final <= len(reported) + unknown[0]
    assert proxy.count("drop_after") > 0


def test_conditional_request_conflict_is_retried(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    proxy.inject(["conflict409", "conflict409"])
    etag = faulty.put(LOG, b"record", if_none_match=True)
    assert direct.get(LOG) == (b"record", etag)
    v2 = direct.put(KEY, b"1")
    proxy.inject(["conflict409"])
    v3 = faulty.put(KEY, b"2", if_match=v2)
    assert direct.get(KEY) == (b"2", v3)
    assert proxy.count("conflict409") == 3


def test_throttling_is_retried(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    proxy.inject(["slowdown503", "slowdown503"])
    etag = faulty.put(KEY, b"x")
    proxy.inject(["slowdown503"])
    assert faulty.put(LOG, b"y", if_none_match=True)
    proxy.inject(["slowdown503"])
    assert faulty.get(KEY) == (b"x", etag)
    assert direct.get(LOG)[0] == b"y"


def test_persistent_conflicts_end_in_unavailable(proxy: FaultProxy, pair: Any) -> None:
    faulty, direct = pair
    proxy.set_default("conflict409")
    with pytest.raises(StorageUnavailable):
        faulty.put(LOG, b"x", if_none_match=True)
    assert direct.head(LOG) is None
