"""Reading a project's history: the head hint, the true tip, landing records and rollups.

The landing log is gapless: position n is only ever written (with
If-None-Match) by a lander that saw n-1, so "log/n exists" is monotone in n and
the tip can be found by galloping + binary search from any position known to
exist.

Two things are remembered per project, both safe to be stale:

- the highest position this process has seen exist (a record read or written, a
  probe that hit, a lost If-None-Match on ``log/{n}``). Positions never stop
  existing, so this is a valid starting point for the gallop, which proves the
  tip by finding the first missing position: a stale value costs probes, never
  a wrong tip. It replaces reading the head object before each tip search.
- the last version of the head object this process read or wrote, with its
  etag, so that advancing the head is one If-Match write when nobody else moved
  it; on 412 the head is read again (``advance_head``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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


# Projects whose seen position and head version one process remembers; the least
# recently used are forgotten past this (each is a hint: forgetting costs a read).
PROJECTS_REMEMBERED_MAX = 10_000


class History:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        pool: ThreadPoolExecutor,
        *,
        projects_remembered_max: int = PROJECTS_REMEMBERED_MAX,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._pool = pool
        self._lock = threading.Lock()
        self._remembered_max = projects_remembered_max
        # project -> highest position seen to exist; project -> head version last
        # read or written. Least recently used first; both bounded (a server may
        # host any number of projects over its life).
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._heads: OrderedDict[str, HeadHint] = OrderedDict()

    # -- what this process has seen -------------------------------------------------------

    def saw(self, project: str, position: int) -> None:
        """Note that ``log/{position}`` exists (it never stops existing)."""
        with self._lock:
            if position > self._seen.get(project, 0):
                self._seen[project] = position
            self._touch(self._seen, project)

    def seen(self, project: str) -> int | None:
        """The highest position this process has seen exist; None if it never looked
        (or looked so long ago, among so many projects, that it forgot)."""
        with self._lock:
            return self._seen.get(project)

    def _remember_head(self, project: str, hint: HeadHint) -> None:
        with self._lock:
            known = self._heads.get(project)
            if known is None or hint.position >= known.position:
                self._heads[project] = hint
            self._touch(self._heads, project)
        self.saw(project, hint.position)

    def _touch(self, remembered: OrderedDict[str, Any], project: str) -> None:
        """Mark ``project`` used (it must be in ``remembered``); forget the least recently
        used past the bound. Under ``self._lock``."""
        if project in remembered:
            remembered.move_to_end(project)
        while len(remembered) > self._remembered_max:
            remembered.popitem(last=False)

    # -- head and tip ---------------------------------------------------------------------

    def read_head(self, project: str) -> HeadHint:
        try:
            data, etag = self._store.get(keys.head(project))
        except KeyNotFound:
            hint = HeadHint(0, EMPTY_TREE_HASH, 0, None)
        else:
            head = decode_head(data)
            hint = HeadHint(head.position, head.tree_hash, head.hlc, etag)
        self._remember_head(project, hint)
        return hint

    def exists(self, project: str, position: int, *, fetch: bool = False) -> bool:
        """Whether ``log/{position}`` exists. ``fetch`` reads the record (through the cache)
        instead of a HEAD: the same one request, and a lander needs the records past its
        base for the conflict check anyway."""
        if fetch:
            return self.find(project, position) is not None  # find() notes what it saw
        found = self._store.head(keys.log(project, position)) is not None
        if found:
            self.saw(project, position)
        return found

    def tip(self, project: str, hint: HeadHint | None = None, *, fetch: bool = False) -> int:
        """The highest landed position, proven by finding the first missing one.

        The search starts at the highest position known to exist: what this process has
        seen, or ``hint``. The head object is read only by a process that has never seen
        this project, or when the first probe shows that what it saw is stale (the head,
        which every lander advances, is then likely nearer the tip than our last look)."""
        seen = self.seen(project)
        if seen is None and hint is None:
            hint = self.read_head(project)
        low = max(seen or 0, hint.position if hint is not None else 0)
        if not self.exists(project, low + 1, fetch=fetch):
            return low
        low += 1
        if hint is None:
            low = max(low, self.read_head(project).position)
        # Gallop: find a missing position above ``low``.
        step = 1
        high = low + 1
        while self.exists(project, high, fetch=fetch):
            low = high
            step *= 2
            high = low + step
        # Binary search in (low, high): low exists, high does not.
        while high - low > 1:
            mid = (low + high) // 2
            if self.exists(project, mid, fetch=fetch):
                low = mid
            else:
                high = mid
        return low

    def advance_head(
        self, project: str, position: int, tree_hash: bytes, hlc: int, known: HeadHint | None = None
    ) -> None:
        """Move the head hint forward to ``position`` (never backward). Safe to repeat.
        The first attempt uses ``known`` or the head version this process last read or
        wrote: one If-Match write when nobody moved the head since; a stale version only
        costs a 412 and a read. A version saying the head is already at or past
        ``position`` is final whatever its age: the head never moves backward."""
        data = encode_head(Head(position=position, tree_hash=tree_hash, hlc=hlc))
        if known is None:
            with self._lock:
                known = self._heads.get(project)
        for _ in range(64):
            hint = known if known is not None else self.read_head(project)
            known = None
            if hint.position >= position:
                return
            try:
                if hint.etag is None:
                    etag = self._store.put(keys.head(project), data, if_none_match=True)
                else:
                    etag = self._store.put(keys.head(project), data, if_match=hint.etag)
            except PreconditionFailed:
                self._metrics.cas_retries.inc()
                continue
            self._remember_head(project, HeadHint(position, tree_hash, hlc, etag))
            return
        # The hint is an optimisation: failing to advance it never loses a landing.

    # -- records --------------------------------------------------------------------------

    def record(self, project: str, position: int) -> LandingRecord:
        record = self.find(project, position)
        if record is None:
            raise NotFound(f"position {position} not found")
        return record

    def find(self, project: str, position: int) -> LandingRecord | None:
        """The landing record at ``position``, or None if nothing landed there yet (one GET)."""
        try:
            data, _ = self._store.get(keys.log(project, position))
        except KeyNotFound:
            return None
        self.saw(project, position)
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

    def tree(self, project: str, pending: Mapping[bytes, bytes] | None = None) -> Tree:
        """A tree reader over this project's nodes (through the cache). A node that should
        exist but does not is lost data, never "absent": it raises Corrupt. ``pending``
        (node hash -> bytes) are nodes not written yet, read before the store: a lander
        looks at the tree it is about to commit."""

        def load(node_hash: bytes) -> bytes:
            if pending is not None and (data := pending.get(node_hash)) is not None:
                return data
            try:
                return self._store.get(keys.tree_node(project, node_hash.hex()))[0]
            except KeyNotFound:
                raise Corrupt(
                    f"tree node {node_hash.hex()} of project {project} is missing"
                ) from None

        return Tree(load)

    def tree_at(self, project: str, position: int) -> bytes:
        """Root hash of the tree after ``position`` (0 = the empty tree). A head version
        this process remembers at that very position names it too: the tree after a
        position never changes, however old the head version is."""
        if position == 0:
            return EMPTY_TREE_HASH
        with self._lock:
            head = self._heads.get(project)
        if head is not None and head.position == position:
            return head.tree_hash
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
