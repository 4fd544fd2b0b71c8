"""Fail fast while an object store endpoint does not answer at all.

An S3 endpoint that accepts connections and never answers (or drops every
connection) costs each call its full timeouts and retries, and each waiting
call holds a server worker: with enough of them every worker waits, and even
requests that need no storage (``/api/mic/me``, ``/metrics``) go unanswered.
After ``failures`` transport failures in a row (any HTTP answer, errors and
throttling included, proves the endpoint alive and resets the count), the
breaker opens: calls fail at once with ``BreakerOpen`` (a
``StorageUnavailable``; nothing was sent) for ``cooldown_s``. Then one call
at a time goes through as a probe; its answer closes the breaker, its
failure opens it for another cooldown.

Failures are of two kinds. No connection (refused, connect timeout) and no
answer within the read timeout open the breaker as soon as there are
``failures`` of them in a row. A connection closed under a request (a reset,
a close before the whole response) is weaker evidence: a healthy endpoint or a load balancer
may drop many pooled connections at once, and each of their requests' retry
then succeeds. Those failures open the breaker only when the run of failures
has lasted ``drop_span_s`` (an endpoint that drops every connection for that
long is down; a burst of resets is not).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from micforge.storage.base import StorageUnavailable


class BreakerOpen(StorageUnavailable):
    """The breaker refused the call: it never went out, so it changed nothing.

    Unlike a lost response, this is not ambiguous (a conditional write refused
    here did not happen), and retrying it before the cooldown ends is futile.
    S3Store raises it only for a call's first attempt: a retry refused after an
    earlier attempt went out unanswered is a plain StorageUnavailable.
    """


DROP_SPAN_S = 1.0


class CircuitBreaker:
    """Thread-safe. ``failures`` 0 disables it (every call goes through)."""

    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        probe_lease_s: float,
        clock: Callable[[], float] = time.monotonic,
        drop_span_s: float = DROP_SPAN_S,
    ) -> None:
        self._failures_to_open = failures
        self._cooldown_s = cooldown_s
        self._drop_span_s = drop_span_s
        # A probe that never reports (its thread died between send and answer) stops
        # counting as in flight after this long, so that another may go.
        self._probe_lease_s = probe_lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._run_started = 0.0  # when the run of failures in a row began
        self._run_has_silence = False  # a failure in the run was no connection or no answer
        self._open_until: float | None = None  # None: closed
        self._probe: tuple[int, float] | None = None  # (thread id, lease end)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def before_call(self, what: str) -> None:
        """Raise BreakerOpen if the call must not go out now."""
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
            if now >= self._open_until:
                when = "another call is probing it now"
            else:
                when = f"next try in {self._open_until - now:.1f}s"
            failed = self._consecutive
        raise BreakerOpen(
            f"{what}: the store's endpoint did not answer its last {failed} "
            f"attempts; failing fast ({when})"
        )

    def answered(self) -> None:
        """The endpoint answered (any HTTP status): close."""
        with self._lock:
            self._consecutive = 0
            self._open_until = None
            self._probe = None

    def no_answer(self, *, dropped: bool = False) -> None:
        """A transport failure: no answer at all. ``dropped``: the connection was
        closed under the request (weaker evidence; see the module doc)."""
        if self._failures_to_open <= 0:
            return
        now = self._clock()
        with self._lock:
            if self._consecutive == 0:
                self._run_started = now
                self._run_has_silence = False
            self._consecutive += 1
            self._run_has_silence = self._run_has_silence or not dropped
            probe_failed = self._probe is not None and self._probe[0] == threading.get_ident()
            convincing = self._run_has_silence or now - self._run_started >= self._drop_span_s
            if probe_failed or (
                self._open_until is None
                and self._consecutive >= self._failures_to_open
                and convincing
            ):
                self._open_until = now + self._cooldown_s
                self._probe = None

    def probe_ended(self) -> None:
        """The call on this thread ended with neither an answer nor a transport
        failure (a local error): if it was the probe, another call may probe now
        rather than after the probe's lease."""
        with self._lock:
            if self._probe is not None and self._probe[0] == threading.get_ident():
                self._probe = None
