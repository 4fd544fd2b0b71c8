"""One behaviour, every backend: the Store protocol's conformance suite.

Runs against LocalStore, S3Store (on a real moto server) and CachedStore
wrapping each, so that callers can never tell them apart.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from micforge.storage import (
    CachedStore,
    InvalidKey,
    KeyNotFound,
    PreconditionFailed,
    Store,
    StoreError,
    keys,
)

BLOB = keys.blob("p", "ab" + "0" * 62)
HEAD = keys.head("p")


@pytest.fixture(params=["local", "s3", "cached-local", "cached-s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind: str = request.param
    backend = request.getfixturevalue("s3_store" if kind.endswith("s3") else "local_store")
    if kind.startswith("cached"):
        return CachedStore(
            backend, ram_bytes=1 << 20, disk_dir=tmp_path / "cache", disk_bytes=1 << 20
        )
    return backend


def test_is_a_store(store: Any) -> None:
    assert isinstance(store, Store)


def test_get_missing_raises_key_not_found(store: Any) -> None:
    with pytest.raises(KeyNotFound):
        store.get(HEAD)
    with pytest.raises(KeyNotFound):
        store.get(BLOB)  # immutable keys: a miss is never cached as absent
    with pytest.raises(KeyNotFound):
        store.open(HEAD)
    assert store.head(HEAD) is None


def test_put_get_head_roundtrip(store: Any) -> None:
    for key, data in [(HEAD, b"head bytes"), (BLOB, bytes(range(256)) * 10), ("x", b"")]:
        etag = store.put(key, data)
        assert isinstance(etag, str) and etag
        assert store.get(key) == (data, etag)
        assert store.head(key) == etag


def test_etag_is_a_stable_content_hash(store: Any) -> None:
    first = store.put("a/one", b"same")
    second = store.put("a/two", b"same")
    third = store.put("a/three", b"different")
    assert first == second != third
    assert store.put("a/one", b"same") == first


def test_overwrite_replaces_content_and_etag(store: Any) -> None:
    first = store.put(HEAD, b"v1")
    second = store.put(HEAD, b"v2")
    assert first != second
    assert store.get(HEAD) == (b"v2", second)


def test_if_none_match_creates_only_once(store: Any) -> None:
    etag = store.put(BLOB, b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put(BLOB, b"second", if_none_match=True)
    assert store.get(BLOB) == (b"first", etag)


def test_if_match_is_compare_and_swap(store: Any) -> None:
    v1 = store.put(HEAD, b"1", if_none_match=True)
    v2 = store.put(HEAD, b"2", if_match=v1)
    with pytest.raises(PreconditionFailed):
        store.put(HEAD, b"3", if_match=v1)  # stale etag
    assert store.get(HEAD) == (b"2", v2)
    v3 = store.put(HEAD, b"3", if_match=v2)
    assert store.get(HEAD) == (b"3", v3)


def test_if_match_on_missing_key_fails(store: Any) -> None:
    other = store.put("elsewhere", b"x")
    with pytest.raises(PreconditionFailed):
        store.put(HEAD, b"x", if_match=other)
    assert store.head(HEAD) is None


def test_if_match_with_same_content_etag(store: Any) -> None:
    # Writing identical bytes yields the identical etag, and the CAS still holds.
    v1 = store.put(HEAD, b"same")
    assert store.put(HEAD, b"same", if_match=v1) == v1


def test_conditions_are_exclusive(store: Any) -> None:
    with pytest.raises(ValueError):
        store.put(HEAD, b"x", if_match="abc", if_none_match=True)
    with pytest.raises(ValueError):
        store.put(HEAD, b"x", if_match="")
    assert store.head(HEAD) is None


def test_delete(store: Any) -> None:
    store.put(HEAD, b"x")
    store.delete(HEAD)
    assert store.head(HEAD) is None
    with pytest.raises(KeyNotFound):
        store.get(HEAD)
    store.delete(HEAD)  # absent is fine
    assert store.put(HEAD, b"again", if_none_match=True)


def test_delete_immutable_key_not_served_from_cache(store: Any) -> None:
    store.put(BLOB, b"x")
    assert store.get(BLOB)[0] == b"x"
    store.delete(BLOB)
    with pytest.raises(KeyNotFound):
        store.get(BLOB)


def test_list_sorted_with_prefix_start_after_limit(store: Any) -> None:
    names = ["p/a", "p/a-b", "p/a/b", "p/a/b/c", "p/b", "q/a", "pz"]
    for name in reversed(names):
        store.put(name, name.encode())
    assert store.list("p/") == ["p/a", "p/a-b", "p/a/b", "p/a/b/c", "p/b"]
    assert store.list("p") == ["p/a", "p/a-b", "p/a/b", "p/a/b/c", "p/b", "pz"]
    assert store.list("p/a") == ["p/a", "p/a-b", "p/a/b", "p/a/b/c"]
    assert store.list("p/a/") == ["p/a/b", "p/a/b/c"]
    assert store.list("") == sorted(names)
    assert store.list("p/", start_after="p/a-b") == ["p/a/b", "p/a/b/c", "p/b"]
    assert store.list("p/", start_after="p/a/b/c") == ["p/b"]
    assert store.list("p/", start_after="p/a", limit=2) == ["p/a-b", "p/a/b"]
    assert store.list("p/", limit=0) == []
    assert store.list("p/", start_after="p/zzz") == []
    assert store.list("nothing/") == []


def test_put_file_streams_exact_size(store: Any) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    etag = store.put_file(BLOB, io.BytesIO(data), len(data), if_none_match=True)
    assert store.get(BLOB) == (data, etag)
    assert etag == store.put("copy", data)  # same etag as a plain put of the same bytes
    with pytest.raises(PreconditionFailed):
        store.put_file(BLOB, io.BytesIO(b"x"), 1, if_none_match=True)


def test_put_file_rejects_short_and_long_sources_without_writing(store: Any) -> None:
    with pytest.raises(ValueError):
        store.put_file("short", io.BytesIO(b"abc"), 10)
    with pytest.raises(ValueError):
        store.put_file("long", io.BytesIO(b"abcdef"), 3)
    assert store.head("short") is None
    assert store.head("long") is None


def test_open_streams(store: Any) -> None:
    data = b"0123456789" * 1000
    etag = store.put(BLOB, data)
    reader, size, got_etag = store.open(BLOB)
    with reader:
        assert (size, got_etag) == (len(data), etag)
        assert reader.read(10) == b"0123456789"
        assert reader.read() == data[10:]


@pytest.mark.parametrize(
    "bad",
    [
        *["", "/abs", "a//b", "a/../b", "..", "a/.", ".hidden", "a/\x00b", "a\\b", "a/", "x.mfo"],
        # Control characters, a lone surrogate (not UTF-8), and a segment whose
        # characters fit the limit but whose UTF-8 bytes do not.
        *["a/b\x01c", "a/\x1f", "a/\x7f", "a/\ud800", "a/" + "é" * 200],
    ],
)
def test_invalid_keys_rejected(store: Any, bad: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(bad, b"x")
    with pytest.raises(InvalidKey):
        store.get(bad)
    with pytest.raises(InvalidKey):
        store.head(bad)
    with pytest.raises(InvalidKey):
        store.delete(bad)
    assert issubclass(InvalidKey, StoreError)


def test_overlong_key_rejected(store: Any) -> None:
    with pytest.raises(InvalidKey):
        store.put("a/" * 600, b"x")


def test_unicode_keys_sort_by_code_point(store: Any) -> None:
    names = ["u/é", "u/z", "u/€", "u/A"]
    for name in names:
        store.put(name, b"")
    # Code-point order equals UTF-8 byte order, which is S3's listing order.
    assert store.list("u/") == sorted(names)


def test_bad_data_type_rejected(store: Any) -> None:
    with pytest.raises(TypeError):
        store.put(HEAD, "text")  # type: ignore[arg-type]
    assert store.head(HEAD) is None
