"""The content-addressed chunked tree (prolly tree) of libmic-core.

A tree maps paths to (blob hash, mode, size). Its nodes are immutable and named
by their hash; this module never stores anything. ``Tree(load_node)`` reads
nodes on demand through ``load_node(hash) -> bytes`` (raise ``KeyError`` when a
node is absent), and ``build`` / ``apply`` return the new nodes as
``(hash, bytes)`` pairs for the caller to store (``trees/{hh}/{hash}``).

Every operation is one FFI call: edits, entries and results cross as one buffer
each (record formats in docs/formats.md, "Tree nodes"), because per-entry calls
would cost more than the tree work for landings of thousands of paths.

Errors: ``NotFoundNode`` when the loader raised ``KeyError``, ``Corrupt`` when a
stored node is malformed or does not match its hash, ``InvalidArgument`` for bad
input; any other exception raised by the loader is re-raised unchanged (a store
that is down should surface as the store's own error, not as a tree error).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from micforge.core._ffi import Corrupt, InvalidArgument, InvalidHandle, check, ffi, lib, take_bytes
from micforge.core.codecs import MODE_EXEC, MODE_FILE, MODE_SYMLINK

HASH_BYTES = 32
PATH_BYTES_MAX: int = lib.MIC_TREE_PATH_BYTES_MAX
NODE_BYTES_MAX: int = lib.MIC_TREE_NODE_BYTES_MAX
LIST_LIMIT_MAX: int = lib.MIC_TREE_LIST_ENTRIES_MAX
CEILINGS_KEYS_MAX: int = lib.MIC_TREE_CEILINGS_KEYS_MAX
_MODES = frozenset((MODE_FILE, MODE_EXEC, MODE_SYMLINK))
_CHANGE_NAMES = {
    lib.MIC_TREE_CHANGE_ADDED: "added",
    lib.MIC_TREE_CHANGE_MODIFIED: "modified",
    lib.MIC_TREE_CHANGE_DELETED: "deleted",
}

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_VALUE = struct.Struct("<32sBQ")  # blob hash, mode, size
_WRITE_HEAD = struct.Struct("<BH")  # op, path length


def _empty_tree_hash() -> bytes:
    out = ffi.new("uint8_t[32]")
    check(lib.mic_tree_empty_hash(out), "empty tree hash")
    return bytes(out)


EMPTY_TREE_HASH: bytes = _empty_tree_hash()


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, lib.MIC_INVALID_ARGUMENT)


@dataclass(frozen=True)
class TreeEntry:
    path: str
    blob_hash: bytes
    mode: int = MODE_FILE
    size: int = 0


@dataclass(frozen=True)
class TreeEdit:
    path: str
    blob_hash: bytes | None  # None deletes the path
    mode: int = MODE_FILE
    size: int = 0


@dataclass(frozen=True)
class TreeChange:
    path: str
    change: str  # "added" | "modified" | "deleted"
    old: TreeEntry | None
    new: TreeEntry | None


def _path_bytes(path: str) -> bytes:
    try:
        key = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(f"path is not valid UTF-8: {path!r}") from exc
    if not key or len(key) > PATH_BYTES_MAX:
        raise _invalid(f"path must be 1..{PATH_BYTES_MAX} bytes, got {len(key)}")
    return key


def _value_bytes(blob_hash: bytes, mode: int, size: int) -> bytes:
    if len(blob_hash) != HASH_BYTES:
        raise _invalid(f"blob hash must be {HASH_BYTES} bytes, got {len(blob_hash)}")
    if mode not in _MODES:
        raise _invalid(f"unknown mode {mode}")
    if not 0 <= size < 2**64:
        raise _invalid(f"size out of range: {size}")
    return _VALUE.pack(blob_hash, mode, size)


def _root_bytes(root: bytes) -> bytes:
    if len(root) != HASH_BYTES:
        raise _invalid(f"tree root must be {HASH_BYTES} bytes, got {len(root)}")
    return root


def _encode_entries(entries: Iterable[TreeEntry]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    for entry in entries:
        key = _path_bytes(entry.path)
        append(_U16.pack(len(key)))
        append(key)
        append(_value_bytes(entry.blob_hash, entry.mode, entry.size))
    return b"".join(parts)


def _encode_edits(edits: Sequence[TreeEdit]) -> bytes:
    keyed = sorted(((_path_bytes(e.path), e) for e in edits), key=lambda pair: pair[0])
    parts: list[bytes] = []
    previous: bytes | None = None
    for key, edit in keyed:
        if key == previous:
            raise _invalid(f"more than one edit of path {edit.path!r}")
        previous = key
        if edit.blob_hash is None:
            parts.append(_WRITE_HEAD.pack(lib.MIC_TREE_OP_DELETE, len(key)) + key)
        else:
            value = _value_bytes(edit.blob_hash, edit.mode, edit.size)
            parts.append(_WRITE_HEAD.pack(lib.MIC_TREE_OP_WRITE, len(key)) + key + value)
    return b"".join(parts)


def _decode_path(data: bytes | memoryview) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Corrupt("tree path is not UTF-8", lib.MIC_CORRUPT) from exc


def _decode_nodes(data: bytes) -> list[tuple[bytes, bytes]]:
    nodes: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        node_hash = data[pos : pos + HASH_BYTES]
        (length,) = _U32.unpack_from(data, pos + HASH_BYTES)
        start = pos + HASH_BYTES + 4
        nodes.append((node_hash, data[start : start + length]))
        pos = start + length
    return nodes


def _decode_entries(data: bytes) -> list[TreeEntry]:
    entries: list[TreeEntry] = []
    pos = 0
    while pos < len(data):
        (length,) = _U16.unpack_from(data, pos)
        path = _decode_path(data[pos + 2 : pos + 2 + length])
        blob_hash, mode, size = _VALUE.unpack_from(data, pos + 2 + length)
        entries.append(TreeEntry(path, blob_hash, mode, size))
        pos += 2 + length + _VALUE.size
    return entries


def _decode_ceilings(data: bytes) -> list[TreeEntry | None]:
    ceilings: list[TreeEntry | None] = []
    pos = 0
    try:
        while pos < len(data):
            found = data[pos]
            pos += 1
            if found == 0:
                ceilings.append(None)
                continue
            if found != 1:
                raise Corrupt(f"ceiling record flag {found}", lib.MIC_CORRUPT)
            (length,) = _U16.unpack_from(data, pos)
            if pos + 2 + length + _VALUE.size > len(data):
                raise Corrupt("ceiling record cut short", lib.MIC_CORRUPT)
            path = _decode_path(data[pos + 2 : pos + 2 + length])
            blob_hash, mode, size = _VALUE.unpack_from(data, pos + 2 + length)
            ceilings.append(TreeEntry(path, blob_hash, mode, size))
            pos += 2 + length + _VALUE.size
    except struct.error as exc:
        raise Corrupt(f"ceiling record cut short: {exc}", lib.MIC_CORRUPT) from None
    return ceilings


def _decode_changes(data: bytes) -> list[TreeChange]:
    changes: list[TreeChange] = []
    pos = 0
    while pos < len(data):
        kind = data[pos]
        (length,) = _U16.unpack_from(data, pos + 1)
        path = _decode_path(data[pos + 3 : pos + 3 + length])
        pos += 3 + length
        old_hash, old_mode, old_size = _VALUE.unpack_from(data, pos)
        new_hash, new_mode, new_size = _VALUE.unpack_from(data, pos + _VALUE.size)
        pos += 2 * _VALUE.size
        name = _CHANGE_NAMES[kind]
        old = None if name == "added" else TreeEntry(path, old_hash, old_mode, old_size)
        new = None if name == "deleted" else TreeEntry(path, new_hash, new_mode, new_size)
        changes.append(TreeChange(path, name, old, new))
    return changes


class _LoaderState(threading.local):
    """Per-thread state of the loader callback: calls run on the caller's thread,
    so one Tree can serve many threads at once (the C handle is read-only)."""

    def __init__(self) -> None:
        self.pinned: Any = None  # the last node's bytes, kept alive while C reads them
        self.error: BaseException | None = None


def _make_callback(load_node: Callable[[bytes], bytes], state: _LoaderState) -> Any:
    def load(_ctx: Any, hash_ptr: Any, data_out: Any, len_out: Any) -> int:
        # Nothing may propagate into C: every outcome becomes a status.
        try:
            data = load_node(bytes(ffi.buffer(hash_ptr, HASH_BYTES)))
            buffer = ffi.from_buffer("uint8_t[]", data)
        except KeyError:
            return lib.MIC_NODE_NOT_FOUND
        except BaseException as exc:  # re-raised by Tree._call after C returns
            state.error = exc
            return lib.MIC_LOADER_FAILED
        state.pinned = (data, buffer)
        data_out[0] = buffer
        len_out[0] = len(buffer)
        return lib.MIC_OK

    return ffi.callback("mic_tree_load_fn", load, error=lib.MIC_LOADER_FAILED)


class Tree:
    """Tree operations over nodes fetched by ``load_node``; ``close()`` frees it now."""

    def __init__(self, load_node: Callable[[bytes], bytes]) -> None:
        self._state = _LoaderState()
        # The callback object must outlive every C call that may invoke it.
        self._callback = _make_callback(load_node, self._state)
        out = ffi.new("mic_tree **")
        check(lib.mic_tree_new(self._callback, ffi.NULL, out), "Tree")
        self._handle: Any = ffi.gc(out[0], lib.mic_tree_free)

    def close(self) -> None:
        if self._handle is not None:
            ffi.release(self._handle)
            self._handle = None

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[..., int], *args: Any) -> None:
        if self._handle is None:
            raise InvalidHandle(f"{what}: the tree was closed", lib.MIC_INVALID_HANDLE)
        state = self._state
        state.error = None
        try:
            status = fn(self._handle, *args)
        finally:
            state.pinned = None
        if status == lib.MIC_LOADER_FAILED and state.error is not None:
            error, state.error = state.error, None
            raise error
        check(status, what)

    def build(self, entries: Iterable[TreeEntry]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The tree of ``entries`` (sorted by path, unique) and all of its nodes."""
        data = _encode_entries(entries)
        root = ffi.new("uint8_t[32]")
        out = ffi.new("mic_bytes *")
        self._call("Tree.build", lib.mic_tree_build, data, len(data), root, out)
        return bytes(root), _decode_nodes(take_bytes(out))

    def apply(
        self, root: bytes, edits: Sequence[TreeEdit]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """``root`` with ``edits`` applied (any order, one per path) and the new nodes."""
        data = _encode_edits(edits)
        new_root = ffi.new("uint8_t[32]")
        out = ffi.new("mic_bytes *")
        self._call(
            "Tree.apply", lib.mic_tree_apply, _root_bytes(root), data, len(data), new_root, out
        )
        return bytes(new_root), _decode_nodes(take_bytes(out))

    def lookup(self, root: bytes, path: str) -> TreeEntry | None:
        key = _path_bytes(path)
        found = ffi.new("bool *")
        blob_hash = ffi.new("uint8_t[32]")
        mode = ffi.new("uint8_t *")
        size = ffi.new("uint64_t *")
        self._call(
            "Tree.lookup",
            lib.mic_tree_lookup,
            _root_bytes(root),
            key,
            len(key),
            found,
            blob_hash,
            mode,
            size,
        )
        return TreeEntry(path, bytes(blob_hash), mode[0], size[0]) if found[0] else None

    def list(
        self, root: bytes, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[TreeEntry]:
        """Entries whose path starts with ``prefix`` (a byte prefix: "a" matches "a.b"
        and "a/b"), after ``start_after``, at most ``limit``, in path order."""
        if not 0 <= limit <= LIST_LIMIT_MAX:
            raise _invalid(f"limit must be 0..{LIST_LIMIT_MAX}, got {limit}")
        prefix_key = prefix.encode("utf-8")
        after_key = b"" if start_after is None else start_after.encode("utf-8")
        out = ffi.new("mic_bytes *")
        count = ffi.new("uint64_t *")
        self._call(
            "Tree.list",
            lib.mic_tree_list,
            _root_bytes(root),
            prefix_key,
            len(prefix_key),
            after_key,
            len(after_key),
            start_after is not None,
            limit,
            out,
            count,
        )
        return _decode_entries(take_bytes(out))

    def ceilings(self, root: bytes, keys: Sequence[str]) -> list[TreeEntry | None]:
        """For each key, the first entry whose path is at or above it in byte order
        (None if every path sorts below it). One call per ``CEILINGS_KEYS_MAX`` keys,
        in which each node is loaded and checked once (``lookup`` is a ceiling whose
        path equals the key; "is anything below ``d/``?" is whether the ceiling of
        ``d/`` starts with it)."""
        result: list[TreeEntry | None] = []
        for start in range(0, len(keys), CEILINGS_KEYS_MAX):
            batch = keys[start : start + CEILINGS_KEYS_MAX]
            parts: list[bytes] = []
            for key in batch:
                encoded = _path_bytes(key)
                parts.append(_U16.pack(len(encoded)))
                parts.append(encoded)
            data = b"".join(parts)
            out = ffi.new("mic_bytes *")
            count = ffi.new("uint64_t *")
            self._call(
                "Tree.ceilings",
                lib.mic_tree_ceilings,
                _root_bytes(root),
                data,
                len(data),
                out,
                count,
            )
            ceilings = _decode_ceilings(take_bytes(out))
            if not count[0] == len(ceilings) == len(batch):
                raise Corrupt(
                    f"Tree.ceilings: {len(ceilings)} records for {len(batch)} keys",
                    lib.MIC_CORRUPT,
                )
            result.extend(ceilings)
        return result

    def diff(self, old_root: bytes, new_root: bytes) -> list[TreeChange]:
        """Changes from ``old_root`` to ``new_root`` in path order; equal subtrees
        are skipped by hash, so nearby trees cost O(changes · depth) node reads."""
        out = ffi.new("mic_bytes *")
        reads = ffi.new("uint64_t *")
        self._call(
            "Tree.diff", lib.mic_tree_diff, _root_bytes(old_root), _root_bytes(new_root), out, reads
        )
        return _decode_changes(take_bytes(out))

    def diff_bounded(
        self, old_root: bytes, new_root: bytes, max_changes: int
    ) -> tuple[list[TreeChange], bool]:
        """The first ``max_changes`` (>= 1) changes of ``diff``, and whether more exist:
        the walk stops at the bound, so a diff too large to serve costs no more than
        the bound's worth of work and memory."""
        if not isinstance(max_changes, int) or max_changes < 1:
            raise ValueError(f"max_changes must be an integer from 1, got {max_changes!r}")
        max_changes = min(max_changes, 2**64 - 1)  # past any real diff: no bound at all
        out = ffi.new("mic_bytes *")
        truncated = ffi.new("uint8_t *")
        self._call(
            "Tree.diff",
            lib.mic_tree_diff_bounded,
            _root_bytes(old_root),
            _root_bytes(new_root),
            max_changes,
            out,
            ffi.NULL,
            truncated,
        )
        return _decode_changes(take_bytes(out)), bool(truncated[0])

    def stats(self, root: bytes) -> tuple[int, int]:
        """(entries, total size in bytes), from the root node alone."""
        count = ffi.new("uint64_t *")
        size = ffi.new("uint64_t *")
        self._call("Tree.stats", lib.mic_tree_stats, _root_bytes(root), count, size)
        return count[0], size[0]
