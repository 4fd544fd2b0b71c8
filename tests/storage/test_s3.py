"""S3Store specifics: multipart, prefixes, bucket errors, URL configuration."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from micforge.config import Config
from micforge.storage import (
    CachedStore,
    LocalStore,
    PreconditionFailed,
    S3Store,
    StorageUnavailable,
    StoreError,
    keys,
    open_backend,
    open_store,
)

MiB = 1024 * 1024


def test_multipart_upload_with_if_none_match(
    make_s3_store: Callable[..., Any], s3_credentials: dict[str, str]
) -> None:
    store = make_s3_store(multipart_threshold_bytes=5 * MiB, multipart_chunk_bytes=5 * MiB)
    data = bytes(range(256)) * (11 * MiB // 256)
    etag = store.put_file("big", io.BytesIO(data), len(data), if_none_match=True)
    assert etag.endswith('-3"')  # three parts: S3's multipart etag
    reader, size, got_etag = store.open("big")
    with reader:
        assert size == len(data) and got_etag == etag
        assert reader.read() == data
    with pytest.raises(PreconditionFailed):
        store.put_file("big", io.BytesIO(data), len(data), if_none_match=True)
    with pytest.raises(ValueError):
        store.put_file("short", io.BytesIO(data[: 6 * MiB]), len(data))
    assert store.head("short") is None
    # Failed uploads were aborted, not left to accumulate parts.
    client = boto3.session.Session().client("s3", **s3_credentials)
    assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    client.close()


def test_prefixes_isolate_stores_in_one_bucket(make_s3_store: Callable[..., Any]) -> None:
    one = make_s3_store(prefix="tenant/one")
    two = make_s3_store(one.bucket, prefix="tenant/two/")
    whole = make_s3_store(one.bucket)
    one.put("k", b"1")
    two.put("k", b"2")
    assert one.get("k")[0] == b"1" and two.get("k")[0] == b"2"
    assert one.list("") == ["k"]
    assert whole.list("") == ["tenant/one/k", "tenant/two/k"]


def test_missing_bucket_is_a_clear_error(make_s3_store: Callable[..., Any]) -> None:
    store = make_s3_store("no-such-bucket-here")
    said = "S3 404 NoSuchBucket: the bucket 'no-such-bucket-here' does not exist"
    with pytest.raises(StoreError, match=said):
        store.put("k", b"x")
    with pytest.raises(StoreError, match=said):  # a listing of the whole store names it too
        store.list("")


def test_constructor_validates(s3_credentials: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        S3Store("", **s3_credentials)
    with pytest.raises(ValueError):
        S3Store("b", multipart_chunk_bytes=1024, **s3_credentials)


def test_open_store_by_url(tmp_path: Path, s3_store: S3Store, moto_endpoint: str) -> None:
    config = Config(data_dir=tmp_path, s3_endpoint_url=moto_endpoint)
    local = open_backend((tmp_path / "store").as_uri(), config)
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "store").resolve()
    s3 = open_backend(f"s3://{s3_store.bucket}/some/prefix", config)
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == (s3_store.bucket, "some/prefix/")
    s3.close()
    cached = open_store(config.store_url, config)
    assert isinstance(cached, CachedStore) and isinstance(cached.store, LocalStore)
    assert isinstance(
        open_store(config.store_url, config.replace(cache_dir="off", cache_ram_bytes=0)), LocalStore
    )
    for bad in ["http://x", "s3:///nobucket", "file://host/path", "file:relative", "s3://b/p?x=1"]:
        with pytest.raises(ValueError):
            open_backend(bad, config)


def test_list_pages_past_a_thousand(s3_store: S3Store) -> None:
    # S3 returns at most 1000 keys a page; the store must follow continuations.
    count = 1005
    for i in range(count):
        s3_store.put(keys.log("p", i + 1), b"")
    listed = s3_store.list(keys.log_prefix("p"))
    assert len(listed) == count
    assert listed == sorted(listed)
    assert s3_store.list(keys.log_prefix("p"), limit=1002) == listed[:1002]
    assert s3_store.list(keys.log_prefix("p"), start_after=keys.log("p", 1000)) == [
        keys.log("p", n) for n in range(1001, 1006)
    ]


def test_endpoint_region_credentials_from_standard_aws_variables(
    s3_store: S3Store, moto_endpoint: str, tmp_path: Path
) -> None:
    """With no endpoint in Config, boto3's chain (AWS_ENDPOINT_URL, ...) is used.

    Runs in a child process so the environment is set without touching ours.
    """
    import os
    import subprocess
    import sys

    script = (
        "from micforge.config import Config\n"
        "from micforge.storage import open_backend\n"
        f"store = open_backend('s3://{s3_store.bucket}/env', Config(data_dir={str(tmp_path)!r}))\n"
        "store.put('k', b'via env')\n"
        "print(store.get('k')[0].decode())\n"
    )
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MICFORGE_"))
    }
    env.update(
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="from-env",
        AWS_SECRET_ACCESS_KEY="from-env",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "via env"
    assert s3_store.get("env/k")[0] == b"via env"


def test_a_hung_endpoint_is_unavailable_after_the_configured_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An endpoint that accepts connections (the kernel's backlog) and never answers.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        config = Config(
            data_dir=tmp_path,
            s3_endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            s3_read_timeout_ms=300,
            s3_max_attempts=2,
        )
        store = open_backend("s3://hung-bucket/p", config)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.get("some/key")
        elapsed = time.monotonic() - started
        store.close()
    assert 0.5 < elapsed < 10, elapsed  # two attempts of 0.3 s (and a backoff), not 8 of 60 s
