"""The hybrid logical clock: monotonic under wall-clock steps, merges remote time."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micforge import core
from micforge.core import Hlc, hlc_pack, hlc_unpack


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 1 << 40), st.integers(0, (1 << 60) - 1)),
        max_size=200,
    )
)
def test_monotonic_under_clock_steps_and_remote_updates(steps: list[tuple[bool, int, int]]) -> None:
    clock = Hlc()
    last = 0
    for is_update, wall_ms, remote in steps:
        value = clock.update(remote, wall_ms) if is_update else clock.now(wall_ms)
        assert value > last
        if is_update:
            assert value > remote
        assert hlc_unpack(value)[0] >= wall_ms
        last = value


def test_wall_clock_step_back_keeps_the_millisecond_and_counts() -> None:
    clock = Hlc()
    assert clock.now(1_000) == hlc_pack(1_000, 0)
    assert clock.now(1_000) == hlc_pack(1_000, 1)
    assert clock.now(5) == hlc_pack(1_000, 2)
    assert clock.now(2_000) == hlc_pack(2_000, 0)


def test_logical_overflow_bumps_the_millisecond() -> None:
    clock = Hlc()
    assert clock.update(hlc_pack(7, 65_534), 0) == hlc_pack(7, 65_535)
    assert clock.now(0) == hlc_pack(8, 0)


def test_default_wall_clock_is_now() -> None:
    import time

    before = time.time_ns() // 1_000_000
    ms, _ = hlc_unpack(Hlc().now())
    assert before <= ms <= time.time_ns() // 1_000_000


def test_range_errors() -> None:
    clock = Hlc()
    with pytest.raises(core.InvalidArgument):
        clock.now(1 << 48)
    with pytest.raises(core.InvalidArgument):
        clock.update(-1, 0)
    with pytest.raises(core.LimitExceeded):
        clock.update((1 << 64) - 1, 0)
    with pytest.raises(core.InvalidArgument):
        hlc_pack(1 << 48, 0)
    with pytest.raises(core.InvalidArgument):
        hlc_pack(0, 1 << 16)
    assert hlc_unpack(hlc_pack(123, 45)) == (123, 45)


def test_shared_between_threads_never_repeats() -> None:
    clock = Hlc()
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        for _ in range(5_000):
            out.append(clock.now(1_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = [v for out in results for v in out]
    assert len(set(values)) == len(values)
    for out in results:
        assert out == sorted(out)


def test_close_is_idempotent_and_final() -> None:
    with Hlc() as clock:
        clock.now(1)
    clock.close()
    with pytest.raises(core.InvalidHandle):
        clock.now(2)
