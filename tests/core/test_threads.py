"""libmic-core has no global state: many threads calling it at once (cffi
releases the GIL during each call) get the same answers as one thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from micforge import core


def _work(seed: int) -> tuple[bytes, bytes, bytes, bool]:
    paths = sorted(f"t{seed}/dir{i % 5}/f{i}" for i in range(300))
    ops = [
        core.Operation(core.OP_WRITE, p, core.blob_hash(p.encode()), core.MODE_FILE, 1)
        for p in paths
    ]
    session = core.SessionRecord(bytes([seed]) * 16, core.STATE_OPEN, 0, 0, 0, "o", "g", 1, 2, ops)
    encoded = b""
    for _ in range(20):
        encoded = core.encode_session(session)
        assert core.decode_session(encoded) == session
    bloom = core.Bloom.landing()
    bloom.add_many(paths)
    other = core.Bloom.from_bytes(core.session_bloom(encoded).to_bytes())
    return encoded, bloom.to_bytes(), core.blake3(encoded * 50), bloom.intersects(other)


def test_concurrent_calls_match_sequential_results() -> None:
    seeds = list(range(8)) * 3
    expected = {seed: _work(seed) for seed in range(8)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(_work, seeds))
    for seed, result in zip(seeds, results, strict=True):
        assert result == expected[seed]
        assert result[3]  # the session's bloom and a bloom of the same paths intersect


def test_one_clock_shared_by_threads() -> None:
    clock = core.Hlc()
    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(lambda _: [clock.now(5) for _ in range(2000)], range(8)))
    stamps = [s for batch in batches for s in batch]
    assert len(set(stamps)) == len(stamps)
