"""Sessions: start, record (operations, decisions, conversation), abandon, rebase, list.

A session is one binary object (``sessions/{id}``) updated with If-Match, so
concurrent writers never lose an update: each change is a read-modify-write
retried on PreconditionFailed. Landing lives in ``landing.py``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from micforge import validate
from micforge.auth import Role, User
from micforge.config import Config
from micforge.core import (
    OP_DELETE,
    OP_WRITE,
    STATE_ABANDONED,
    STATE_CONFLICTED,
    STATE_LANDED,
    STATE_OPEN,
    Decision,
    Hlc,
    Message,
    Operation,
    SessionRecord,
    decode_session,
    encode_session,
)
from micforge.errors import (
    Forbidden,
    InvalidRequest,
    InvalidState,
    MicError,
    NotFound,
    TooLarge,
)
from micforge.service.blobs import BlobService
from micforge.service.common import (
    MODE_NAMES,
    MODE_VALUES,
    PAGE_LIMIT_MAX,
    ROLE_NAMES,
    ROLE_VALUES,
    STATE_NAMES,
    STATE_VALUES,
    Authorizer,
    check_page_limit,
    decode_cursor_text,
    encode_cursor_text,
    rfc3339_from_hlc,
)
from micforge.service.history import History
from micforge.service.metrics import Metrics
from micforge.storage import KeyNotFound, PreconditionFailed, Store, keys

SESSION_CAS_ATTEMPTS = 64
# SessionStore keeps the last seen version of at most this many sessions, of at most
# this many encoded bytes in all (a session larger than 1/8 of it is not kept).
SESSION_CACHE_ENTRIES = 1024
SESSION_CACHE_BYTES = 64 * 1024 * 1024
# A filtered listing reads at most this many session objects per page, then hands back a cursor.
LIST_SCAN_MAX = 2000
# A filtered listing lists this many keys at a time (at least limit + 1). Any listing
# reads at most this many sessions at once (the listing pool's threads): fewer held
# in memory, and no long queue in front of other listings sharing the pool.
LIST_FILTERED_PAGE = 256
LIST_READ_BATCH = 8


class SyncHlc:
    """One hybrid logical clock per Services, safe to share between request threads."""

    def __init__(self) -> None:
        self._hlc = Hlc()
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            return self._hlc.now()


def new_session_id(hlc: int) -> bytes:
    """16 bytes: the HLC timestamp big-endian (8) + 8 random. The HLC is strictly
    monotonic per process and wall-clock based, so ids sort by creation: exactly within
    one agent, to the millisecond across agents; the random half keeps them unique."""
    return hlc.to_bytes(8, "big") + os.urandom(8)


def as_landed(rec: SessionRecord, position: int, updated_at: int | None = None) -> SessionRecord:
    """``rec`` marked landed at ``position`` (``updated_at`` kept unless given): what the
    lander writes after its commit, and what reads show until it is written."""
    return dataclasses.replace(
        rec,
        state=STATE_LANDED,
        landed_position=position,
        attempt_position=position,
        conflict_paths=[],
        updated_at=rec.updated_at if updated_at is None else updated_at,
    )


def session_view(project: str, rec: SessionRecord) -> dict:
    """The session JSON of API.md."""
    operations = []
    for op in rec.operations:
        item: dict = {"op": "write" if op.op == OP_WRITE else "delete", "path": op.path}
        if op.op == OP_WRITE:
            item["blob_hash"] = op.blob_hash.hex() if op.blob_hash else None
        item["mode"] = MODE_NAMES.get(op.mode, "file")
        operations.append(item)
    return {
        "id": rec.id.hex(),
        "project": project,
        "goal": rec.goal,
        "state": STATE_NAMES[rec.state],
        "owner": rec.owner,
        "base_position": rec.base_position,
        "landed_position": rec.landed_position if rec.state == STATE_LANDED else None,
        "operations": operations,
        "decisions": [{"content": d.content, "at": rfc3339_from_hlc(d.at)} for d in rec.decisions],
        "conversation": [
            {
                "role": ROLE_NAMES.get(m.role, "user"),
                "content": m.content,
                "at": rfc3339_from_hlc(m.at),
            }
            for m in rec.conversation
        ],
        "conflict_paths": list(rec.conflict_paths),
        "created_at": rfc3339_from_hlc(rec.created_at),
        "updated_at": rfc3339_from_hlc(rec.updated_at),
    }


class SessionStore:
    """Load and compare-and-swap session objects (shared by sessions and landing).

    It remembers the last version of each session this process read or wrote, with its
    etag (a small LRU, ``SESSION_CACHE_ENTRIES`` / ``SESSION_CACHE_BYTES``), so that a read-modify-write by the
    process that last touched a session skips the read. That is optimistic and safe
    because a cached version is only ever used to decide a write of that same session
    with If-Match on its etag: if anyone changed the session since, the write fails
    with 412, nothing happened, and the change is decided again from a fresh read. A
    refusal (``change`` raises) or a no-op (``change`` returns None) decided from a
    cached version has no write to validate it, so it is decided again from a fresh
    read too. Reads that answer a caller (``load``) always go to the store.
    """

    def __init__(self, store: Store, metrics: Metrics, session_max_bytes: int) -> None:
        self._store = store
        self._metrics = metrics
        self._session_max_bytes = session_max_bytes
        self._lock = threading.Lock()
        # (project, sid) -> (record, etag, encoded size in bytes)
        self._versions: OrderedDict[tuple[str, str], tuple[SessionRecord, str, int]] = OrderedDict()
        self._versions_bytes = 0

    def load(self, project: str, sid: str) -> tuple[SessionRecord, str]:
        """The current version, read from the store."""
        try:
            data, etag = self._store.get(keys.session(project, sid))
        except KeyNotFound:
            raise NotFound(f"session {sid} not found") from None
        rec = decode_session(data)
        self._remember(project, sid, rec, etag, len(data))
        return rec, etag

    def last_seen(self, project: str, sid: str) -> tuple[SessionRecord, str] | None:
        """The version this process last read or wrote, possibly stale: only for deciding
        a write with If-Match on its etag (see the class docstring)."""
        with self._lock:
            version = self._versions.get((project, sid))
            if version is None:
                return None
            self._versions.move_to_end((project, sid))
            return version[0], version[1]

    def create(self, project: str, rec: SessionRecord) -> None:
        sid = rec.id.hex()
        data = encode_session(rec)
        etag = self._store.put(keys.session(project, sid), data, if_none_match=True)
        self._remember(project, sid, rec, etag, len(data))

    def write(self, project: str, rec: SessionRecord, etag: str) -> str:
        data = encode_session(rec)
        if len(data) > self._session_max_bytes:
            raise TooLarge(
                f"session would be {len(data)} bytes; the limit is {self._session_max_bytes}"
            )
        sid = rec.id.hex()
        try:
            new_etag = self._store.put(keys.session(project, sid), data, if_match=etag)
        except PreconditionFailed:
            self._forget(project, sid)
            raise
        self._remember(project, sid, rec, new_etag, len(data))
        return new_etag

    def update(
        self, project: str, sid: str, change: Callable[[SessionRecord], SessionRecord | None]
    ) -> SessionRecord:
        """Read-modify-write until the compare-and-swap wins. ``change`` may raise to refuse,
        or return None to leave the session as it is; it may be called more than once."""
        version = self.last_seen(project, sid)
        for _ in range(SESSION_CAS_ATTEMPTS):
            cached = version is not None
            rec, etag = version if version is not None else self.load(project, sid)
            version = None
            try:
                changed = change(rec)
            except MicError:
                if not cached:
                    raise
                continue  # a refusal decided from a cached version: decide again, fresh
            if changed is None:
                if cached:
                    continue  # a no-op needs a fresh read to be sure
                return rec
            try:
                self.write(project, changed, etag)
            except PreconditionFailed:
                self._metrics.cas_retries.inc()
                continue
            except TooLarge:
                if not cached:
                    raise
                continue  # the size of a change to a cached version: decide again, fresh
            # Any other error of the write (Unavailable: it may or may not have happened)
            # reaches the caller: deciding the change again could apply it twice.
            return changed
        raise InvalidState(f"session {sid} is changing too fast; try again")

    def _remember(
        self, project: str, sid: str, rec: SessionRecord, etag: str, size_bytes: int
    ) -> None:
        with self._lock:
            self._pop((project, sid))
            if size_bytes > SESSION_CACHE_BYTES // 8:
                return
            self._versions[(project, sid)] = (rec, etag, size_bytes)
            self._versions_bytes += size_bytes
            while (
                len(self._versions) > SESSION_CACHE_ENTRIES
                or self._versions_bytes > SESSION_CACHE_BYTES
            ):
                self._pop(next(iter(self._versions)))

    def _forget(self, project: str, sid: str) -> None:
        with self._lock:
            self._pop((project, sid))

    def _pop(self, key: tuple[str, str]) -> None:
        old = self._versions.pop(key, None)
        if old is not None:
            self._versions_bytes -= old[2]


class SessionService:
    def __init__(
        self,
        config: Config,
        store: Store,
        authorizer: Authorizer,
        blobs: BlobService,
        history: History,
        sessions: SessionStore,
        hlc: SyncHlc,
        read_pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self._config = config
        # Listings read their sessions on it, several at once (an S3 GET is a round
        # trip each); None reads them one by one. Nothing else may use it to wait.
        self._read_pool = read_pool
        self._store = store
        self._authz = authorizer
        self._blobs = blobs
        self._history = history
        self._sessions = sessions
        self._hlc = hlc
        self._limits = config.limits

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, user: User, project: str, goal: object) -> dict:
        self._authz.require(user, project, Role.WRITE)
        if not isinstance(goal, str):
            raise InvalidRequest("goal must be a string")
        if len(goal.encode("utf-8", "surrogatepass")) > self._limits.goal_max_bytes:
            raise TooLarge(f"goal is longer than {self._limits.goal_max_bytes} bytes")
        _check_text(goal, "goal")
        now = self._hlc.now()
        rec = SessionRecord(
            id=new_session_id(now),
            state=STATE_OPEN,
            base_position=self._history.tip(project),
            landed_position=0,
            attempt_position=0,
            owner=user.id,
            goal=goal,
            created_at=now,
            updated_at=now,
            operations=[],
            decisions=[],
            conversation=[],
            conflict_paths=[],
        )
        self._sessions.create(project, rec)
        return session_view(project, rec)

    def get(self, user: User, project: str, sid: str) -> dict:
        self._authz.require(user, project, Role.READ)
        rec, _ = self._sessions.load(project, validate.session_id(sid))
        return session_view(project, self._settled(project, rec))

    def _settled(self, project: str, rec: SessionRecord) -> SessionRecord:
        """``rec`` as the log says it is: landed if its record is at the session's attempt
        position though the session was never marked so (its lander's store failed
        after the commit: LandingService._finish). Only shown; the next land of the
        session writes the mark. One read, only for a session with an attempt noted."""
        if rec.state not in (STATE_OPEN, STATE_CONFLICTED) or rec.attempt_position == 0:
            return rec
        own = self._history.own_landing(project, rec.id, rec.attempt_position)
        return rec if own is None else as_landed(rec, own.position)

    def list(
        self,
        user: User,
        project: str,
        state: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Sessions in creation order. ``next_cursor`` is None once no further session
        matches; a filtered page stops after LIST_SCAN_MAX reads and then hands back a
        cursor whatever it found, so only then may the following page be empty."""
        self._authz.require(user, project, Role.READ)
        if state is not None and state not in STATE_VALUES:
            raise InvalidRequest(f"state must be one of {sorted(STATE_VALUES)}")
        check_page_limit(limit)
        prefix = keys.sessions_prefix(project)
        # The key after which the next page starts: past every session this one looked at,
        # except a match it found beyond the limit (that one proves there is a next page).
        resume_after = keys.session(project, decode_cursor(cursor, project)) if cursor else None
        wanted = STATE_VALUES[state] if state is not None else None
        found: list[dict] = []
        scanned = 0
        # A filtered page may read far more sessions than it returns: list more keys
        # at a time. Unfiltered, the key after the limit only proves a next page.
        page_keys = limit + 1 if wanted is None else max(limit + 1, LIST_FILTERED_PAGE)
        while True:
            page = self._store.list(
                prefix, start_after=resume_after, limit=min(PAGE_LIMIT_MAX, page_keys)
            )
            if not page:
                return found, None
            read_ahead: dict[str, bytes | None] = {}
            for n, key in enumerate(page):
                if len(found) == limit and wanted is None:
                    return found, encode_cursor(project, resume_after)  # a listed key matches
                if scanned == LIST_SCAN_MAX:
                    return found, encode_cursor(project, resume_after)
                if key not in read_ahead:
                    # Read the next few sessions at once (unfiltered, never past the limit).
                    wanted_reads = LIST_READ_BATCH
                    if wanted is None:
                        wanted_reads = min(wanted_reads, limit - len(found))
                    batch = page[n : n + min(wanted_reads, LIST_SCAN_MAX - scanned)]
                    read_ahead = dict(zip(batch, self._read_sessions(batch), strict=True))
                scanned += 1
                data = read_ahead.pop(key)
                if data is None:  # gone since it was listed
                    resume_after = key
                    continue
                rec = self._settled(project, decode_session(data))
                if wanted is None or rec.state == wanted:
                    if len(found) == limit:
                        return found, encode_cursor(project, resume_after)
                    found.append(session_view(project, rec))
                resume_after = key

    def _read_sessions(self, keys_: list[str]) -> list[bytes | None]:
        """The stored bytes of each session key, in order (None for one not found), read
        on the read pool several at once."""

        def read(key: str) -> bytes | None:
            try:
                return self._store.get(key)[0]
            except KeyNotFound:
                return None

        if self._read_pool is None or len(keys_) < 2:
            return [read(key) for key in keys_]
        return list(self._read_pool.map(read, keys_))

    def abandon(self, user: User, project: str, sid: str) -> dict:
        validate.session_id(sid)
        role = self._authz.require(user, project, Role.WRITE)

        def change(rec: SessionRecord) -> SessionRecord | None:
            _require_owner(rec, user, role)
            if rec.state == STATE_ABANDONED:
                return None
            if rec.state == STATE_LANDED:
                raise InvalidState("session has landed; it cannot be abandoned")
            # As for a change: refused while a landing attempt may still commit (its
            # lander would then mark the session landed over the abandon, and both
            # calls would have answered 200), and once that attempt is our record.
            attempt = self._resolve_attempt(project, rec, doing="abandoned")
            return dataclasses.replace(
                rec, state=STATE_ABANDONED, attempt_position=attempt, updated_at=self._hlc.now()
            )

        return session_view(project, self._sessions.update(project, sid, change))

    def rebase(self, user: User, project: str, sid: str) -> dict:
        """Move the base to the current tip and reopen (after a conflict, once re-done).
        Operations are kept; later ones still replace earlier ones per path."""
        validate.session_id(sid)
        role = self._authz.require(user, project, Role.WRITE)

        def change(rec: SessionRecord) -> SessionRecord:
            _require_owner(rec, user, role)
            if rec.state in (STATE_LANDED, STATE_ABANDONED):
                raise InvalidState(f"the session is {STATE_NAMES[rec.state]}: it cannot be rebased")
            attempt = self._resolve_attempt(project, rec, doing="rebased")
            return dataclasses.replace(
                rec,
                state=STATE_OPEN,
                base_position=self._history.tip(project),
                attempt_position=attempt,
                conflict_paths=[],
                updated_at=self._hlc.now(),
            )

        return session_view(project, self._sessions.update(project, sid, change))

    # -- recording ------------------------------------------------------------------------

    def record_operations(self, user: User, project: str, sid: str, ops: object) -> dict:
        """Record a batch (a list: errors name the operation's index) or one operation (a
        dict), as a client sends them; later operations on a path replace earlier ones."""
        validate.session_id(sid)
        role = self._authz.require(user, project, Role.WRITE)
        parsed = self._parse_operations(project, ops)
        limit = self._limits.operations_per_session_max

        def change(rec: SessionRecord) -> SessionRecord:
            _require_owner(rec, user, role)
            self._require_open(project, rec)
            attempt = self._resolve_attempt(project, rec)
            by_path = {op.path: op for op in rec.operations}
            for op in parsed:
                by_path[op.path] = op
            if len(by_path) > limit:
                raise TooLarge(
                    f"the session would hold {len(by_path)} operations; the limit is {limit}"
                )
            operations = [by_path[p] for p in sorted(by_path, key=lambda p: p.encode("utf-8"))]
            return dataclasses.replace(
                rec, operations=operations, attempt_position=attempt, updated_at=self._hlc.now()
            )

        return session_view(project, self._sessions.update(project, sid, change))

    def record_decision(self, user: User, project: str, sid: str, content: object) -> dict:
        text = self._entry_text(content, "content")

        def append(rec: SessionRecord) -> SessionRecord:
            now = self._hlc.now()
            return dataclasses.replace(
                rec, decisions=[*rec.decisions, Decision(content=text, at=now)], updated_at=now
            )

        return self._append(user, project, sid, append)

    def record_conversation(
        self, user: User, project: str, sid: str, role: object, content: object
    ) -> dict:
        if role not in ROLE_VALUES:
            raise InvalidRequest(f"role must be one of {sorted(ROLE_VALUES)}")
        text = self._entry_text(content, "content")

        def append(rec: SessionRecord) -> SessionRecord:
            now = self._hlc.now()
            message = Message(role=ROLE_VALUES[role], content=text, at=now)
            return dataclasses.replace(
                rec, conversation=[*rec.conversation, message], updated_at=now
            )

        return self._append(user, project, sid, append)

    def _append(
        self, user: User, project: str, sid: str, append: Callable[[SessionRecord], SessionRecord]
    ) -> dict:
        validate.session_id(sid)
        role = self._authz.require(user, project, Role.WRITE)

        def change(rec: SessionRecord) -> SessionRecord:
            _require_owner(rec, user, role)
            self._require_open(project, rec)
            # History may still be added while a landing is in flight (it changes no
            # path), but not once the log shows the session landed.
            if self._history.own_landing(project, rec.id, rec.attempt_position):
                raise InvalidState("session has landed")
            return append(rec)

        return session_view(project, self._sessions.update(project, sid, change))

    # -- helpers --------------------------------------------------------------------------

    def _entry_text(self, content: object, what: str) -> str:
        if not isinstance(content, str):
            raise InvalidRequest(f"{what} must be a string")
        if len(content.encode("utf-8", "surrogatepass")) > self._limits.entry_max_bytes:
            raise TooLarge(f"{what} is longer than {self._limits.entry_max_bytes} bytes")
        _check_text(content, what)
        return content

    def _parse_operations(self, project: str, ops: object) -> list[Operation]:
        """The one check of operations from the wire (REST's JSON, gRPC's messages as dicts).

        Shapes first, then the number of distinct paths (the session will hold at least
        those, so a batch that cannot fit is refused before any blob is looked up), then
        each write's blob. A batch is bounded in size by the request body limit only.
        """
        if isinstance(ops, dict):
            indexed: list[tuple[int | None, object]] = [(None, ops)]
        elif isinstance(ops, list):
            indexed = list(enumerate(ops))
        else:
            raise InvalidRequest("operations must be a list")
        requested: list[tuple[int | None, _Requested]] = []
        for index, raw in indexed:
            try:
                requested.append((index, _parse_operation(raw)))
            except InvalidRequest as error:
                raise _naming(index, error) from None
        limit = self._limits.operations_per_session_max
        paths_count = len({op.path for _, op in requested})
        if paths_count > limit:
            raise TooLarge(
                f"{paths_count} paths in one batch; a session holds at most {limit} operations"
            )
        sizes: dict[str, int] = {}
        parsed: list[Operation] = []
        for index, op in requested:
            if op.blob_hash_hex is None:
                parsed.append(
                    Operation(op=op.op, path=op.path, blob_hash=None, mode=op.mode, size=0)
                )
                continue
            if op.blob_hash_hex not in sizes:
                try:
                    sizes[op.blob_hash_hex] = self._blobs.size_of(project, op.blob_hash_hex)
                except NotFound:
                    error = InvalidRequest(
                        f"blob {op.blob_hash_hex} is not stored in project {project}",
                        blob_hash=op.blob_hash_hex,
                    )
                    raise _naming(index, error) from None
            parsed.append(
                Operation(
                    op=op.op,
                    path=op.path,
                    blob_hash=bytes.fromhex(op.blob_hash_hex),
                    mode=op.mode,
                    size=sizes[op.blob_hash_hex],
                )
            )
        return parsed

    def _require_open(self, project: str, rec: SessionRecord) -> None:
        if rec.state != STATE_OPEN:
            raise InvalidState(f"session is {STATE_NAMES[rec.state]}, not open")

    def _resolve_attempt(self, project: str, rec: SessionRecord, doing: str = "changed") -> int:
        """The attempt position to keep when the session changes: 0 once a recorded landing
        attempt is known to have lost its position. A change while an attempt may still
        commit is refused, so a landing never misses an operation recorded after it began,
        nor lands a session abandoned after it began."""
        if rec.attempt_position == 0:
            return 0
        record = self._history.find(project, rec.attempt_position)
        if record is None:
            # Its lander may be running still, or may have failed (a 503, a crash) with
            # the outcome unknown: only log/{attempt} can tell, and it does not exist yet.
            raise InvalidState(
                "a landing of this session is in progress (noted at position"
                f" {rec.attempt_position}, not committed yet); retry when it has finished."
                " If that landing failed, landing the session again resumes it; the session"
                " takes changes again once any landing fills that position"
            )
        if record.session_id == rec.id:
            raise InvalidState(f"session has landed; it cannot be {doing}")
        return 0


