"""Coordinator-free landing (DESIGN.md "Landing"; the protocol as built is docs/landing.md).

The landing record ``log/{n}`` written with If-None-Match IS the commit: exactly
one writer creates position n. Everything after it (head hint, session state,
rollups) is safe to crash before and to repeat.

Idempotence rests on ``attempt_position`` in the session: before writing
``log/{n}`` a lander records n there with If-Match. A session can therefore only
ever have landed at its current attempt position, and that position never moves
on until ``log/{attempt}`` is seen to hold another session. So a retry (or a
second agent landing the same session) looks at one record to know whether the
session already landed — also for sessions with no paths, which no bloom finds.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from micforge import validate
from micforge.auth import Role, User
from micforge.config import Config
from micforge.core import (
    OP_WRITE,
    STATE_CONFLICTED,
    STATE_LANDED,
    STATE_OPEN,
    Bloom,
    LandingRecord,
    Operation,
    SessionRecord,
    encode_landing,
    operation_paths,
)
from micforge.core.tree import PATH_BYTES_MAX, Tree, TreeEdit
from micforge.errors import Conflict, Forbidden, InvalidState, Unavailable
from micforge.service.common import STATE_NAMES, Authorizer, backoff_sleep
from micforge.service.history import ROLLUP_SIZES, TOP_LEVEL, History
from micforge.service.metrics import Metrics
from micforge.service.sessions import SessionStore, SyncHlc, as_landed, session_view
from micforge.storage import PreconditionFailed, Store, keys

log = logging.getLogger("micforge.service")


@dataclass
class CheckResult:
    conflicts: set[str] = field(default_factory=set)
    own_position: int | None = None  # a landing record of this very session was met
    objects_read: int = 0


class ConflictChecker:
    """Finds the landings in a position range that touched any of a session's paths.

    Breadth-first over the rollup levels, highest first: a complete window whose
    rollup says "none of these paths" is skipped whole; a window whose rollup is
    positive (or missing: a missing rollup is never read as "no conflict") is
    examined one level down; at level 0 the exact path lists of the landing
    records decide, so a bloom false positive never reaches the user. The cost is
    at most ~2*99 objects per level plus one per positive window: it grows with
    log(history), not history.
    """

    def __init__(self, history: History, pool: ThreadPoolExecutor) -> None:
        self._history = history
        self._pool = pool

    def check(
        self, project: str, session_id: bytes, paths: list[str], lo: int, hi: int, tip: int
    ) -> CheckResult:
        result = CheckResult()
        if lo > hi or not paths:
            return result
        wanted = set(paths)
        segments = [(lo, hi)]
        for level in range(TOP_LEVEL, 0, -1):
            size = ROLLUP_SIZES[level]
            complete: list[tuple[int, int, int]] = []  # (window start, segment lo, segment hi)
            descend: list[tuple[int, int]] = []
            for seg_lo, seg_hi in segments:
                p = seg_lo
                while p <= seg_hi:
                    start = ((p - 1) // size) * size + 1
                    end = start + size - 1
                    piece = (p, min(seg_hi, end))
                    if end <= tip:
                        complete.append((start, *piece))
                    else:
                        descend.append(piece)
                    p = end + 1
            rollups = self._map(
                lambda w, lv=level: self._history.rollup(project, lv, w[0]), complete
            )
            result.objects_read += len(complete)
            for (_, seg_lo, seg_hi), rollup in zip(complete, rollups, strict=True):
                if rollup is None or _may_contain_any(rollup.bloom, paths):
                    descend.append((seg_lo, seg_hi))
            segments = sorted(descend)
        positions = [p for seg_lo, seg_hi in segments for p in range(seg_lo, seg_hi + 1)]
        records = self._history.records(project, positions)
        result.objects_read += len(positions)
        for record in records:
            if record.session_id == session_id:
                result.own_position = record.position
                return result
            result.conflicts.update(wanted.intersection(record.paths))
        return result

    def _map(self, fn, items: list) -> list:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))


def file_directory_collisions(tree: Tree, parent_root: bytes, root: bytes) -> list[str]:
    """Where ``root``, the tree a landing would make of ``parent_root``, holds a path
    as a file and as a directory at once: a file added with a file among its
    ancestors (``a`` and ``a/b``), or added where entries lie below it. No checkout
    can hold both, so such a landing is refused as a conflict. Both sides of each
    collision are returned, sorted by bytes; empty if there is none.

    Only added paths are examined: a path that was a file in ``parent_root``
    already had no entries below it nor a file above it (else it could not be
    checked out either), and rewriting or deleting a file makes no new collision.
    A collision already in ``parent_root`` (made before landings checked for them)
    does not stop later landings that leave it alone.

    Cost: one diff, then ``ceilings`` for all the probes (one call per 10,000; each distinct
    ancestor directory of the added paths: is it a file? each added path ``p``:
    is there an entry at or above ``p/`` that starts with it?), in which each node
    is loaded and checked once."""
    added = [change.path for change in tree.diff(parent_root, root) if change.change == "added"]
    if not added:
        return []
    below: dict[str, list[str]] = {}  # ancestor directory -> the added paths under it
    for path in added:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            below.setdefault("/".join(parts[:depth]), []).append(path)
    directories = list(below)
    # A path of the greatest length can have nothing below it.
    probed = [p for p in added if len(p.encode("utf-8")) < PATH_BYTES_MAX]
    ceilings = tree.ceilings(root, directories + [p + "/" for p in probed])
    found: set[str] = set()
    for directory, ceiling in zip(directories, ceilings[: len(directories)], strict=True):
        if ceiling is not None and ceiling.path == directory:  # a file, not a directory
            found.add(directory)
            found.update(below[directory])
    for path, ceiling in zip(probed, ceilings[len(directories) :], strict=True):
        if ceiling is not None and ceiling.path.startswith(path + "/"):
            found.update((path, ceiling.path))
    return sorted(found, key=lambda p: p.encode("utf-8"))


def _may_contain_any(bloom_bytes: bytes, paths: list[str]) -> bool:
    with Bloom.from_bytes(bloom_bytes) as bloom:
        return bloom.may_contain_any(paths)


class LandingService:
    def __init__(
        self,
        config: Config,
        store: Store,
        authorizer: Authorizer,
        history: History,
        sessions: SessionStore,
        hlc: SyncHlc,
        metrics: Metrics,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._config = config
        self._store = store
        self._authz = authorizer
        self._history = history
        self._sessions = sessions
        self._hlc = hlc
        self._metrics = metrics
        self._pool = pool
        self._checker = ConflictChecker(history, pool)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self.last_check: CheckResult | None = None  # for diagnostics and tests

    def land(self, user: User, project: str, sid: str) -> dict:
        """Land a session; returns {"position", "tree_hash", "session"}.
        Raises Conflict(paths) (the session becomes conflicted), InvalidState, Unavailable."""
        validate.session_id(sid)
        role = self._authz.require(user, project, Role.WRITE)
        # Conflicts already ruled out: (base, upto] for exactly this base and path set.
        # Operations may be recorded between two attempts, so the key is the paths too.
        checked: tuple[int, frozenset[str], int] | None = None
        refresh = False  # the next attempt must read the session from the store
        for attempt in range(self._config.landing_max_attempts):
            # The session as this process last saw it, if it did (docs/landing.md, "Versions
            # this process remembers"): every decision taken from it below is either final
            # whatever its age (landed; the log holds our record) or validated by an
            # If-Match write of the session before it has an effect (the attempt note, the
            # conflicted mark); a refusal taken from it is taken again from a fresh read.
            version = None if refresh else self._sessions.last_seen(project, sid)
            refresh = False
            if version is None:
                # The session and the tip are read in parallel (one round trip less).
                loading = self._pool.submit(self._sessions.load, project, sid)
                try:
                    tip = self._history.tip(project, fetch=True)
                finally:
                    rec, etag = loading.result()
            else:
                rec, etag = version
                tip = self._history.tip(project, fetch=True)
            if rec.owner != user.id and role < Role.OWNER:
                raise Forbidden("only the session's owner or a project owner may land it")
            if rec.state == STATE_LANDED:
                return self._result(project, rec)
            if rec.attempt_position > tip + 1:
                # Our tip was read before another lander of this session noted its attempt
                # (log/{attempt-1} exists): look again rather than move the attempt backward.
                continue
            # attempt <= tip+1 here; a pending attempt (tip+1) has no record yet.
            own = self._history.own_landing(project, rec.id, rec.attempt_position)
            if own is not None:
                return self._finish(project, sid, own, current=rec)
            if rec.state != STATE_OPEN:
                if version is not None:
                    refresh = True
                    continue
                raise InvalidState(f"session is {STATE_NAMES[rec.state]}; only open sessions land")

            paths = operation_paths(rec.operations)  # the path column, no objects
            key = (rec.base_position, frozenset(paths))
            lo = (
                checked[2] if checked is not None and checked[:2] == key else rec.base_position
            ) + 1
            check = self._checker.check(project, rec.id, paths, lo, tip, tip)
            self.last_check = check
            self._metrics.conflict_check_reads.inc(check.objects_read)
            if check.own_position is not None:
                return self._finish(
                    project, sid, self._history.record(project, check.own_position), current=rec
                )
            if check.conflicts:
                marked = self._mark_conflicted(project, sid, key, sorted(check.conflicts), tip)
                if marked is None:
                    continue  # the session changed (e.g. rebased) since it was checked
                return marked
            checked = (*key, tip)

            position = tip + 1
            parent_tree = self._history.tree_at(project, tip)  # a cached record mostly
            tree_hash, nodes = self._build_tree(project, parent_tree, rec)
            with self._history.tree(project, pending=dict(nodes)) as tree:
                collisions = file_directory_collisions(tree, parent_tree, tree_hash)
            if collisions:
                marked = self._mark_conflicted(
                    project,
                    sid,
                    key,
                    collisions,
                    tip,
                    reason="a file would also be a directory",
                    operations=rec.operations,
                )
                if marked is None:
                    continue  # the session changed (e.g. rebased) since it was read
                return marked
            # Note the attempt before the commit point. The If-Match also proves that the
            # operations we built from are still the session's current ones. It does not
            # depend on the tree, so it is written while the tree nodes are.
            noted = dataclasses.replace(rec, attempt_position=position, updated_at=self._hlc.now())
            note = self._pool.submit(self._sessions.write, project, noted, etag)
            try:
                self._put_nodes(project, nodes)
            finally:
                try:
                    noted_etag = note.result()
                except PreconditionFailed:
                    noted_etag = None
            if noted_etag is None:
                self._metrics.cas_retries.inc()
                continue
            record = LandingRecord(
                position=position,
                session_id=rec.id,
                parent_tree=parent_tree,
                tree_hash=tree_hash,
                hlc=self._hlc.now(),
                author=rec.owner,
                goal=rec.goal,
                paths=sorted(set(paths), key=lambda p: p.encode("utf-8")),
            )
            try:
                self._store.put(
                    keys.log(project, position), encode_landing(record), if_none_match=True
                )
            except PreconditionFailed:
                # Someone else took this position: back off, then only the new range needs checking.
                self._history.saw(project, position)
                self._metrics.cas_retries.inc()
                with self._rng_lock:
                    rng = random.Random(self._rng.random())
                backoff_sleep(
                    attempt,
                    self._config.landing_backoff_base_ms,
                    self._config.landing_backoff_cap_ms,
                    rng,
                )
                continue
            self._metrics.landings.inc()
            return self._finish(project, sid, record, noted=(noted, noted_etag))
        raise Unavailable(
            f"landing did not win a position after {self._config.landing_max_attempts} attempts; "
            "nothing was landed, try again"
        )

    # -- steps ----------------------------------------------------------------------------

    def _build_tree(
        self, project: str, parent_tree: bytes, rec: SessionRecord
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The root of ``parent_tree`` with the session's operations applied, and the
        new nodes (not written yet)."""
        edits = [
            TreeEdit(path=op.path, blob_hash=op.blob_hash, mode=op.mode, size=op.size)
            if op.op == OP_WRITE
            else TreeEdit(path=op.path, blob_hash=None)
            for op in rec.operations
        ]
        with self._history.tree(project) as tree:
            return tree.apply(parent_tree, edits)

    def _put_nodes(self, project: str, nodes: Iterable[tuple[bytes, bytes]]) -> None:
        def put(node: tuple[bytes, bytes]) -> None:
            node_hash, data = node
            try:
                self._store.put(keys.tree_node(project, node_hash.hex()), data, if_none_match=True)
            except PreconditionFailed:
                pass  # content-addressed: already there is as good as written

        nodes = list(nodes)
        if len(nodes) <= 1:
            for node in nodes:
                put(node)
        else:
            list(self._pool.map(put, nodes))

    def _mark_conflicted(
        self,
        project: str,
        sid: str,
        checked: tuple[int, frozenset[str]],
        paths: list[str],
        tip: int,
        reason: str = "",
        operations: Sequence[Operation] | None = None,
    ) -> dict | None:
        """Mark the session conflicted with ``paths`` and raise Conflict (its message
        ``reason``, if given); with ``operations`` (a file/directory collision, which
        depends on more than the paths and may vanish as the tip moves), only if the
        session still has exactly those and no attempt past ``tip``; or return its
        result if it landed meanwhile; raise InvalidState if it was abandoned or conflicted
        meanwhile (or before this call, seen open only in a stale copy);
        or return None if its base or paths changed since the check (a concurrent rebase
        or new operations): the caller must check again."""
        moved = False
        marked: list[SessionRecord | None] = [None]  # the version this call wrote, if any

        def change(rec: SessionRecord) -> SessionRecord | None:
            nonlocal moved
            moved = False  # decided per version: update() may call this more than once
            if rec.state != STATE_OPEN:
                return None
            if (rec.base_position, frozenset(operation_paths(rec.operations))) != checked:
                moved = True
                return None
            if operations is not None and (
                list(rec.operations) != list(operations) or rec.attempt_position > tip
            ):
                # A collision holds at this tip only (a later landing may delete
                # either side), so it is marked only if the operations are unchanged
                # and no lander has since noted an attempt from a later tip (which
                # may have landed the session): else look again from a fresh tip.
                moved = True
                return None
            # Any earlier attempt position is <= tip and was checked: it lost, forget it.
            attempt = rec.attempt_position if rec.attempt_position > tip else 0
            marked[0] = dataclasses.replace(
                rec,
                state=STATE_CONFLICTED,
                conflict_paths=paths,
                attempt_position=attempt,
                updated_at=self._hlc.now(),
            )
            return marked[0]

        rec = self._sessions.update(project, sid, change)
        if rec.state == STATE_LANDED:
            return self._result(project, rec)
        if moved:
            return None
        if rec is not marked[0]:
            # Not open, read fresh (update() returns a no-op only from a fresh read):
            # abandoned since the check, or conflicted already, by another lander of
            # this session or before this call began and seen open only in this
            # process's stale copy. The answer is that of any conflicted session, 409
            # invalid_state, so that it never depends on which server's copy was how
            # old (found by a multi-server race test: a second 409 "conflict" from a
            # server that had seen the session open, "invalid_state" elsewhere). Unless
            # the log says a lander of it committed meanwhile: the log decides.
            own = self._history.own_landing(project, rec.id, rec.attempt_position)
            if own is not None:
                return self._finish(project, sid, own, current=rec)
            raise InvalidState(f"session is {STATE_NAMES[rec.state]}; only open sessions land")
        self._metrics.conflicts.inc()
        raise Conflict(
            f"{len(paths)} path(s) conflict: {reason}"
            if reason
            else f"{len(paths)} path(s) changed since the session's base",
            paths=paths,
        )

    def _finish(
        self,
        project: str,
        sid: str,
        record: LandingRecord,
        *,
        noted: tuple[SessionRecord, str] | None = None,
        current: SessionRecord | None = None,
    ) -> dict:
        """Post-commit steps, each idempotent: head hint and session state (in parallel,
        they are independent), then rollups. ``noted`` (the session as this lander last
        wrote it, with its etag) saves the re-read when nothing moved; the head is advanced
        from the version this process last saw, too.

        The landing is committed already (its record is in the log), so a store that
        fails these steps does not fail the call: it answers the landing, with the
        session as marked landed (from ``noted`` or ``current``, the version the caller
        read), and leaves the steps to whoever comes next. A later land of the session
        marks it; reads show it landed meanwhile (SessionService settles a session whose
        attempt the log holds); the head is a hint that readers correct by probing the
        log; a missing rollup is rebuilt by the reader that needs it (DESIGN.md)."""
        head = self._pool.submit(
            self._history.advance_head, project, record.position, record.tree_hash, record.hlc
        )

        def mark(rec: SessionRecord) -> SessionRecord | None:
            if rec.state == STATE_LANDED:
                return None
            return as_landed(rec, record.position, updated_at=self._hlc.now())

        landed: SessionRecord | None = None
        try:
            if noted is not None:
                landed = mark(noted[0])
                try:
                    self._sessions.write(project, landed, noted[1])  # type: ignore[arg-type]
                except PreconditionFailed:
                    landed = None
            if landed is None:
                landed = self._sessions.update(project, sid, mark)
        except Unavailable as error:
            base = noted[0] if noted is not None else current
            if base is None:
                raise
            landed = mark(base) or base
            log.warning(
                "landing of session %s committed at %s/%d; marking the session landed"
                " failed (%s): left to the next land or read of it",
                sid,
                project,
                record.position,
                error,
            )
        for step, run in (
            ("advancing the head hint", head.result),
            (
                "building rollups",
                lambda: self._history.build_completed_rollups(project, record.position),
            ),
        ):
            try:
                run()
            except Unavailable as error:
                log.warning(
                    "landing %s/%d committed; %s failed (%s): left to later landings and reads",
                    project,
                    record.position,
                    step,
                    error,
                )
        return {
            "position": record.position,
            "tree_hash": record.tree_hash.hex(),
            "session": session_view(project, landed),
        }

    def _result(self, project: str, rec: SessionRecord) -> dict:
        record = self._history.record(project, rec.landed_position)
        return {
            "position": rec.landed_position,
            "tree_hash": record.tree_hash.hex(),
            "session": session_view(project, rec),
        }
