"""CachedStore: tier bounds, hit/miss accounting, corruption detection, what is never cached."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from micforge.storage import CachedStore, CacheStats, KeyNotFound, LocalStore, keys


class CountingStore:
    """Wraps a real store and counts reads that reach it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.gets = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, str]:
        with self._lock:
            self.gets += 1
        return self.store.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __repr__(self) -> str:
        return f"Counting({self.store!r})"


def blob_key(i: int) -> str:
    return keys.blob("p", f"{i:064x}")


def disk_files(cache_dir: Path) -> list[Path]:
    return [p for p in (cache_dir / "objects").rglob("*") if p.is_file()]


def disk_bytes(cache_dir: Path) -> int:
    return sum(p.stat().st_size for p in disk_files(cache_dir))


@pytest.fixture
def backend(tmp_path: Path) -> CountingStore:
    return CountingStore(LocalStore(tmp_path / "store", fsync=False))


def test_ram_then_disk_then_store(backend: CountingStore, tmp_path: Path) -> None:
    backend.put(blob_key(1), b"node")
    cache_dir = tmp_path / "cache"
    cached = CachedStore(backend, ram_bytes=10_000, disk_dir=cache_dir, disk_bytes=10_000)
    etag = backend.head(blob_key(1))
    assert cached.get(blob_key(1)) == (b"node", etag)
    assert cached.get(blob_key(1)) == (b"node", etag)
    assert cached.stats == CacheStats(hits_ram=1, hits_disk=0, misses=1)
    assert backend.gets == 1

    # A new process (fresh RAM) sharing the directory: the disk tier survives restarts.
    restarted = CachedStore(backend, ram_bytes=10_000, disk_dir=cache_dir, disk_bytes=10_000)
    assert restarted.get(blob_key(1)) == (b"node", etag)
    assert restarted.get(blob_key(1)) == (b"node", etag)
    assert restarted.stats == CacheStats(hits_ram=1, hits_disk=1, misses=0)
    assert backend.gets == 1
    reader, size, got_etag = restarted.open(blob_key(1))
    assert (reader.read(), size, got_etag) == (b"node", 4, etag)


def test_mutable_keys_are_never_cached(backend: CountingStore, tmp_path: Path) -> None:
    cached = CachedStore(backend, ram_bytes=10_000, disk_dir=tmp_path / "c", disk_bytes=10_000)
    for key in (keys.head("p"), keys.session("p", "s1"), "auth/backups/x"):
        cached.put(key, b"v1")
        assert cached.get(key)[0] == b"v1"
        backend.store.put(key, b"v2")  # behind the cache's back, as another agent would
        assert cached.get(key)[0] == b"v2"
        assert cached.head(key) == backend.head(key)
    assert cached.stats == CacheStats()
    assert disk_files(tmp_path / "c") == []


def test_misses_are_not_cached_as_absent(backend: CountingStore, tmp_path: Path) -> None:
    cached = CachedStore(backend, ram_bytes=10_000, disk_dir=tmp_path / "c", disk_bytes=10_000)
    key = keys.log("p", 1)
    with pytest.raises(KeyNotFound):
        cached.get(key)
    assert cached.head(key) is None
    backend.store.put(key, b"landing", if_none_match=True)  # another agent lands
    assert cached.get(key)[0] == b"landing"
    assert cached.head(key) is not None


def test_ram_tier_respects_its_byte_bound(backend: CountingStore) -> None:
    cached = CachedStore(backend, ram_bytes=1_000, disk_dir=None)
    for i in range(50):
        backend.put(blob_key(i), bytes([i]) * 100)
    for i in range(50):
        cached.get(blob_key(i))
        assert cached._ram.size_bytes <= 1_000
    # LRU: the last ten fit, the eleventh most recent was evicted.
    hits_before = cached.stats.hits_ram
    for i in range(40, 50):
        cached.get(blob_key(i))
    assert cached.stats.hits_ram == hits_before + 10
    cached.get(blob_key(39))
    assert cached.stats.misses == 51


def test_objects_larger_than_a_tier_fraction_are_not_cached(
    backend: CountingStore, tmp_path: Path
) -> None:
    cached = CachedStore(backend, ram_bytes=8_000, disk_dir=tmp_path / "c", disk_bytes=8_000)
    backend.put(blob_key(1), b"x" * 1_001)  # > 1/8 of each tier
    cached.get(blob_key(1))
    cached.get(blob_key(1))
    assert cached.stats.misses == 2
    assert disk_files(tmp_path / "c") == []


