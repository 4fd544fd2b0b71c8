"""Bloom filters through the C ABI: membership, false-positive rate, set operations, bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micforge import core
from micforge.core import Bloom
from micforge.core.bloom import BLOOM_BITS_MAX, FROM_BYTES_MAX_BITS

path_strategy = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=40,
)


@given(st.lists(path_strategy, max_size=200))
def test_no_false_negatives(paths: list[str]) -> None:
    with Bloom.for_items(max(len(paths), 1), 0.01) as bloom:
        bloom.add_many(paths)
        assert all(bloom.may_contain(p) for p in paths)
        if paths:
            assert bloom.may_contain_any(paths[-1:])


@pytest.mark.parametrize(
    "items, fp_rate", [(1_000, 0.01), (10_000, 0.01), (5_000, 0.001), (2_000, 0.1)]
)
def test_false_positive_rate_within_one_and_a_half_times(items: int, fp_rate: float) -> None:
    bloom = Bloom.for_items(items, fp_rate)
    bloom.add_many([f"present/{i}" for i in range(items)])
    probes = 200_000
    false_positives = sum(bloom.may_contain(f"absent/{i}") for i in range(probes))
    measured = false_positives / probes
    assert measured <= 1.5 * fp_rate, (measured, fp_rate, bloom)


def test_batch_and_single_adds_agree() -> None:
    paths = [f"dir{i % 7}/file{i}.txt" for i in range(500)]
    one = Bloom.with_geometry(1 << 14, 6)
    for p in paths:
        one.add(p)
    many = Bloom.with_geometry(1 << 14, 6)
    many.add_many(paths)
    assert one.to_bytes() == many.to_bytes()


def test_bad_batch_adds_nothing() -> None:
    bloom = Bloom.with_geometry(1 << 12, 4)
    before = bloom.to_bytes()
    with pytest.raises(core.InvalidArgument):
        bloom.add_many(["ok/path", "bad\0path"])
    with pytest.raises(core.InvalidArgument):
        bloom.add_many(["ok/path", ""])
    with pytest.raises(core.InvalidArgument):
        bloom.add_many(["ok", "x" * (core.PATH_BYTES_MAX + 1)])
    with pytest.raises(core.InvalidArgument):
        bloom.add_many("not-a-list")  # type: ignore[arg-type]
    with pytest.raises(core.InvalidArgument):
        bloom.add_many(["ok", "\ud800"])  # not encodable as UTF-8
    with pytest.raises(core.InvalidArgument):
        bloom.add("\ud800")
    assert bloom.to_bytes() == before


def test_intersects_and_union() -> None:
    a = Bloom.landing()
    b = Bloom.landing()
    a.add_many(["src/a.py", "src/b.py"])
    b.add("docs/c.md")
    assert not a.intersects(b)  # 14 vs 7 bits of 2^23: a collision would be astronomically rare
    b.add("src/b.py")
    assert a.intersects(b)
    c = Bloom.landing()
    c.union_in_place(a)
    c.union_in_place(b)
    assert all(c.may_contain(p) for p in ["src/a.py", "src/b.py", "docs/c.md"])
    assert 2.5 < c.estimated_count() < 3.5
    small = Bloom.with_geometry(1 << 10, 7)
    with pytest.raises(core.InvalidArgument):
        a.intersects(small)
    with pytest.raises(core.InvalidArgument):
        a.union_in_place(small)


def test_geometry_validation() -> None:
    for bits, k in [(100, 3), (32, 3), (1 << 33, 3), (1 << 10, 0), (1 << 10, 33)]:
        with pytest.raises(core.InvalidArgument):
            Bloom.with_geometry(bits, k)
    for fp in [0.0, 1.0, -0.5, float("nan")]:
        with pytest.raises(core.InvalidArgument):
            Bloom.for_items(100, fp)
    with pytest.raises(core.LimitExceeded):
        Bloom.for_items(10**15, 1e-9)
    assert Bloom.landing().bits == core.LANDING_BLOOM_BITS == 1 << 23
    assert Bloom.landing().k == core.LANDING_BLOOM_K == 7


def test_landing_golden_bytes() -> None:
    # Pins the path hash, the bit schedule and the sparse encoding (docs/formats.md).
    bloom = Bloom.landing()
    bloom.add("src/main.zig")
    assert bloom.to_bytes().hex() == (
        "4d49434201010700000080000000000007e6b513eedf1cad90b801eedf1ceedf1cad90b801eedf1c"
    )


@settings(max_examples=50)
@given(
    st.lists(path_strategy, max_size=300),
    st.sampled_from([(1 << 6, 3), (1 << 12, 5), (1 << 23, 7)]),
)
def test_serialization_round_trip(paths: list[str], geometry: tuple[int, int]) -> None:
    bloom = Bloom.with_geometry(*geometry)
    bloom.add_many(paths)
    data = bloom.to_bytes()
    copy = Bloom.from_bytes(data)
    assert (copy.bits, copy.k) == geometry
    assert copy.to_bytes() == data
    assert all(copy.may_contain(p) for p in paths)
    dense_bytes = 16 + geometry[0] // 8
    assert len(data) <= dense_bytes  # the smaller encoding is chosen


def test_dense_encoding_is_chosen_when_smaller() -> None:
    bloom = Bloom.with_geometry(64, 3)
    bloom.add_many([f"p{i}" for i in range(40)])
    data = bloom.to_bytes()
    assert data[5] == 0 and len(data) == 16 + 8
    assert Bloom.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"MICB",
        b"XICB\x01\x00\x03\x00" + (64).to_bytes(8, "little") + bytes(8),
        b"MICB\x02\x00\x03\x00" + (64).to_bytes(8, "little") + bytes(8),
        b"MICB\x01\x00\x03\x00" + (64).to_bytes(8, "little") + bytes(7),
        b"MICB\x01\x00\x00\x00" + (64).to_bytes(8, "little") + bytes(8),
        b"MICB\x01\x00\x03\x00" + (96).to_bytes(8, "little") + bytes(12),
        b"MICB\x01\x01\x03\x00" + (64).to_bytes(8, "little") + b"\x02\x05\x00",
        b"MICB\x01\x01\x03\x00" + (64).to_bytes(8, "little") + b"\x02\x3f\x01",
        b"MICB\x01\x01\x03\x00" + (1 << 40).to_bytes(8, "little") + b"\x00",
    ],
)
def test_corrupt_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(core.Corrupt):
        Bloom.from_bytes(data)


def _empty_sparse(bits: int) -> bytes:
    return b"MICB\x01\x01\x07\x00" + bits.to_bytes(8, "little") + b"\x00"


def test_from_bytes_refuses_filters_larger_than_max_bits() -> None:
    # 17 well-formed bytes declaring 2^32 bits would make the library allocate
    # 512 MiB; the default limit refuses them before anything is allocated.
    assert len(_empty_sparse(BLOOM_BITS_MAX)) == 17
    with pytest.raises(core.LimitExceeded):
        Bloom.from_bytes(_empty_sparse(BLOOM_BITS_MAX))
    with pytest.raises(core.LimitExceeded):
        Bloom.from_bytes(_empty_sparse(FROM_BYTES_MAX_BITS * 2))
    with Bloom.from_bytes(_empty_sparse(FROM_BYTES_MAX_BITS)) as at_limit:
        assert at_limit.bits == FROM_BYTES_MAX_BITS
    with pytest.raises(core.Corrupt):  # malformed is Corrupt, whatever it declares
        Bloom.from_bytes(_empty_sparse(BLOOM_BITS_MAX)[:16])

    small = Bloom.with_geometry(1 << 12, 3)
    small.add("a/b")
    data = small.to_bytes()
    with pytest.raises(core.LimitExceeded):
        Bloom.from_bytes(data, max_bits=(1 << 12) - 1)
    assert Bloom.from_bytes(data, max_bits=1 << 12).to_bytes() == data
    assert Bloom.from_bytes(data, max_bits=1 << 80).to_bytes() == data  # above the format's ceiling
    with pytest.raises(core.InvalidArgument):
        Bloom.from_bytes(data, max_bits=-1)


def test_closed_bloom_raises_and_close_is_idempotent() -> None:
    bloom = Bloom.landing()
    bloom.close()
    bloom.close()
    with pytest.raises(core.InvalidHandle):
        bloom.add("a")
    assert "closed" in repr(bloom)
