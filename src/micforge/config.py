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
    # One diff's changes (a landing's own always fit at the default: it has at most
    # operations_per_session_max); a larger diff is 413, never built whole.
    diff_changes_max: int = 100_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_range(f.name, getattr(self, f.name), 1, None)


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
    # /healthz and gRPC health answer within this: a check that has not is "unavailable".
    health_timeout_ms: int = 3_000
    # On SIGTERM/SIGINT, report unhealthy (/healthz 503, gRPC NOT_SERVING) but keep
    # serving this long before the ports close, so that load balancers stop sending
    # new calls first; 0 = close at once. A second signal ends the wait.
    shutdown_drain_ms: int = 0
    # S3: how long to wait for a connection and for each response, and how many tries
    # a call gets (throttling and timeouts are retried with backoff). A hung endpoint
    # turns into 503 after about attempts x read timeout.
    s3_connect_timeout_ms: int = 5_000
    s3_read_timeout_ms: int = 15_000
    s3_max_attempts: int = 5
    # After this many S3 attempts in a row got no answer at all, fail fast for the
    # cooldown, then let one call probe (storage/breaker.py); 0 = never.
    s3_breaker_failures: int = 3
    s3_breaker_cooldown_ms: int = 5_000
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
        for name, (low, high) in _RANGES.items():
            _check_range(name, getattr(self, name), low, high)
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ValueError(
                f"log_level ({_env_name('log_level')}) must be one of {', '.join(_LOG_LEVELS)},"
                f" got {self.log_level!r}"
            )
        if self.host.startswith("[") and self.host.endswith("]"):
            object.__setattr__(self, "host", self.host[1:-1])  # [::1] -> ::1
        if not self.host:
            raise ValueError(f"host ({_env_name('host')}) must not be empty")
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


# The inclusive bounds of each integer setting (None: no upper bound). Limits are all >= 1.
_RANGES: dict[str, tuple[int, int | None]] = {
    "port": (0, 65535),  # 0: any free port
    "grpc_port": (0, 65535),
    "cache_ram_bytes": (0, None),
    "cache_disk_bytes": (0, None),
    "rate_limit_per_minute": (0, None),
    "grpc_chunk_bytes": (1, 64 * MiB),
    "grpc_stall_timeout_ms": (0, None),
    "grpc_health_poll_ms": (1, None),
    "health_timeout_ms": (1, None),
    "shutdown_drain_ms": (0, 600_000),
    "s3_connect_timeout_ms": (1, None),
    "s3_read_timeout_ms": (1, None),
    "s3_max_attempts": (1, 20),
    "s3_breaker_failures": (0, 1000),
    "s3_breaker_cooldown_ms": (1, None),
    "blob_zstd_level": (-(1 << 17), 22),  # zstd's negative "fast" levels up to its maximum
    "landing_max_attempts": (1, None),
    "landing_backoff_base_ms": (0, None),
    "landing_backoff_cap_ms": (0, None),
    "threads": (1, 1024),
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env_name(field_name: str) -> str:
    return f"MICFORGE_{field_name.upper()}"


def _check_range(name: str, value: object, low: int, high: int | None) -> None:
    """ValueError naming the setting (and its variable) unless ``value`` is an int in range."""
    in_range = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and low <= value
        and (high is None or value <= high)
    )
    if not in_range:
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} ({_env_name(name)}) must be an integer {bounds}, got {value!r}")


def _coerce(f: dataclasses.Field, raw: str) -> object:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "int":
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"{_env_name(f.name)} must be an integer, got {raw!r}") from None
    if kind == "Path":
        return Path(raw)
    if kind == "bool":
        return raw.lower() in {"1", "true", "yes", "on"}
    return raw
