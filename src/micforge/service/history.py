"""Reading a project's history: the head hint, the true tip, landing records and rollups.

The landing log is gapless: position n is only ever written (with
If-None-Match) by a lander that saw n-1, so "log/n exists" is monotone in n and
the tip can be found by galloping + binary search from the head hint.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from micforge.core import (
    Bloom,
    Head,
    LandingRecord,
    Rollup,
    decode_head,
    decode_landing,
    decode_rollup,
    encode_head,
    encode_rollup,
)
from micforge.core.tree import EMPTY_TREE_HASH, Tree
from micforge.errors import Corrupt, NotFound
from micforge.service.metrics import Metrics
from micforge.storage import KeyNotFound, PreconditionFailed, Store, keys

ROLLUP_SIZES = keys.ROLLUP_LEVELS  # {1: 100, 2: 10_000, 3: 1_000_000}
TOP_LEVEL = max(ROLLUP_SIZES)


@dataclass(frozen=True)
class HeadHint:
    position: int
    tree_hash: bytes
    hlc: int
    etag: str | None  # None: no head object yet


class History:
    def __init__(self, store: Store, metrics: Metrics, pool: ThreadPoolExecutor) -> None:
        self._store = store
        self._metrics = metrics
        self._pool = pool

    # -- head and tip ---------------------------------------------------------------------

    def read_head(self, project: str) -> HeadHint:
        try:
            data, etag = self._store.get(keys.head(project))
        except KeyNotFound:
            return HeadHint(0, EMPTY_TREE_HASH, 0, None)
        head = decode_head(data)
        return HeadHint(head.position, head.tree_hash, head.hlc, etag)

    def exists(self, project: str, position: int) -> bool:
        return self._store.head(keys.log(project, position)) is not None

    def tip(self, project: str, hint: HeadHint | None = None) -> int:
        """The highest landed position: the head hint, then probes past it."""
        low = (hint or self.read_head(project)).position  # known to exist (or 0)
        if not self.exists(project, low + 1):
            return low
        # Gallop: find a missing position above ``low``.
        step = 1
        high = low + 1
        while self.exists(project, high):
            low = high
            step *= 2
            high = low + step
        # Binary search in (low, high): low exists, high does not.
        while high - low > 1:
            mid = (low + high) // 2
            if self.exists(project, mid):
                low = mid
            else:
                high = mid
        return low

    def advance_head(
        self, project: str, position: int, tree_hash: bytes, hlc: int, known: HeadHint | None = None
    ) -> None:
        """Move the head hint forward to ``position`` (never backward). Safe to repeat.
        ``known``, a hint read earlier, saves a read when nobody moved the head since."""
        data = encode_head(Head(position=position, tree_hash=tree_hash, hlc=hlc))
        for _ in range(64):
            hint = known if known is not None else self.read_head(project)
            known = None
            if hint.position >= position:
                return
            try:
                if hint.etag is None:
                    self._store.put(keys.head(project), data, if_none_match=True)
                else:
                    self._store.put(keys.head(project), data, if_match=hint.etag)
                return
            except PreconditionFailed:
                self._metrics.cas_retries.inc()
        # The hint is an optimisation: failing to advance it never loses a landing.

    # -- records --------------------------------------------------------------------------

    def record(self, project: str, position: int) -> LandingRecord:
        try:
            data, _ = self._store.get(keys.log(project, position))
        except KeyNotFound:
            raise NotFound(f"position {position} not found") from None
        return decode_landing(data)

    def find(self, project: str, position: int) -> LandingRecord | None:
        """The landing record at ``position``, or None if nothing landed there yet (one GET)."""
        try:
            data, _ = self._store.get(keys.log(project, position))
        except KeyNotFound:
            return None
        return decode_landing(data)

    def own_landing(
        self, project: str, session_id: bytes, attempt_position: int
    ) -> LandingRecord | None:
        """The record at a session's attempt position if it holds that session: the only
        place the session can have been committed (docs/landing.md, attempt position)."""
        if attempt_position == 0:
            return None
        record = self.find(project, attempt_position)
        return record if record is not None and record.session_id == session_id else None

    def records(self, project: str, positions: list[int]) -> list[LandingRecord]:
        """Read several landing records in parallel (object stores are latency-bound)."""
        if len(positions) <= 1:
            return [self.record(project, p) for p in positions]
        return list(self._pool.map(lambda p: self.record(project, p), positions))

    def tree(self, project: str) -> Tree:
        """A tree reader over this project's nodes (through the cache). A node that should
        exist but does not is lost data, never "absent": it raises Corrupt."""

        def load(node_hash: bytes) -> bytes:
            try:
                return self._store.get(keys.tree_node(project, node_hash.hex()))[0]
            except KeyNotFound:
                raise Corrupt(
                    f"tree node {node_hash.hex()} of project {project} is missing"
                ) from None

        return Tree(load)

    def tree_at(self, project: str, position: int) -> bytes:
        """Root hash of the tree after ``position`` (0 = the empty tree)."""
        if position == 0:
            return EMPTY_TREE_HASH
        return self.record(project, position).tree_hash

    # -- rollups --------------------------------------------------------------------------

    def rollup(self, project: str, level: int, start: int) -> Rollup | None:
        try:
            data, _ = self._store.get(keys.rollup(project, level, start))
        except KeyNotFound:
            return None
        return decode_rollup(data)

    def build_rollup(self, project: str, level: int, start: int) -> bool:
        """Write the rollup of the complete window [start, start + size). Idempotent:
        If-None-Match makes two builders harmless. Children that are missing are
        built first (a crashed builder is repaired by the next one)."""
        size = ROLLUP_SIZES[level]
        key = keys.rollup(project, level, start)
        if self._store.head(key) is not None:
            return False
        bloom = Bloom.landing()
        try:
            if level == 1:
                for record in self.records(project, list(range(start, start + size))):
                    bloom.add_many(record.paths)
            else:
                child = ROLLUP_SIZES[level - 1]
                starts = list(range(start, start + size, child))
                for child_start in starts:
                    rollup = self.rollup(project, level - 1, child_start)
                    if rollup is None:
                        self.build_rollup(project, level - 1, child_start)
                        rollup = self.rollup(project, level - 1, child_start)
                        if rollup is None:
                            raise NotFound(f"rollup L{level - 1}/{child_start} could not be built")
                    with Bloom.from_bytes(rollup.bloom) as child_bloom:
                        bloom.union_in_place(child_bloom)
            data = encode_rollup(
                Rollup(level=level, start_position=start, count=size, bloom=bloom.to_bytes())
            )
        finally:
            bloom.close()
        try:
            self._store.put(key, data, if_none_match=True)
        except PreconditionFailed:
            return False
        self._metrics.rollups_built.inc()
        return True

    def build_completed_rollups(self, project: str, position: int) -> None:
        """After landing ``position``: build every rollup whose window it completes, and
        repair the previous window's rollup of each level if its builder crashed."""
        for level, size in sorted(ROLLUP_SIZES.items()):
            if position % size != 0:
                continue
            self.build_rollup(project, level, position - size + 1)
            if position > size:
                self.build_rollup(project, level, position - 2 * size + 1)
