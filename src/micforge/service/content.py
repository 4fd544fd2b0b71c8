"""Reads of a project's content: head, tree at a position, files, log, diff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from micforge import validate
from micforge.auth import Role, User
from micforge.config import Limits
from micforge.core.tree import EMPTY_TREE_HASH
from micforge.errors import InvalidRequest, NotFound, TooLarge
from micforge.service.blobs import BlobService
from micforge.service.common import (
    MODE_NAMES,
    Authorizer,
    check_page_limit,
    decode_cursor_text,
    encode_cursor_text,
    rfc3339,
    rfc3339_from_hlc,
)
from micforge.service.history import History


class ContentService:
    def __init__(
        self,
        authorizer: Authorizer,
        history: History,
        blobs: BlobService,
        auth,
        diff_changes_max: int = Limits.diff_changes_max,
    ) -> None:
        self._authz = authorizer
        self._history = history
        self._blobs = blobs
        self._auth = auth
        self._diff_changes_max = diff_changes_max

    def head_unchecked(self, project: str) -> dict:
        hint = self._history.read_head(project)
        tip = self._history.tip(project, hint)
        if tip == 0:  # no head object either: one is written only by a landing
            return empty_head(self._auth.get_project(project).created_at)
        if tip == hint.position:
            return {
                "position": tip,
                "tree_hash": hint.tree_hash.hex(),
                "updated_at": rfc3339_from_hlc(hint.hlc),
            }
        record = self._history.record(project, tip)
        return {
            "position": tip,
            "tree_hash": record.tree_hash.hex(),
            "updated_at": rfc3339_from_hlc(record.hlc),
        }

    def head(self, user: User, project: str) -> dict:
        self._authz.require(user, project, Role.READ)
        return self.head_unchecked(project)

    def _resolve_at(self, project: str, at: int | None) -> tuple[int, bytes]:
        tip = self._history.tip(project)
        if at is None:
            at = tip
        if not isinstance(at, int) or at < 0:
            raise InvalidRequest("position must be a non-negative integer")
        if at > tip:
            raise NotFound(f"position {at} not found (the tip is {tip})")
        return at, self._history.tree_at(project, at)

    def tree(
        self,
        user: User,
        project: str,
        prefix: str = "",
        at: int | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> dict:
        self._authz.require(user, project, Role.READ)
        prefix = validate.path_prefix(prefix)
        check_page_limit(limit)
        start_after = None
        if cursor:
            # A cursor pins the snapshot its first page read: following pages
            # without `at` must not drift to a newer tip and skip or repeat entries.
            cursor_position, start_after = _decode_tree_cursor(cursor)
            if at is not None and at != cursor_position:
                raise InvalidRequest(
                    f"cursor belongs to a listing at another position than at={at}; "
                    "pass the first page's at, or none"
                )
            at = cursor_position
        try:
            position, root = self._resolve_at(project, at)
        except NotFound:
            if not cursor:
                raise
            raise InvalidRequest(_FOREIGN_CURSOR) from None  # past the tip: never handed out
        entries = self._history.tree(project).list(
            root, prefix=prefix, start_after=start_after, limit=limit + 1
        )
        more = len(entries) > limit
        entries = entries[:limit]
        return {
            "position": position,
            "tree_hash": root.hex(),
            "entries": [
                {
                    "path": e.path,
                    "blob_hash": e.blob_hash.hex(),
                    "mode": MODE_NAMES.get(e.mode, "file"),
                    "size": e.size,
                }
                for e in entries
            ],
            "next_cursor": (
                _encode_tree_cursor(position, entries[-1].path) if more and entries else None
            ),
        }

    def file(
        self, user: User, project: str, path: str, at: int | None = None
    ) -> tuple[int, Iterator[bytes]]:
        """The size and content of the file at ``path`` (at position ``at``, default the tip)."""
        blob_hex = self._file_blob(user, project, path, at)
        return self._blobs.open_unchecked(project, blob_hex)

    def file_size(self, user: User, project: str, path: str, at: int | None = None) -> int:
        """What ``file`` would answer for the size, from the blob's header alone: the
        content is neither read nor verified (a HEAD request)."""
        blob_hex = self._file_blob(user, project, path, at)
        return self._blobs.size_of(project, blob_hex)

    def _file_blob(self, user: User, project: str, path: str, at: int | None) -> str:
        self._authz.require(user, project, Role.READ)
        path = validate.path(path)
        _, root = self._resolve_at(project, at)
        entry = self._history.tree(project).lookup(root, path)
        if entry is None:
            raise NotFound(f"no file at {path!r}")
        return entry.blob_hash.hex()

    def log(
        self, user: User, project: str, from_position: int | None = None, limit: int = 50
    ) -> dict:
        """Landings newest first, starting at ``from_position`` inclusive (default: the tip)."""
        self._authz.require(user, project, Role.READ)
        check_page_limit(limit)
        tip = self._history.tip(project)
        start = tip if from_position is None else from_position
        if not isinstance(start, int) or start < 0:
            raise InvalidRequest("from must be a non-negative integer")
        if start > tip:
            raise NotFound(f"position {start} not found (the tip is {tip})")
        positions = list(range(start, max(0, start - limit), -1))
        records = self._history.records(project, positions)
        landings = [
            {
                "position": r.position,
                "session_id": r.session_id.hex(),
                "goal": r.goal,
                "owner": r.author,
                "tree_hash": r.tree_hash.hex(),
                "paths": list(r.paths),
                "landed_at": rfc3339_from_hlc(r.hlc),
            }
            for r in records
        ]
        following = start - limit
        return {"landings": landings, "next": following if following >= 1 else None}

    def diff(
        self, user: User, project: str, from_position: int, to_position: int | None = None
    ) -> dict:
        self._authz.require(user, project, Role.READ)
        old_position, old_root = self._resolve_at(project, from_position)
        new_position, new_root = self._resolve_at(project, to_position)
        # Bounded: the walk stops past the limit, so no request can make the server
        # build (and hold, and encode) a whole large tree's worth of changes.
        changes, more = self._history.tree(project).diff_bounded(
            old_root, new_root, self._diff_changes_max
        )
        if more:
            raise TooLarge(
                f"the diff from position {old_position} to {new_position} has more than"
                f" {self._diff_changes_max} changes; diff a shorter range, or list the"
                " tree at each position"
            )
        return {
            "changes": [
                {
                    "path": c.path,
                    "change": c.change,
                    "old_hash": c.old.blob_hash.hex() if c.old else None,
                    "new_hash": c.new.blob_hash.hex() if c.new else None,
                }
                for c in changes
            ]
        }


def empty_head(created_at: datetime) -> dict:
    """The head of a project before its first landing, created at ``created_at``."""
    return {"position": 0, "tree_hash": EMPTY_TREE_HASH.hex(), "updated_at": rfc3339(created_at)}


_FOREIGN_CURSOR = "cursor is not one this server handed out"


def _encode_tree_cursor(position: int, path: str) -> str:
    """The opaque cursor after ``path`` in the tree at ``position``: base64url of
    "<position>" NUL "<path>" (a path holds no NUL), unpadded."""
    return encode_cursor_text(f"{position}\x00{path}")


def _decode_tree_cursor(cursor: str) -> tuple[int, str]:
    """``(position, path)`` of a cursor from :func:`_encode_tree_cursor`; anything
    else (including another spelling of the same bytes) is 400."""
    try:
        payload = decode_cursor_text(cursor)
        position_text, separator, path = payload.partition("\x00")
        if not separator or not position_text.isascii() or not position_text.isdigit():
            raise ValueError("no position")
        position = int(position_text)
        validate.path(path)
        # One spelling per cursor: b64decode skips stray characters, and "007" is 7.
        if _encode_tree_cursor(position, path) != cursor:
            raise ValueError("not canonical")
    except (ValueError, InvalidRequest):
        raise InvalidRequest(_FOREIGN_CURSOR) from None
    return position, path
