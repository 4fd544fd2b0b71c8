"""Binary codecs of the stored objects (docs/formats.md): dataclasses <-> bytes.

The C side takes and returns columns (spans of one buffer), so each direction
is one FFI call and whole columns are converted at once here: sizes with one
``struct`` call, all paths with one ``decode().split("\\0")`` (a path never
contains NUL). ``decode_*`` raise ``Corrupt``; ``encode_*`` raise
``InvalidArgument`` or ``LimitExceeded`` and never produce bytes their decoder
would reject.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from micforge.core._ffi import InvalidArgument, check, ffi, lib, take_bytes
from micforge.core.bloom import Bloom

OP_WRITE: int = lib.MIC_OP_WRITE
OP_DELETE: int = lib.MIC_OP_DELETE
MODE_FILE: int = lib.MIC_MODE_FILE
MODE_EXEC: int = lib.MIC_MODE_EXEC
MODE_SYMLINK: int = lib.MIC_MODE_SYMLINK
STATE_OPEN: int = lib.MIC_STATE_OPEN
STATE_LANDED: int = lib.MIC_STATE_LANDED
STATE_CONFLICTED: int = lib.MIC_STATE_CONFLICTED
STATE_ABANDONED: int = lib.MIC_STATE_ABANDONED
ROLE_USER: int = lib.MIC_ROLE_USER
ROLE_AGENT: int = lib.MIC_ROLE_AGENT
ROLE_SYSTEM: int = lib.MIC_ROLE_SYSTEM
HEAD_BYTES: int = lib.MIC_HEAD_BYTES
SESSION_ID_BYTES: int = lib.MIC_SESSION_ID_BYTES
HASH_BYTES = 32
_HASH_FORMAT = f"{HASH_BYTES}s"  # one blob hash, as bytes
# Hashes are cut out of a decoded buffer this many at a time by one precompiled
# Struct: one format per write count would fill struct's cache with formats of
# up to a million codes.
_HASHES_PER_CHUNK = 256
_HASH_CHUNK = struct.Struct(_HASH_FORMAT * _HASHES_PER_CHUNK)

# Errors Python raises while packing values C would never accept (negative or
# oversized ints, non-UTF-8-encodable strings, wrong types).
_PACKING_ERRORS = (ValueError, TypeError, OverflowError, struct.error, AttributeError)


@dataclass(slots=True)
class Head:
    position: int
    tree_hash: bytes
    hlc: int


@dataclass(slots=True)
class Operation:
    op: int
    path: str
    blob_hash: bytes | None
    mode: int = MODE_FILE
    size: int = 0  # blob size in bytes; 0 for a delete


@dataclass(slots=True)
class Decision:
    content: str
    at: int  # HLC


@dataclass(slots=True)
class Message:
    role: int
    content: str
    at: int  # HLC


@dataclass(slots=True)
class SessionRecord:
    id: bytes  # 16 bytes
    state: int
    base_position: int
    landed_position: int  # 0 = not landed
    attempt_position: int  # position a lander is attempting (0 = none); docs/landing.md
    owner: str
    goal: str
    created_at: int  # HLC
    updated_at: int  # HLC
    # One per path, sorted by path. A decoded session holds an `Operations` view
    # (built on first use); give a list to change them.
    operations: Sequence[Operation] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    conversation: list[Message] = field(default_factory=list)
    conflict_paths: list[str] = field(default_factory=list)  # sorted; set when conflicted


@dataclass(slots=True)
class LandingRecord:
    position: int
    session_id: bytes
    parent_tree: bytes
    tree_hash: bytes
    hlc: int
    author: str
    goal: str
    paths: list[str] = field(default_factory=list)  # exact, sorted, unique


@dataclass(slots=True)
class Rollup:
    level: int  # 1, 2, 3
    start_position: int
    count: int
    bloom: bytes  # a serialized Bloom of the landing geometry


def _invalid(what: str, detail: str) -> InvalidArgument:
    return InvalidArgument(f"{what}: {detail}", lib.MIC_INVALID_ARGUMENT)


def _fixed(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise _invalid(what, f"must be {size} bytes")
    return bytes(value)


def _text(data: bytes, span: object) -> str:
    start = span.offset  # type: ignore[attr-defined]
    return data[start : start + span.len].decode("utf-8")  # type: ignore[attr-defined]


def _path_list(data: bytes, span: object, count: int) -> list[str]:
    return _text(data, span).split("\0") if count else []


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    # Decoded fields are slices of the input, so the input must be immutable.
    return data if isinstance(data, bytes) else bytes(data)


class _Columns:
    """Parts concatenated into one buffer, each remembered as a span of it."""

    __slots__ = ("parts", "offset")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def add(self, span: object, part: bytes) -> None:
        span.offset = self.offset  # type: ignore[attr-defined]
        span.len = len(part)  # type: ignore[attr-defined]
        self.parts.append(part)
        self.offset += len(part)

    def buffer(self) -> bytes:
        return b"".join(self.parts)


# ---- head ----


def encode_head(head: Head) -> bytes:
    fields = ffi.new("mic_head *")
    try:
        fields.position = head.position
        fields.hlc = head.hlc
    except _PACKING_ERRORS as exc:
        raise _invalid("encode_head", str(exc)) from None
    ffi.memmove(
        fields.tree_hash, _fixed(head.tree_hash, HASH_BYTES, "encode_head: tree_hash"), HASH_BYTES
    )
    out = ffi.new("uint8_t[]", HEAD_BYTES)
    check(lib.mic_head_encode(fields, out), "encode_head")
    return bytes(out)


def decode_head(data: bytes) -> Head:
    fields = ffi.new("mic_head *")
    check(lib.mic_head_decode(ffi.from_buffer(data), len(data), fields), "decode_head")
    return Head(fields.position, bytes(fields.tree_hash), fields.hlc)


# ---- rollup ----


def encode_rollup(rollup: Rollup) -> bytes:
    fields = ffi.new("mic_rollup_fields *")
    try:
        fields.level = rollup.level
        fields.start_position = rollup.start_position
        fields.count = rollup.count
        bloom = bytes(rollup.bloom)
    except _PACKING_ERRORS as exc:
        raise _invalid("encode_rollup", str(exc)) from None
    fields.bloom.offset = 0
    fields.bloom.len = len(bloom)
    out = ffi.new("mic_bytes *")
    check(lib.mic_rollup_encode(fields, bloom, len(bloom), out), "encode_rollup")
    return take_bytes(out)


def decode_rollup(data: bytes) -> Rollup:
    data = _as_bytes(data)
    fields = ffi.new("mic_rollup_fields *")
    check(lib.mic_rollup_decode(data, len(data), fields), "decode_rollup")
    start = fields.bloom.offset
    return Rollup(
        fields.level, fields.start_position, fields.count, data[start : start + fields.bloom.len]
    )


# ---- landing record ----


def encode_landing(record: LandingRecord) -> bytes:
    fields = ffi.new("mic_landing_fields *")
    columns = _Columns()
    try:
        fields.position = record.position
        fields.hlc = record.hlc
        fields.path_count = len(record.paths)
        columns.add(fields.author, record.author.encode("utf-8"))
        columns.add(fields.goal, record.goal.encode("utf-8"))
        columns.add(fields.paths, "\0".join(record.paths).encode("utf-8"))
    except _PACKING_ERRORS as exc:
        raise _invalid("encode_landing", str(exc)) from None
    ffi.memmove(
        fields.session_id,
        _fixed(record.session_id, SESSION_ID_BYTES, "encode_landing: session_id"),
        16,
    )
    ffi.memmove(
        fields.parent_tree,
        _fixed(record.parent_tree, HASH_BYTES, "encode_landing: parent_tree"),
        32,
    )
    ffi.memmove(
        fields.tree_hash, _fixed(record.tree_hash, HASH_BYTES, "encode_landing: tree_hash"), 32
    )
    buffer = columns.buffer()
    out = ffi.new("mic_bytes *")
    check(lib.mic_landing_encode(fields, buffer, len(buffer), out), "encode_landing")
    return take_bytes(out)


def _decode_landing_fields(data: bytes) -> object:
    fields = ffi.new("mic_landing_fields *")
    check(lib.mic_landing_decode(data, len(data), fields), "decode_landing")
    return fields


def decode_landing(data: bytes) -> LandingRecord:
    data = _as_bytes(data)
    f = _decode_landing_fields(data)
    return LandingRecord(
        f.position,
        bytes(f.session_id),
        bytes(f.parent_tree),
        bytes(f.tree_hash),
        f.hlc,
        _text(data, f.author),
        _text(data, f.goal),
        _path_list(data, f.paths, f.path_count),
    )


def landing_bloom(data: bytes) -> Bloom:
    """The bloom stored in an encoded landing record (for building rollups)."""
    data = _as_bytes(data)
    fields = _decode_landing_fields(data)  # keep alive: `span` points into it
    span = fields.bloom  # type: ignore[attr-defined]
    return Bloom.from_bytes(data[span.offset : span.offset + span.len])


# ---- session ----


def encode_session(session: SessionRecord) -> bytes:
    fields = ffi.new("mic_session_fields *")
    ops = session.operations
    columns = _Columns()
    try:
        fields.state = session.state
        fields.base_position = session.base_position
        fields.landed_position = session.landed_position
        fields.attempt_position = session.attempt_position
        fields.created_at = session.created_at
        fields.updated_at = session.updated_at
        fields.op_count = len(ops)
        fields.decision_count = len(session.decisions)
        fields.message_count = len(session.conversation)
        fields.conflict_count = len(session.conflict_paths)
        columns.add(fields.owner, session.owner.encode("utf-8"))
        columns.add(fields.goal, session.goal.encode("utf-8"))
        if isinstance(ops, Operations):
            # Decoded (and so validated) columns, reused as they are.
            kinds, modes, sizes, hashes_column, paths_column = ops._columns()
        else:
            kinds, modes, sizes, hashes_column, paths_column = _operation_columns(ops)
        columns.add(fields.op_kinds, kinds)
        columns.add(fields.op_modes, modes)
        columns.add(fields.op_sizes, sizes)
        columns.add(fields.op_hashes, hashes_column)
        columns.add(fields.op_paths, paths_column)
        decisions = session.decisions
        decision_texts = [d.content.encode("utf-8") for d in decisions]
        columns.add(
            fields.decision_ats, struct.pack(f"<{len(decisions)}Q", *[d.at for d in decisions])
        )
        columns.add(
            fields.decision_lens, struct.pack(f"<{len(decisions)}I", *map(len, decision_texts))
        )
        columns.add(fields.decision_text, b"".join(decision_texts))
        messages = session.conversation
        message_texts = [m.content.encode("utf-8") for m in messages]
        columns.add(fields.message_roles, bytes([m.role for m in messages]))
        columns.add(
            fields.message_ats, struct.pack(f"<{len(messages)}Q", *[m.at for m in messages])
        )
        columns.add(
            fields.message_lens, struct.pack(f"<{len(messages)}I", *map(len, message_texts))
        )
        columns.add(fields.message_text, b"".join(message_texts))
        columns.add(fields.conflict_paths, "\0".join(session.conflict_paths).encode("utf-8"))
    except InvalidArgument:
        raise
    except _PACKING_ERRORS as exc:
        raise _invalid("encode_session", str(exc)) from None
    ffi.memmove(
        fields.id, _fixed(session.id, SESSION_ID_BYTES, "encode_session: id"), SESSION_ID_BYTES
    )
    buffer = columns.buffer()
    out = ffi.new("mic_bytes *")
    check(lib.mic_session_encode(fields, buffer, len(buffer), out), "encode_session")
    return take_bytes(out)


def _operation_columns(ops: Sequence[Operation]) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    kinds = bytes([op.op for op in ops])
    modes = bytes([op.mode for op in ops])
    sizes = struct.pack(f"<{len(ops)}Q", *[op.size for op in ops])
    hashes = [op.blob_hash for op in ops if op.op == OP_WRITE]
    if any(h is None or len(h) != HASH_BYTES for h in hashes):
        raise _invalid("encode_session", "every write operation needs a 32-byte blob_hash")
    if len(hashes) != len(ops) and any(op.blob_hash is not None for op in ops if op.op != OP_WRITE):
        raise _invalid("encode_session", "a delete operation carries no blob_hash")
    paths = "\0".join([op.path for op in ops]).encode("utf-8")
    return kinds, modes, sizes, b"".join(hashes), paths


def _decode_session_fields(data: bytes) -> object:
    fields = ffi.new("mic_session_fields *")
    check(lib.mic_session_decode(data, len(data), fields), "decode_session")
    return fields


class Operations(Sequence[Operation]):
    """The operations of a decoded session, built from its bytes on first use.

    ``decode_session`` has C validate every byte of the session (each length,
    kind, mode, path and the bloom) but builds no ``Operation`` until one is
    asked for: building a thousand Python objects costs several times the C
    decode, and many readers need only the header (listing by state, landing
    checks), only the paths (``paths``: one split of one column) or nothing of
    the operations at all (recording a decision re-encodes the operations from
    this view's columns, see ``encode_session``).

    Immutable and comparable to any sequence of ``Operation``; to change a
    session's operations, give its ``SessionRecord`` a new list.
    """

    __slots__ = ("_data", "_n", "_kinds_at", "_modes_at", "_sizes_at", "_hashes", "_paths_span",
                 "_paths", "_items")  # fmt: skip

    def __init__(self, data: bytes, fields: object) -> None:
        f = fields
        self._data = data
        self._n: int = f.op_count  # type: ignore[attr-defined]
        self._kinds_at: int = f.op_kinds.offset  # type: ignore[attr-defined]
        self._modes_at: int = f.op_modes.offset  # type: ignore[attr-defined]
        self._sizes_at: int = f.op_sizes.offset  # type: ignore[attr-defined]
        hashes = f.op_hashes  # type: ignore[attr-defined]
        self._hashes = (hashes.offset, hashes.len)
        paths = f.op_paths  # type: ignore[attr-defined]
        self._paths_span = (paths.offset, paths.len)
        self._paths: list[str] | None = None
        self._items: list[Operation] | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def paths(self) -> list[str]:
        """The operations' paths in order (sorted), without building operations.

        The same list on every call: don't change it.
        """
        if self._paths is None:
            at, length = self._paths_span
            self._paths = (
                self._data[at : at + length].decode("utf-8").split("\0") if self._n else []
            )
        return self._paths

    def _columns(self) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """kinds, modes, sizes (u64 LE), write hashes, paths (NUL-joined): the
        encoded columns, as slices of the decoded bytes."""
        data, n = self._data, self._n
        hashes_at, hashes_len = self._hashes
        paths_at, paths_len = self._paths_span
        return (
            data[self._kinds_at : self._kinds_at + n],
            data[self._modes_at : self._modes_at + n],
            data[self._sizes_at : self._sizes_at + 8 * n],
            data[hashes_at : hashes_at + hashes_len],
            data[paths_at : paths_at + paths_len],
        )

    def _list(self) -> list[Operation]:
        if self._items is None:
            kinds, modes, sizes, hashes, _ = self._columns()
            blob_hashes = _blob_hashes(hashes, 0, len(hashes) // HASH_BYTES, kinds)
            # map() over the columns: building the objects is most of the cost.
            self._items = list(
                map(
                    Operation,
                    kinds,
                    self.paths,
                    blob_hashes,
                    modes,
                    struct.unpack(f"<{self._n}Q", sizes),
                )
            )
        return self._items

    @overload
    def __getitem__(self, index: int) -> Operation: ...
    @overload
    def __getitem__(self, index: slice) -> list[Operation]: ...
    def __getitem__(self, index: int | slice) -> Operation | list[Operation]:
        return self._list()[index]

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Operations):
            return self._n == other._n and self._columns() == other._columns()
        if isinstance(other, Sequence) and not isinstance(other, str | bytes | bytearray):
            return len(other) == self._n and self._list() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable elements, like a list

    def __repr__(self) -> str:
        return f"Operations({self._list()!r})"


def decode_session(data: bytes) -> SessionRecord:
    data = _as_bytes(data)
    f = _decode_session_fields(data)
    decisions = [
        Decision(text, at)
        for text, at in zip(
            _entries(data, f.decision_lens.offset, f.decision_text.offset, f.decision_count),
            struct.unpack_from(f"<{f.decision_count}Q", data, f.decision_ats.offset),
            strict=True,
        )
    ]
    m = f.message_count
    roles_at = f.message_roles.offset
    conversation = [
        Message(role, text, at)
        for role, text, at in zip(
            data[roles_at : roles_at + m],
            _entries(data, f.message_lens.offset, f.message_text.offset, m),
            struct.unpack_from(f"<{m}Q", data, f.message_ats.offset),
            strict=True,
        )
    ]
    return SessionRecord(
        bytes(f.id),
        f.state,
        f.base_position,
        f.landed_position,
        f.attempt_position,
        _text(data, f.owner),
        _text(data, f.goal),
        f.created_at,
        f.updated_at,
        Operations(data, f),
        decisions,
        conversation,
        _path_list(data, f.conflict_paths, f.conflict_count),
    )


def operation_paths(operations: Sequence[Operation]) -> list[str]:
    """The paths of ``operations`` in order; from the path column alone when
    they are a decoded session's ``Operations``."""
    if isinstance(operations, Operations):
        return operations.paths
    return [op.path for op in operations]


def _blob_hashes(data: bytes, hashes_at: int, write_count: int, kinds: bytes) -> list[bytes | None]:
    """One blob hash per operation: the next stored hash for a write, None for a delete.

    ``struct`` cuts the stored hashes (writes only) out of the buffer a chunk at
    a time; slicing them one by one in Python cost as much as the C decode.
    """
    full_chunks, rest = divmod(write_count, _HASHES_PER_CHUNK)
    rest_at = hashes_at + full_chunks * _HASH_CHUNK.size
    hashes: list[bytes | None] = []
    for chunk_at in range(hashes_at, rest_at, _HASH_CHUNK.size):
        hashes += _HASH_CHUNK.unpack_from(data, chunk_at)
    hashes += struct.unpack_from(_HASH_FORMAT * rest, data, rest_at)
    if write_count == len(kinds):
        return hashes
    next_hash = iter(hashes).__next__
    return [next_hash() if kind == OP_WRITE else None for kind in kinds]


def _entries(data: bytes, lens_at: int, text_at: int, count: int) -> list[str]:
    texts = []
    for length in struct.unpack_from(f"<{count}I", data, lens_at):
        texts.append(data[text_at : text_at + length].decode("utf-8"))
        text_at += length
    return texts


def session_bloom(data: bytes) -> Bloom:
    """The bloom of the operation paths stored in an encoded session."""
    data = _as_bytes(data)
    fields = _decode_session_fields(data)  # keep alive: `span` points into it
    span = fields.bloom  # type: ignore[attr-defined]
    return Bloom.from_bytes(data[span.offset : span.offset + span.len])
