"""Read-ahead: a chunk iterator driven by a helper thread, a few chunks ahead.

A large blob is served as it is read: each chunk is read from the store,
decoded, hashed (verification), then sent. Sent by grpc's synchronous server,
the next chunk is not read until the previous one is on its way, so reading and
sending add up. Most of the reading work releases the GIL (file or socket
reads, zstd, BLAKE3), so a helper thread that produces the next chunks while
the caller sends the current one overlaps the two: GetBlob of 256 MiB took
13-17% less time in A/B runs (docs/benchmarks.md, gRPC).

The helper runs at most ``depth`` chunks ahead, so memory stays bounded. The
source's own error (a blob that fails verification at its end) reaches the
caller after every chunk produced before it, as it would without the helper.
``close()`` (or dropping the iterator) stops the helper without waiting for
it: the helper closes the source on its own thread (a generator may only be
closed by the thread that runs it) once the chunk it is reading, if any, is
read; a slow store read delays that by as long as the read takes.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator

# How often a helper waiting for room looks at `closed` again (see produce).
_PRODUCER_RECHECK_S = 1.0


class _Shared:
    """What the helper thread and the consumer share; the helper holds only this, so
    that a consumer dropped without ``close()`` is collected and stops the helper."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.lock = threading.Condition()
        self.ready: collections.deque[bytes] = collections.deque()
        self.done = False  # the source ended, or raised
        self.error: BaseException | None = None
        self.closed = False  # the consumer is gone
        # Each side wakes the other only when it waits: a notify per chunk would cost
        # GIL time on every chunk for nothing.
        self.consumer_waiting = False
        self.producer_waiting = False

    def produce(self, source: Iterator[bytes]) -> None:
        try:
            for chunk in source:
                with self.lock:
                    while len(self.ready) >= self.depth and not self.closed:
                        self.producer_waiting = True
                        # With a timeout: a close() can come in on this very thread, from a
                        # garbage collection run between the check above and the wait (the
                        # lock is re-entrant), and its notify would find no waiter yet.
                        self.lock.wait(_PRODUCER_RECHECK_S)
                        self.producer_waiting = False
                    if self.closed:
                        return
                    self.ready.append(chunk)
                    if self.consumer_waiting:
                        self.lock.notify()
        except BaseException as error:  # noqa: BLE001 - the consumer raises it
            with self.lock:
                self.error = error
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # the source's own error is kept above
                    close()
            with self.lock:
                self.done = True
                self.lock.notify_all()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.ready.clear()
            self.lock.notify_all()


class ReadAhead:
    """Iterates ``source`` on a helper thread, up to ``depth`` chunks ahead of the caller.

    The caller must ``close()`` it when done early (a cancelled stream); dropping it
    does the same. Iterating after ``close()`` ends at once."""

    def __init__(self, source: Iterator[bytes], depth: int) -> None:
        if depth < 1:
            raise ValueError("read-ahead depth must be at least 1")
        self._shared = _Shared(depth)
        try:
            threading.Thread(
                target=self._shared.produce, args=(source,), name="micforge-read-ahead", daemon=True
            ).start()
        except BaseException:
            # No thread (RuntimeError: can't start new thread): close the source here,
            # so that its store reader is released now rather than when it is collected.
            close = getattr(source, "close", None)
            if close is not None:
                close()
            raise

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> bytes:
        shared = self._shared
        with shared.lock:
            while not shared.ready and not shared.done and not shared.closed:
                shared.consumer_waiting = True
                shared.lock.wait()
                shared.consumer_waiting = False
            if shared.ready:
                chunk = shared.ready.popleft()
                if shared.producer_waiting:
                    shared.lock.notify()
                return chunk
            if shared.error is not None and not shared.closed:
                error, shared.error = shared.error, None
                raise error
            raise StopIteration

    def close(self) -> None:
        """Stop the helper; the source is closed on its thread. Does not wait."""
        self._shared.close()

    def __del__(self) -> None:
        shared = getattr(self, "_shared", None)  # absent if __init__ refused its arguments
        if shared is not None:
            shared.close()