def test_disk_tier_respects_its_byte_bound_and_evicts_lru(
    backend: CountingStore, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "c"
    bound = 20_000
    cached = CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=bound)
    for i in range(100):
        backend.put(blob_key(i), bytes([i]) * 1_000)
    cached.get(blob_key(0))
    for i in range(1, 100):
        cached.get(blob_key(i))
        assert disk_bytes(cache_dir) <= bound
        if i % 5 == 0:
            cached.get(blob_key(0))  # keep object 0 recently used
    assert cached.get(blob_key(0))[0] == bytes([0]) * 1_000
    assert cached.stats.hits_disk >= 20  # object 0 survived eviction as most recently used
    assert len(disk_files(cache_dir)) >= 10  # eviction stops near the bound, not at zero


def test_corrupt_disk_file_is_detected_and_refetched(
    backend: CountingStore, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "c"
    backend.put(blob_key(1), b"the true content")
    CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000).get(blob_key(1))
    (path,) = disk_files(cache_dir)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # one flipped bit in the data
    path.write_bytes(bytes(raw))

    fresh = CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000)
    assert fresh.get(blob_key(1))[0] == b"the true content"
    assert fresh.stats == CacheStats(hits_ram=0, hits_disk=0, misses=1)
    assert backend.gets == 2
    # The refetched copy replaced the corrupt file and is served from disk now.
    assert fresh.get(blob_key(1))[0] == b"the true content"
    assert fresh.stats.hits_disk == 1


@pytest.mark.parametrize("damage", ["truncate", "empty", "etag", "magic"])
def test_damaged_disk_files_never_served(
    backend: CountingStore, tmp_path: Path, damage: str
) -> None:
    cache_dir = tmp_path / "c"
    backend.put(blob_key(1), b"content" * 10)
    CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000).get(blob_key(1))
    (path,) = disk_files(cache_dir)
    raw = path.read_bytes()
    damaged = {
        "truncate": raw[:-5],
        "empty": b"",
        "etag": raw[:38] + bytes([raw[38] ^ 0xFF]) + raw[39:],
        "magic": b"XXXX" + raw[4:],
    }[damage]
    path.write_bytes(damaged)
    fresh = CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000)
    assert fresh.get(blob_key(1)) == backend.get(blob_key(1))
    assert fresh.stats.misses == 1


def test_stores_sharing_a_cache_dir_do_not_see_each_other(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    one = LocalStore(tmp_path / "one", fsync=False)
    two = LocalStore(tmp_path / "two", fsync=False)
    key = keys.log("p", 1)  # same key, different content in two stores
    one.put(key, b"one")
    two.put(key, b"two")
    cached_one = CachedStore(one, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000)
    cached_two = CachedStore(two, ram_bytes=0, disk_dir=cache_dir, disk_bytes=10_000)
    assert cached_one.get(key)[0] == b"one"
    assert cached_two.get(key)[0] == b"two"
    assert cached_one.get(key)[0] == b"one"


def test_concurrent_instances_sharing_a_dir_stay_correct_and_bounded(
    backend: CountingStore, tmp_path: Path
) -> None:
    """Four instances (as four processes would) fill and evict one directory at once."""
    cache_dir = tmp_path / "c"
    bound = 30_000
    for i in range(200):
        backend.put(blob_key(i), i.to_bytes(2, "big") * 250)
    caches = [
        CachedStore(backend, ram_bytes=0, disk_dir=cache_dir, disk_bytes=bound) for _ in range(4)
    ]
    errors: list[BaseException] = []

    def reader(cache: CachedStore, seed: int) -> None:
        try:
            for n in range(300):
                i = (n * 7 + seed * 13) % 200
                assert cache.get(blob_key(i))[0] == i.to_bytes(2, "big") * 250
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(c, s)) for s, c in enumerate(caches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # The documented slack: each sharer may add bound/16 before it rescans.
    assert disk_bytes(cache_dir) <= bound + len(caches) * (bound // 16 + 600)
    total = sum(c.stats.hits_disk + c.stats.misses + c.stats.hits_ram for c in caches)
    assert total == 4 * 300


def test_counters_are_thread_safe(backend: CountingStore) -> None:
    backend.put(blob_key(1), b"x")
    cached = CachedStore(backend, ram_bytes=10_000, disk_dir=None)
    threads = [
        threading.Thread(target=lambda: [cached.get(blob_key(1)) for _ in range(500)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cached.stats
    assert stats.hits_ram + stats.misses == 4_000
    assert stats.hit_ratio > 0.99


def test_invalid_sizes_rejected(backend: CountingStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CachedStore(backend, ram_bytes=-1)
    with pytest.raises(ValueError):
        CachedStore(backend, ram_bytes=0, disk_dir=tmp_path / "c", disk_bytes=0)
