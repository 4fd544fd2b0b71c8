"""One configuration object, built once and passed down.

Precedence, highest first: explicit values (command-line flags, or keyword
arguments in code and tests) > ``MICFORGE_*`` environment variables > the
defaults below. This is the only module that reads ``MICFORGE_*`` variables;
boto3 reads the standard ``AWS_*`` ones itself (endpoint, region, credentials),
and ``api/allocator.py`` looks for glibc's ``MALLOC_*`` / ``GLIBC_TUNABLES`` so
that an operator's own allocator settings win (docs/configuration.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    """Size and count limits; exceeding one is 413 ``too_large``."""

    json_body_max_bytes: int = 4 * MiB
    goal_max_bytes: int = 64 * KiB
    entry_max_bytes: int = 1 * MiB  # one decision or conversation entry
    blob_max_bytes: int = 1 * GiB
    operations_per_session_max: int = 100_000
    session_max_bytes: int = 256 * MiB  # the encoded session object


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("micforge-data")
    store_url: str = ""  # default: file://{data_dir}/store
    auth_db_url: str = ""  # default: sqlite:///{data_dir}/auth.db
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 50051
    s3_endpoint_url: str | None = None  # else boto3's own chain (AWS_ENDPOINT_URL, ...)
    cache_dir: str = ""  # default: {data_dir}/cache ; "off" disables the disk tier
    cache_ram_bytes: int = 256 * MiB
    cache_disk_bytes: int = 4 * GiB
    rate_limit_per_minute: int = 0  # per token; 0 = off
    grpc_chunk_bytes: int = 256 * KiB
    # A gRPC stream with no progress this long is cancelled, freeing its worker
    # (api/grpc/lifecycle.py); 0 = never.
    grpc_stall_timeout_ms: int = 60_000
    grpc_health_poll_ms: int = 5_000  # how often gRPC health re-runs the health checks
    # 1, not zstd's default 3: compresses source-like data ~50% faster for ~14% larger
    # objects (docs/benchmarks.md "gRPC"); git too writes loose objects at level 1.
    blob_zstd_level: int = 1
    landing_max_attempts: int = 64
    landing_backoff_base_ms: int = 5
    landing_backoff_cap_ms: int = 1000
    threads: int = 16  # WSGI worker threads
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        data_dir = Path(self.data_dir)
        object.__setattr__(self, "data_dir", data_dir)
        if not self.store_url:
            object.__setattr__(self, "store_url", (data_dir / "store").resolve().as_uri())
        if not self.auth_db_url:
            object.__setattr__(self, "auth_db_url", f"sqlite:///{(data_dir / 'auth.db').resolve()}")
        if not self.cache_dir:
            object.__setattr__(self, "cache_dir", str((data_dir / "cache").resolve()))

    @property
    def disk_cache_enabled(self) -> bool:
        return self.cache_dir != "off" and self.cache_disk_bytes > 0

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls, overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Build a Config from ``overrides`` > ``MICFORGE_*`` in ``environ`` > defaults.

        ``overrides`` keys are field names (``port``, ``store_url``, or a limit
        such as ``blob_max_bytes``); ``None`` values are ignored so that unset
        command-line flags fall through to the environment.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        limit_values: dict[str, object] = {}
        limit_fields = {f.name: f for f in dataclasses.fields(Limits)}
        top_fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "limits"}

        for name, f in top_fields.items():
            raw = env.get(f"MICFORGE_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = _coerce(f, raw)
        for name, f in limit_fields.items():
            raw = env.get(f"MICFORGE_{name.upper()}")
            if raw is not None and raw != "":
                limit_values[name] = _coerce(f, raw)
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name in top_fields:
                values[name] = value
            elif name in limit_fields:
                limit_values[name] = value
            else:
                raise ValueError(f"unknown configuration key {name!r}")
        values["limits"] = Limits(**limit_values)  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _coerce(f: dataclasses.Field, raw: str) -> object:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "int":
        return int(raw.replace("_", ""))
    if kind == "Path":
        return Path(raw)
    if kind == "bool":
        return raw.lower() in {"1", "true", "yes", "on"}
    return raw
