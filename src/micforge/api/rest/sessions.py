"""Sessions: start, record, land, abandon, rebase (API.md "Sessions").

The blueprint checks shapes and types; the service layer checks roles, states
and limits that depend on stored data, and returns API-shaped dicts. Operations
are the exception: the service checks them whole, for REST and gRPC alike.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from micforge import validate
from micforge.api.rest.auth import current_user
from micforge.api.rest.inputs import (
    choice,
    field,
    json_body,
    query_choice,
    query_limit,
    query_str,
)
from micforge.errors import InvalidRequest, TooLarge

bp = Blueprint("sessions", __name__, url_prefix="/api/mic/projects/<project>/sessions")

STATES = ("open", "landed", "conflicted", "abandoned")
ROLES = ("user", "agent", "system")
SESSIONS_PAGE_DEFAULT = 50


def _state():
    return current_app.extensions["micforge"]


def _ids(project: str, sid: str | None = None) -> tuple[str, str | None]:
    return validate.project_id(project), None if sid is None else validate.session_id(sid)


def _text(body: dict[str, Any], name: str, limit_bytes: int, what: str) -> str:
    value = field(body, name, str)
    size_bytes = len(value.encode("utf-8"))
    if size_bytes > limit_bytes:
        raise TooLarge(f"{what} is {size_bytes} bytes; the limit is {limit_bytes} bytes")
    return value


@bp.post("")
def start(project: str) -> tuple[dict, int]:
    project, _ = _ids(project)
    goal = _text(json_body(), "goal", _state().config.limits.goal_max_bytes, "goal")
    return _state().services.sessions.start(current_user(), project, goal), 201


@bp.get("")
def list_sessions(project: str) -> dict:
    project, _ = _ids(project)
    state = query_choice("state", STATES)
    sessions, next_cursor = _state().services.sessions.list(
        current_user(),
        project,
        state=state,
        limit=query_limit(SESSIONS_PAGE_DEFAULT),
        cursor=query_str("cursor"),
    )
    return {"sessions": sessions, "next_cursor": next_cursor}


@bp.get("/<sid>")
def get(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    return _state().services.sessions.get(current_user(), project, sid)


# The fields of a single operation's body (API.md), refused next to "operations".
_SINGLE_OPERATION_FIELDS = ("op", "path", "blob_hash", "mode")


@bp.post("/<sid>/operations")
def record_operations(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    body = json_body()
    # One operation, or a batch under "operations". The service checks the operations
    # themselves (gRPC hands it the same dicts), so both protocols apply one set of rules.
    if "operations" in body:
        ops: list | dict = field(body, "operations", list)
        if not ops:
            raise InvalidRequest("operations must not be empty")
        single = sorted(k for k in _SINGLE_OPERATION_FIELDS if body.get(k) is not None)
        if single:  # one of the two would be dropped silently
            raise InvalidRequest(
                f"a body is one operation or a batch under 'operations', not both"
                f" (it also has {', '.join(repr(k) for k in single)})"
            )
    else:
        ops = body
    return _state().services.sessions.record_operations(current_user(), project, sid, ops)


@bp.post("/<sid>/decisions")
def record_decision(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    content = _text(json_body(), "content", _state().config.limits.entry_max_bytes, "decision")
    return _state().services.sessions.record_decision(current_user(), project, sid, content)


@bp.post("/<sid>/conversation")
def record_conversation(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    body = json_body()
    role = choice(field(body, "role", str), ROLES, "role")
    content = _text(body, "content", _state().config.limits.entry_max_bytes, "conversation entry")
    return _state().services.sessions.record_conversation(
        current_user(), project, sid, role, content
    )


@bp.post("/<sid>/land")
def land(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    return _state().services.landing.land(current_user(), project, sid)


@bp.post("/<sid>/abandon")
def abandon(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    return _state().services.sessions.abandon(current_user(), project, sid)


@bp.post("/<sid>/rebase")
def rebase(project: str, sid: str) -> dict:
    project, sid = _ids(project, sid)
    return _state().services.sessions.rebase(current_user(), project, sid)