@dataclasses.dataclass(frozen=True)
class _Requested:
    """One operation as asked for, checked in shape but not yet against stored blobs."""

    op: int
    path: str
    blob_hash_hex: str | None  # writes only
    mode: int


def _parse_operation(raw: object) -> _Requested:
    """One operation from the wire. Absent and null are the same for every field (generic
    serializers write null for an unset optional field). A delete carries no blob_hash and
    no mode but "file", which is how the session JSON shows a delete: what is refused is a
    field that would be dropped silently, not the server's own output sent back."""
    if not isinstance(raw, dict):
        raise InvalidRequest("an operation must be an object")
    kind = raw.get("op")
    if kind is None:
        raise InvalidRequest("missing field 'op'")
    if kind not in ("write", "delete"):
        raise InvalidRequest(f"op must be 'write' or 'delete', got {kind!r:.40}")
    if raw.get("path") is None:
        raise InvalidRequest("missing field 'path'")
    path = validate.path(raw["path"])
    mode_name = raw.get("mode")
    if mode_name is not None and (not isinstance(mode_name, str) or mode_name not in MODE_VALUES):
        raise InvalidRequest(f"mode must be one of file, exec, symlink; got {mode_name!r:.40}")
    blob_hash = raw.get("blob_hash")
    if kind == "delete":
        if blob_hash is not None:
            raise InvalidRequest("a delete takes no blob_hash (leave it out, or null)")
        if mode_name not in (None, "file"):
            raise InvalidRequest(
                f"a delete takes no mode, got {mode_name!r}; leave it out (or null, or 'file')"
            )
        return _Requested(op=OP_DELETE, path=path, blob_hash_hex=None, mode=MODE_VALUES["file"])
    if blob_hash is None:
        raise InvalidRequest("missing field 'blob_hash'")
    return _Requested(
        op=OP_WRITE,
        path=path,
        blob_hash_hex=validate.hash_hex(blob_hash, "blob_hash"),
        mode=MODE_VALUES[mode_name or "file"],
    )


def _naming(index: int | None, error: InvalidRequest) -> InvalidRequest:
    """``error`` naming the operation's index in its batch (none for a single operation)."""
    if index is None:
        return error
    return InvalidRequest(f"operations[{index}]: {error.message}", **error.details)


def _require_owner(rec: SessionRecord, user: User, role: Role) -> None:
    if rec.owner != user.id and role < Role.OWNER:
        raise Forbidden("only the session's owner or a project owner may change it")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8") from None


def encode_cursor(project: str, session_key: str | None) -> str:
    """The cursor resuming a listing of ``project`` after ``session_key``. It names the
    project, so a cursor handed out for another project's listing is refused."""
    assert session_key is not None  # a page hands a cursor only after looking at a session
    session_id = session_key.rsplit("/", 1)[1]
    return encode_cursor_text(f"{project}/{session_id}")


def decode_cursor(cursor: str, project: str) -> str:
    """The session id after which a listing of ``project`` resumes."""
    try:
        cursor_project, _, session_id = decode_cursor_text(cursor).rpartition("/")
        if cursor_project == project:
            return validate.session_id(session_id)
    except (ValueError, InvalidRequest):
        pass
    raise InvalidRequest("cursor is not one this server handed out for this listing")
