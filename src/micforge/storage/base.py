"""The Store protocol and its errors, shared by every backend.

Semantics are exact and identical across backends (LocalStore, S3Store,
CachedStore); ``tests/storage/test_conformance.py`` runs the same suite
against each one. See ``docs/storage.md``.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Protocol, runtime_checkable

from micforge import errors

# A key is a relative, '/'-separated path. These limits keep keys valid on
# every backend: S3 allows 1024 bytes, and the local filesystem allows 255
# bytes per path segment.
KEY_MAX_BYTES = 1024
KEY_SEGMENT_MAX_BYTES = 200
# An ObjectWriter's head is a small header given at commit, never a body.
HEAD_BYTES_MAX = 4096


class StoreError(Exception):
    """Base of every storage error."""


class KeyNotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """An ``if_match`` / ``if_none_match`` condition did not hold; nothing was written."""


class StorageUnavailable(StoreError, errors.Unavailable):
    """The backend could not be reached (or kept failing) after the retry budget.

    Nothing is reported as written: a write that raises this may or may not
    have happened; a write that returned an etag did happen.
    """


class InvalidKey(StoreError, ValueError):
    """The key is not a valid store key (empty, absolute, '..', NUL, too long, ...)."""


def store_unusable(error: StoreError) -> bool:
    """Whether a storage error that reached a front end means the store cannot be used.

    The service layer handles an absent key and a failed condition itself, and
    only a bug builds a malformed key: those three are bugs when they get out.
    Every other one (``StorageUnavailable`` after its retries, a LocalStore root
    that is no longer a directory, an object that is not a LocalStore object, an
    S3 bucket gone or access denied) is an outage: REST's 503, gRPC's UNAVAILABLE.
    """
    return not isinstance(error, (KeyNotFound, PreconditionFailed, InvalidKey))


class ObjectWriter(Protocol):
    """An object written piece by piece, invisible until ``commit`` (see ``Store.open_writer``).

    The object is ``head`` (given at commit, exactly ``head_bytes`` long) followed
    by everything written. Use it as a context manager: leaving the block
    without a commit aborts, so a failure at any point leaves nothing visible
    and nothing behind.
    """

    def write(self, data: bytes) -> None:
        """Append ``data`` to the object's body."""
        ...

    def commit(
        self, key: str | None = None, *, head: bytes = b"", if_none_match: bool = False
    ) -> str:
        """Publish the object atomically at ``key`` (if not named at open) and return its etag.

        ``if_none_match=True``: PreconditionFailed if the key exists. Whatever
        the outcome, the writer is finished: on an error nothing was published.
        """
        ...

    def abort(self) -> None:
        """Discard everything written; idempotent, and a no-op after a commit."""
        ...

    def __enter__(self) -> ObjectWriter: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Store(Protocol):
    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(data, etag)``; raise KeyNotFound."""
        ...

    def head(self, key: str) -> str | None:
        """Return the etag, or None if the key does not exist."""
        ...

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        """Write ``data`` atomically and return its etag.

        ``if_none_match=True``: PreconditionFailed if the key exists.
        ``if_match=etag``: PreconditionFailed unless the key exists with that etag.
        """
        ...

    def put_file(
        self, key: str, fileobj: BinaryIO, size_bytes: int, *, if_none_match: bool = False
    ) -> str:
        """Stream exactly ``size_bytes`` from ``fileobj`` into ``key``; return the etag."""
        ...

    def open_writer(self, key: str | None = None, *, head_bytes: int = 0) -> ObjectWriter:
        """A writer for an object whose length is unknown up front.

        ``key`` is where it goes, if known now; otherwise it is named at
        ``commit`` (a content-addressed key is known only after the content).
        ``head_bytes``: the object starts with that many bytes given only at
        commit (a header holding the content's hash).
        """
        ...

    def open(self, key: str) -> tuple[BinaryIO, int, str]:
        """Streaming read: ``(reader, size_bytes, etag)``. The caller closes the reader."""
        ...

    def list(
        self, prefix: str, *, start_after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Keys starting with ``prefix``, sorted, strictly after ``start_after``."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting an absent key is not an error."""
        ...

    def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Reject keys that could escape a root directory or mean different things per backend."""
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidKey("key must not be empty")
    if "\x00" in key:
        raise InvalidKey(f"key contains NUL: {key!r}")
    if "\\" in key:
        raise InvalidKey(f"key contains a backslash: {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > KEY_MAX_BYTES:
        raise InvalidKey(f"key longer than {KEY_MAX_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKey(f"key must be relative: {key!r}")
    for segment in key.split("/"):
        _validate_segment(key, segment)
    return key


def validate_prefix(prefix: str) -> str:
    """A list prefix: '' or a key prefix; only its complete segments must be valid."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"prefix must be a str, got {type(prefix).__name__}")
    if prefix == "":
        return prefix
    if "\x00" in prefix or "\\" in prefix or prefix.startswith("/"):
        raise InvalidKey(f"invalid list prefix: {prefix!r}")
    segments = prefix.split("/")
    for segment in segments[:-1]:
        _validate_segment(prefix, segment)
    if segments[-1] in {".", ".."}:
        raise InvalidKey(f"invalid list prefix: {prefix!r}")
    return prefix


def _validate_segment(key: str, segment: str) -> None:
    if segment == "":
        raise InvalidKey(f"key has an empty segment: {key!r}")
    if segment.startswith("."):
        # Covers '.' and '..', and reserves dot-names for LocalStore's temp and lock files.
        raise InvalidKey(f"key segment must not start with '.': {key!r}")
    if segment.endswith(OBJECT_SUFFIX):
        # LocalStore stores key 'a' as file 'a.mfo' so that keys 'a' and 'a/b' can coexist;
        # a segment ending in the suffix would collide with that file.
        raise InvalidKey(f"key segment must not end with {OBJECT_SUFFIX!r}: {key!r}")
    ascii_only = segment.isascii()  # the common case: bytes == characters, always UTF-8
    size_bytes = len(segment) if ascii_only else len(segment.encode("utf-8", "surrogatepass"))
    if size_bytes > KEY_SEGMENT_MAX_BYTES:
        raise InvalidKey(f"key segment longer than {KEY_SEGMENT_MAX_BYTES} bytes: {key!r}")
    if _CONTROL_CHARACTER.search(segment):
        raise InvalidKey(f"key contains a control character: {key!r}")
    if not ascii_only:
        try:
            segment.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidKey(f"key is not valid UTF-8: {key!r}") from exc


# Every store runs each key through this: a regex, not a loop over characters
# (which cost ~0.04 ms a key, several keys per blob upload).
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


OBJECT_SUFFIX = ".mfo"


def validate_condition(if_match: str | None, if_none_match: bool) -> None:
    if if_match is not None and if_none_match:
        raise ValueError("if_match and if_none_match are mutually exclusive")
    if if_match is not None and (not isinstance(if_match, str) or not if_match):
        raise ValueError("if_match must be a non-empty etag string")


def validate_writer_key(opened_key: str | None, commit_key: str | None) -> str:
    """The key an ObjectWriter commits to: named at open, at commit, or alike at both."""
    if opened_key is None and commit_key is None:
        raise ValueError("an object writer needs its key at open or at commit")
    if opened_key is not None and commit_key is not None and commit_key != opened_key:
        raise ValueError(f"writer opened for {opened_key!r} cannot commit to {commit_key!r}")
    return validate_key(commit_key if commit_key is not None else opened_key)  # type: ignore[arg-type]


def validate_head(head: bytes, head_bytes: int) -> None:
    if not isinstance(head, (bytes, bytearray, memoryview)):
        raise TypeError(f"head must be bytes, got {type(head).__name__}")
    if len(head) != head_bytes:
        raise ValueError(f"head is {len(head)} bytes; the writer reserved {head_bytes}")


def validate_head_bytes(head_bytes: int) -> None:
    if not isinstance(head_bytes, int) or not 0 <= head_bytes <= HEAD_BYTES_MAX:
        raise ValueError(f"head_bytes must be an int in [0, {HEAD_BYTES_MAX}], got {head_bytes!r}")


def validate_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int, got {limit!r}")
