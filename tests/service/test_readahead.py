"""ReadAhead: the same chunks and errors as its source, a bounded lead, and a source
that is always closed, whether the caller finishes, stops early or drops it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from micforge.service.readahead import ReadAhead
from tests.grpc.conftest import wait_for


class Source:
    """A generator-backed source that records what was produced and whether it closed."""

    def __init__(self, count: int, *, fail_at_end: BaseException | None = None) -> None:
        self.count = count
        self.fail_at_end = fail_at_end
        self.produced = 0
        self.closed = threading.Event()
        self.thread_names: set[str] = set()

    def __iter__(self) -> Iterator[bytes]:
        return self._run()

    def _run(self) -> Iterator[bytes]:
        try:
            for index in range(self.count):
                self.thread_names.add(threading.current_thread().name)
                self.produced += 1
                yield index.to_bytes(4, "big")
            if self.fail_at_end is not None:
                raise self.fail_at_end
        finally:
            self.closed.set()


def test_yields_every_chunk_in_order_then_closes_the_source() -> None:
    source = Source(1000)
    chunks = list(ReadAhead(iter(source), depth=4))
    assert chunks == [i.to_bytes(4, "big") for i in range(1000)]
    assert source.closed.wait(5)
    assert source.thread_names == {"micforge-read-ahead"}  # not the caller's thread


def test_an_empty_source() -> None:
    source = Source(0)
    assert list(ReadAhead(iter(source), depth=1)) == []
    assert source.closed.wait(5)


def test_the_source_error_comes_after_the_chunks_before_it() -> None:
    source = Source(10, fail_at_end=ValueError("failed its integrity check"))
    got: list[bytes] = []
    with pytest.raises(ValueError, match="integrity"):
        for chunk in ReadAhead(iter(source), depth=3):
            got.append(chunk)
    assert len(got) == 10
    assert source.closed.wait(5)


def test_an_error_before_any_chunk() -> None:
    def broken() -> Iterator[bytes]:
        raise OSError("store gone")
        yield b""  # pragma: no cover - makes this a generator

    with pytest.raises(OSError, match="store gone"):
        next(ReadAhead(broken(), depth=2))


@pytest.mark.parametrize("depth", [1, 4])
def test_it_runs_at_most_depth_chunks_ahead(depth: int) -> None:
    source = Source(100)
    ahead = ReadAhead(iter(source), depth=depth)
    # `depth` chunks wait for the caller, and the helper holds one more, waiting for room.
    assert wait_for(lambda: source.produced == depth + 1)
    threading.Event().wait(0.2)
    assert source.produced == depth + 1
    next(ahead)
    assert wait_for(lambda: source.produced == depth + 2)
    threading.Event().wait(0.2)
    assert source.produced == depth + 2
    ahead.close()
    assert source.closed.wait(5)


def test_close_stops_the_helper_and_closes_the_source() -> None:
    source = Source(10_000)
    ahead = ReadAhead(iter(source), depth=4)
    assert next(ahead) == (0).to_bytes(4, "big")
    ahead.close()
    assert source.closed.wait(5)
    produced = source.produced
    assert produced < 10_000
    assert list(ahead) == []  # iterating after close ends at once
    threading.Event().wait(0.1)
    assert source.produced == produced


def test_dropping_it_without_close_closes_the_source() -> None:
    source = Source(10_000)
    ahead = ReadAhead(iter(source), depth=2)
    next(ahead)
    del ahead
    gc.collect()
    assert source.closed.wait(5)
    assert source.produced < 10_000


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ReadAhead(iter([b"x"]), depth=0)


def test_a_close_whose_wake_up_was_missed_still_stops_the_helper() -> None:
    # A close() run by a garbage collection on the helper's own thread, between its
    # check and its wait, notifies nobody (found in review by forcing that collection):
    # the helper's timed wait must still see `closed`.
    source = Source(100)
    ahead = ReadAhead(iter(source), depth=1)
    shared = ahead._shared
    assert wait_for(lambda: shared.producer_waiting)
    with shared.lock:
        shared.closed = True  # no notify: the missed wake-up
    assert source.closed.wait(5)


def test_no_thread_for_the_helper_closes_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoThreads(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr("micforge.service.readahead.threading.Thread", NoThreads)
    source = Source(10)
    chunks = iter(source)
    next(chunks)  # started: its finally runs on close
    with pytest.raises(RuntimeError, match="new thread"):
        ReadAhead(chunks, depth=2)
    assert source.closed.is_set()
