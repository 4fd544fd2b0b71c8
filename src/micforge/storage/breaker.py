"""Fail fast while an object store endpoint does not answer at all.

An S3 endpoint that accepts connections and never answers (or drops every
connection) costs each call its full timeouts and retries, and each waiting
call holds a server worker: with enough of them every worker waits, and even
requests that need no storage (``/api/mic/me``, ``/metrics``) go unanswered.
After ``failures`` transport failures in a row (timeouts, refused or dropped
connections; any HTTP answer, errors and throttling included, proves the
endpoint alive and resets the count), the breaker opens: calls fail at once
with ``StorageUnavailable`` for ``cooldown_s``. Then one call at a time goes
through as a probe; its answer closes the breaker, its failure opens it for
another cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from micforge.storage.base import StorageUnavailable


class CircuitBreaker:
    """Thread-safe. ``failures`` 0 disables it (every call goes through)."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        probe_lease_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures_to_open = failures
        self._cooldown_s = cooldown_s
        # A probe that never reports (its thread died between send and answer) stops
        # counting as in flight after this long, so that another may go.
        self._probe_lease_s = probe_lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until: float | None = None  # None: closed
        self._probe: tuple[int, float] | None = None  # (thread id, lease end)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def before_call(self, what: str) -> None:
        """Raise StorageUnavailable if the call must not go out now."""
        if self._failures_to_open <= 0:
            return
        now = self._clock()
        with self._lock:
            if self._open_until is None:
                return
            me = threading.get_ident()
            if self._probe is not None and self._probe[0] == me:
                return  # the probe's own retries
            probe_free = self._probe is None or self._probe[1] <= now
            if now >= self._open_until and probe_free:
                self._probe = (me, now + self._probe_lease_s)
                return
            wait_s = max(0.0, self._open_until - now)
        raise StorageUnavailable(
            f"{what}: the store's endpoint did not answer its last {self._consecutive} "
            f"attempts; failing fast (next try in {wait_s:.1f}s)"
        )

    def answered(self) -> None:
        """The endpoint answered (any HTTP status): close."""
        with self._lock:
            self._consecutive = 0
            self._open_until = None
            self._probe = None

    def no_answer(self) -> None:
        """A transport failure: no answer at all."""
        if self._failures_to_open <= 0:
            return
        now = self._clock()
        with self._lock:
            self._consecutive += 1
            probe_failed = self._probe is not None and self._probe[0] == threading.get_ident()
            if probe_failed or (
                self._open_until is None and self._consecutive >= self._failures_to_open
            ):
                self._open_until = now + self._cooldown_s
                self._probe = None
