"""Validation of the identifiers that cross every interface: paths, hashes, project ids.

Each validator returns the canonical value or raises ``InvalidRequest`` with a
message that names what is wrong. Rules are those of DESIGN.md / API.md.
"""

from __future__ import annotations

import re

from micforge.errors import InvalidRequest

PATH_BYTES_MAX = 4096
HASH_BYTES = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PROJECT_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


def path(value: object) -> str:
    """A repository path: UTF-8, relative, '/'-separated, no empty/'.'/'..' segment, no NUL, <= 4096 bytes."""
    if not isinstance(value, str):
        raise InvalidRequest("path must be a string")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("path is not valid UTF-8") from None
    if not encoded:
        raise InvalidRequest("path is empty")
    if len(encoded) > PATH_BYTES_MAX:
        raise InvalidRequest(f"path is longer than {PATH_BYTES_MAX} bytes")
    if "\x00" in value:
        raise InvalidRequest("path contains a NUL byte")
    if value.startswith("/"):
        raise InvalidRequest(f"path must be relative: {value!r}")
    for segment in value.split("/"):
        if segment == "":
            raise InvalidRequest(f"path has an empty segment: {value!r}")
        if segment in (".", ".."):
            raise InvalidRequest(f"path has a '{segment}' segment: {value!r}")
    return value


def path_prefix(value: object) -> str:
    """A listing prefix: empty, or a path optionally ending with '/'."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidRequest("prefix must be a string")
    path(value[:-1] if value.endswith("/") else value)
    return value


def hash_hex(value: object, what: str = "hash") -> str:
    """A BLAKE3 hash on the wire: exactly 64 lowercase hex characters."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidRequest(f"{what} must be 64 lowercase hex characters, got {value!r:.80}")
    return value


def project_id(value: object) -> str:
    if not isinstance(value, str) or not _PROJECT_ID.fullmatch(value):
        raise InvalidRequest("project id must match [a-z0-9][a-z0-9._-]{0,62}")
    return value


def session_id(value: object) -> str:
    """Session ids are 32 lowercase hex characters (16 bytes: 8 of HLC time, 8 random)."""
    if not isinstance(value, str) or not _SESSION_ID.fullmatch(value):
        raise InvalidRequest("session id must be 32 lowercase hex characters")
    return value
