"""Small helpers shared by the services: time formatting, retries, permission checks."""

from __future__ import annotations

import base64
import datetime as _dt
import random
import time
from collections.abc import Callable
from typing import TypeVar

from micforge.auth import Role, User
from micforge.core import hlc_unpack
from micforge.errors import InvalidRequest

T = TypeVar("T")

# Largest page any listing returns (sessions, log, tree), on every transport: API.md's
# `limit` is 1..1000 everywhere. REST's query check and OpenAPI document use it too.
PAGE_LIMIT_MAX = 1000


def check_page_limit(limit: object) -> None:
    """InvalidRequest unless ``limit`` is an int in 1..PAGE_LIMIT_MAX."""
    if not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT_MAX:
        raise InvalidRequest(f"limit must be between 1 and {PAGE_LIMIT_MAX}")


MODE_NAMES = {0: "file", 1: "exec", 2: "symlink"}
MODE_VALUES = {v: k for k, v in MODE_NAMES.items()}
STATE_NAMES = {0: "open", 1: "landed", 2: "conflicted", 3: "abandoned"}
STATE_VALUES = {v: k for k, v in STATE_NAMES.items()}
ROLE_NAMES = {0: "user", 1: "agent", 2: "system"}
ROLE_VALUES = {v: k for k, v in ROLE_NAMES.items()}


def encode_cursor_text(text: str) -> str:
    """An opaque page cursor holding ``text``: its UTF-8 in unpadded base64url."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor_text(cursor: str) -> str:
    """The text of a cursor from :func:`encode_cursor_text`. ValueError (binascii's
    and UTF-8's errors are ValueErrors too) if ``cursor`` holds none; b64decode skips
    stray characters, so a caller that wants one spelling per cursor re-encodes."""
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")


def rfc3339_from_ms(ms: int) -> str:
    stamp = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def rfc3339_from_hlc(hlc: int) -> str:
    return rfc3339_from_ms(hlc_unpack(hlc)[0])


def rfc3339(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return rfc3339_from_ms(int(value.timestamp() * 1000))


def backoff_sleep(attempt: int, base_ms: int, cap_ms: int, rng: random.Random) -> None:
    """Full-jitter exponential backoff: sleep U(0, min(cap, base * 2**attempt))."""
    ceiling_ms = min(cap_ms, base_ms * (2 ** min(attempt, 20)))
    time.sleep(rng.uniform(0, ceiling_ms) / 1000)


class Authorizer:
    """The services' one door to permissions: every check goes through the auth layer."""

    def __init__(self, auth) -> None:  # auth: micforge.auth.AuthDB
        self._auth = auth

    def require(self, user: User, project: str, role: Role) -> Role:
        return self._auth.check_permission(project, user.id, role)


def retry_cas(fn: Callable[[], T], attempts: int, on_retry: Callable[[], None] | None = None) -> T:
    """Run ``fn`` until it stops raising PreconditionFailed (a lost compare-and-swap)."""
    from micforge.storage import PreconditionFailed

    for attempt in range(attempts):
        try:
            return fn()
        except PreconditionFailed:
            if on_retry is not None:
                on_retry()
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")
