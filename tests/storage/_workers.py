"""Code run inside child processes by the multi-process tests (importable by spawn)."""

from __future__ import annotations

from typing import Any

from micforge.storage import LocalStore, PreconditionFailed, RetryPolicy, S3Store, Store


def build_store(spec: dict[str, Any]) -> Store:
    """A fresh store in this process from a picklable description."""
    if spec["kind"] == "local":
        return LocalStore(spec["root"])
    kwargs = dict(spec["kwargs"])
    kwargs["retry"] = RetryPolicy(**kwargs["retry"])
    return S3Store(spec["bucket"], **kwargs)


def race_and_count(
    spec: dict[str, Any],
    worker: int,
    barrier: Any,
    race_keys: list[str],
    counter_key: str,
    increments: int,
) -> tuple[list[str], list[int], int]:
    """Try to create every race key, then CAS-increment the counter ``increments`` times.

    Returns (race keys this worker created, counter values it wrote, CAS retries).
    """
    store = build_store(spec)
    barrier.wait()
    won: list[str] = []
    for key in race_keys:
        try:
            store.put(key, f"worker {worker}".encode(), if_none_match=True)
            won.append(key)
        except PreconditionFailed:
            pass
    barrier.wait()
    written: list[int] = []
    retries = 0
    for _ in range(increments):
        while True:
            data, etag = store.get(counter_key)
            value = int(data) + 1
            try:
                store.put(counter_key, str(value).encode(), if_match=etag)
            except PreconditionFailed:
                retries += 1
                continue
            written.append(value)
            break
    store.close()
    return won, written, retries
