"""Object storage: the Store protocol, its backends, and the tiered cache.

``open_store(url, config)`` is the one way the rest of micforge gets a
store; tests build stores directly. See docs/storage.md.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from micforge.config import Config
from micforge.storage.base import (
    InvalidKey,
    KeyNotFound,
    PreconditionFailed,
    StorageUnavailable,
    Store,
    StoreError,
    store_unusable,
)
from micforge.storage.breaker import BreakerOpen
from micforge.storage.cache import CachedStore, CacheStats
from micforge.storage.local import LocalStore
from micforge.storage.s3 import RetryPolicy, S3Store

__all__ = [
    "BreakerOpen",
    "CacheStats",
    "CachedStore",
    "InvalidKey",
    "KeyNotFound",
    "LocalStore",
    "PreconditionFailed",
    "RetryPolicy",
    "S3Store",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "open_backend",
    "open_store",
    "store_unusable",
]


def open_backend(url: str, config: Config) -> LocalStore | S3Store:
    """The bare backend named by ``url``: ``file:///path`` or ``s3://bucket[/prefix]``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in {"", "localhost"}:
            raise ValueError(f"file store URL must be local (file:///path): {url!r}")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise ValueError(f"file store URL needs an absolute path: {url!r}")
        return LocalStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"s3 store URL needs a bucket (s3://bucket/prefix): {url!r}")
        if parsed.query or parsed.fragment:
            raise ValueError(f"s3 store URL takes no query or fragment: {url!r}")
        return S3Store(
            parsed.netloc,
            unquote(parsed.path).strip("/"),
            endpoint_url=config.s3_endpoint_url or None,
            retry=RetryPolicy(
                max_attempts=config.s3_max_attempts,
                connect_timeout_s=config.s3_connect_timeout_ms / 1000,
                read_timeout_s=config.s3_read_timeout_ms / 1000,
                breaker_failures=config.s3_breaker_failures,
                breaker_cooldown_s=config.s3_breaker_cooldown_ms / 1000,
            ),
        )
    raise ValueError(f"unsupported store URL {url!r}: use file:///path or s3://bucket/prefix")


def open_store(url: str, config: Config, *, cache: bool = True) -> Store:
    """The store for ``url``, wrapped in a CachedStore sized by ``config`` unless ``cache=False``."""
    backend = open_backend(url, config)
    if not cache or config.cache_ram_bytes <= 0 and not config.disk_cache_enabled:
        return backend
    return CachedStore(
        backend,
        ram_bytes=max(config.cache_ram_bytes, 0),
        disk_dir=config.cache_dir if config.disk_cache_enabled else None,
        disk_bytes=config.cache_disk_bytes if config.disk_cache_enabled else 0,
    )
