"""Service-level metrics on a registry owned by one ``Services`` (never the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.landings = Counter("micforge_landings", "Sessions landed", registry=r)
        self.conflicts = Counter("micforge_conflicts", "Landings refused for conflicts", registry=r)
        self.cas_retries = Counter(
            "micforge_cas_retries",
            "Conditional writes lost to a concurrent writer and retried",
            registry=r,
        )
        self.conflict_check_reads = Counter(
            "micforge_conflict_check_reads", "Objects read by landing conflict checks", registry=r
        )
        self.rollups_built = Counter("micforge_rollups_built", "Bloom rollups written", registry=r)

    def watch_cache(self, stats: Callable[[], object]) -> None:
        """Export a cache's hit/miss counters and hit ratio, read at scrape time."""
        self.registry.register(_CacheCollector(stats))


class _CacheCollector(Collector):
    def __init__(self, stats: Callable[[], object]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[object]:
        s = self._stats()
        hits_ram = int(getattr(s, "hits_ram", 0))
        hits_disk = int(getattr(s, "hits_disk", 0))
        misses = int(getattr(s, "misses", 0))
        requests = CounterMetricFamily(
            "micforge_cache_requests",
            "Cache lookups of immutable objects by outcome",
            labels=["outcome"],
        )
        requests.add_metric(["hit_ram"], hits_ram)
        requests.add_metric(["hit_disk"], hits_disk)
        requests.add_metric(["miss"], misses)
        yield requests
        total = hits_ram + hits_disk + misses
        ratio = GaugeMetricFamily(
            "micforge_cache_hit_ratio", "Share of cache lookups served from RAM or disk"
        )
        ratio.add_metric([], (hits_ram + hits_disk) / total if total else 0.0)
        yield ratio
