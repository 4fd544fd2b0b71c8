"""The service layer: everything the REST and gRPC front ends do, with no Flask or grpc here.

``build_services(config)`` wires one set of collaborators; tests inject their
own store (e.g. a moto-backed S3Store or a fault-injecting wrapper) and auth DB.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from micforge.auth import AuthDB
from micforge.config import Config
from micforge.service.blobs import BlobService
from micforge.service.common import Authorizer
from micforge.service.content import ContentService
from micforge.service.health import HealthChecks
from micforge.service.history import History
from micforge.service.landing import LandingService
from micforge.service.metrics import Metrics
from micforge.service.projects import ProjectService
from micforge.service.ratelimit import RateLimiter
from micforge.service.sessions import SessionService, SessionStore, SyncHlc
from micforge.storage import CachedStore, Store, open_backend

# Parallel object-store reads/writes per Services (object stores are latency-bound).
IO_THREADS = 16
# Listings read on a pool of their own: each project's head for project listings
# (those reads may use the I/O pool themselves, History.tip, so sharing it could
# deadlock), and the session objects of a session listing.
LISTING_THREADS = 8


@dataclass
class Services:
    config: Config
    store: Store  # the cached view every service uses
    auth: AuthDB
    metrics: Metrics
    blobs: BlobService
    sessions: SessionService
    landing: LandingService
    content: ContentService
    projects: ProjectService
    history: History
    # One per Services: REST and gRPC over the same services spend from the same
    # per-token buckets.
    rate_limiter: RateLimiter
    _pool: ThreadPoolExecutor
    _listing_pool: ThreadPoolExecutor
    _owned: tuple
    _health: HealthChecks = field(init=False)

    def __post_init__(self) -> None:
        self._health = HealthChecks(
            {"store": self._probe_store, "auth_db": self.auth.ping},
            self.config.health_timeout_ms / 1000,
        )

    def health(self) -> dict[str, str]:
        """Whether the store and the auth DB answer: {"store": "ok" | "unavailable",
        "auth_db": ...}, within ``config.health_timeout_ms`` (service/health.py). REST
        ``/healthz`` and gRPC health both report this. Any failure counts (logged),
        not just Unavailable, and so does no answer in time: a health check must answer."""
        return self._health.run()

    def shutting_down(self) -> None:
        """Health answers unhealthy from now on (``"server": "shutting_down"``): the
        server is draining before it closes its ports (``config.shutdown_drain_ms``)."""
        self._health.shutting_down()

    def _probe_store(self) -> None:
        self.store.list("", limit=1)  # reaches a remote store
        # A store that lists may still refuse every write (a read-only mount). An
        # object writer opened and aborted (leaving the block) writes nothing and
        # fails there as every write would.
        with self.store.open_writer():
            pass

    def close(self) -> None:
        self._health.close()
        self._listing_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        for resource in self._owned:
            resource.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_services(
    config: Config, *, store: Store | None = None, auth_db: AuthDB | None = None
) -> Services:
    """Build the services. Collaborators passed in stay owned by the caller; those built
    here (from ``config.store_url`` / ``config.auth_db_url``) are closed by ``close()``."""
    owned: list = []
    if store is None:
        store = open_backend(config.store_url, config)
        owned.append(store)
    if auth_db is None:
        auth_db = AuthDB.open(config.auth_db_url)
        owned.append(auth_db)
    cached = CachedStore(
        store,
        ram_bytes=config.cache_ram_bytes,
        disk_dir=config.cache_dir if config.disk_cache_enabled else None,
        disk_bytes=config.cache_disk_bytes,
    )
    metrics = Metrics()
    metrics.watch_cache(lambda: cached.stats)
    pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="micforge-io")
    listing_pool = ThreadPoolExecutor(
        max_workers=LISTING_THREADS, thread_name_prefix="micforge-listing"
    )
    authorizer = Authorizer(auth_db)
    hlc = SyncHlc()
    history = History(cached, metrics, pool)
    session_store = SessionStore(cached, metrics, config.limits.session_max_bytes)
    blobs = BlobService(config, cached, authorizer)
    sessions = SessionService(
        config, cached, authorizer, blobs, history, session_store, hlc, read_pool=listing_pool
    )
    landing = LandingService(config, cached, authorizer, history, session_store, hlc, metrics, pool)
    content = ContentService(
        authorizer, history, blobs, auth_db, diff_changes_max=config.limits.diff_changes_max
    )
    projects = ProjectService(auth_db, authorizer, content, listing_pool, cached)
    return Services(
        config=config,
        store=cached,
        auth=auth_db,
        metrics=metrics,
        blobs=blobs,
        sessions=sessions,
        landing=landing,
        content=content,
        projects=projects,
        history=history,
        rate_limiter=RateLimiter(config.rate_limit_per_minute),
        _pool=pool,
        _listing_pool=listing_pool,
        _owned=tuple(owned),
    )


__all__ = ["Services", "build_services"]
