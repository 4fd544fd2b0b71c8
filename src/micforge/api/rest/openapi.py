"""The OpenAPI 3 document of API.md, built from one table of operations.

``OPERATIONS`` is the list of every route the app serves; a test compares it
with ``app.url_map`` in both directions, so a route cannot be added or removed
without this document following. Response schemas are precise enough for
schemathesis to validate real responses against them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from micforge.api.rest.inputs import LIMIT_MAX, POSITION_MAX

PROJECT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
HASH_PATTERN = r"^[0-9a-f]{64}$"
SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_POSITION = {"type": "integer", "minimum": 0, "maximum": POSITION_MAX}
_HASH = {"type": "string", "pattern": HASH_PATTERN}
_PATH = {"type": "string", "minLength": 1, "maxLength": 4096}
_MODE = {"type": "string", "enum": ["file", "exec", "symlink"]}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        {
            "error": _obj(
                {"code": _STR, "message": _STR},
                {"paths": {"type": "array", "items": _STR}},
            )
        }
    ),
    "User": _obj({"id": _STR, "email": _STR}),
    "NewToken": _obj(
        {"id": _STR, "name": _STR, "token": _STR, "expires_at": _nullable(_TIME)},
    ),
    "TokenList": _obj(
        {
            "tokens": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _STR,
                        "name": _STR,
                        "expires_at": _nullable(_TIME),
                        "created_at": _TIME,
                    }
                ),
            }
        }
    ),
    "Head": _obj({"position": _POSITION, "tree_hash": _HASH, "updated_at": _nullable(_TIME)}),
    "Project": _obj({"id": _STR, "head": _ref("Head")}),
    "ProjectList": _obj({"projects": {"type": "array", "items": _ref("Project")}}),
    "Member": _obj(
        {
            "project": _STR,
            "user_id": _STR,
            "role": {"type": "string", "enum": ["read", "write", "owner"]},
        }
    ),
    "Operation": _obj(
        {"op": {"type": "string", "enum": ["write", "delete"]}, "path": _STR, "mode": _MODE},
        {"blob_hash": _HASH},
    ),
    "Session": _obj(
        {
            "id": {"type": "string", "pattern": SESSION_ID_PATTERN},
            "project": _STR,
            "goal": _STR,
            "state": {"type": "string", "enum": ["open", "landed", "conflicted", "abandoned"]},
            "owner": _STR,
            "base_position": _POSITION,
            "landed_position": _nullable(_POSITION),
            "operations": {"type": "array", "items": _ref("Operation")},
            "decisions": {
                "type": "array",
                "items": _obj({"content": _STR, "at": _TIME}),
            },
            "conversation": {
                "type": "array",
                "items": _obj(
                    {
                        "role": {"type": "string", "enum": ["user", "agent", "system"]},
                        "content": _STR,
                        "at": _TIME,
                    }
                ),
            },
            "created_at": _TIME,
            "updated_at": _TIME,
        }
    ),
    "SessionList": _obj(
        {
            "sessions": {"type": "array", "items": _ref("Session")},
            "next_cursor": _nullable(_STR),
        }
    ),
    "Landed": _obj({"position": _POSITION, "tree_hash": _HASH, "session": _ref("Session")}),
    "Blob": _obj({"hash": _HASH, "size": {"type": "integer", "minimum": 0}}),
    "Tree": _obj(
        {
            "position": _POSITION,
            "tree_hash": _HASH,
            "entries": {
                "type": "array",
                "items": _obj(
                    {
                        "path": _STR,
                        "blob_hash": _HASH,
                        "mode": _MODE,
                        "size": {"type": "integer", "minimum": 0},
                    }
                ),
            },
            "next_cursor": _nullable(_STR),
        }
    ),
    "Log": _obj(
        {
            "landings": {
                "type": "array",
                "items": _obj(
                    {
                        "position": _POSITION,
                        "session_id": _STR,
                        "goal": _STR,
                        "owner": _STR,
                        "tree_hash": _HASH,
                        "paths": {"type": "array", "items": _STR},
                        "landed_at": _TIME,
                    }
                ),
            },
            "next": _nullable(_POSITION),
        }
    ),
    "Diff": _obj(
        {
            "changes": {
                "type": "array",
                "items": _obj(
                    {
                        "path": _STR,
                        "change": {"type": "string", "enum": ["added", "modified", "deleted"]},
                        "old_hash": _nullable(_HASH),
                        "new_hash": _nullable(_HASH),
                    }
                ),
            }
        }
    ),
    "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
}

_WRITE_OP = {
    "type": "object",
    "required": ["op", "path", "blob_hash"],
    "properties": {
        "op": {"type": "string", "enum": ["write"]},
        "path": _PATH,
        "blob_hash": _HASH,
        "mode": _MODE,
    },
}
_DELETE_OP = {
    "type": "object",
    "description": 'A delete names no blob (blob_hash absent or null) and no mode but "file".',
    "required": ["op", "path"],
    "properties": {
        "op": {"type": "string", "enum": ["delete"]},
        "path": _PATH,
        "mode": {"type": "string", "enum": ["file", None], "nullable": True},
        "blob_hash": {"nullable": True, "enum": [None]},
    },
}
REQUEST_BODIES: dict[str, Schema] = {
    "NewTokenRequest": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
            },
            # null is the same as leaving it out (no expiry), as the server reads it.
            "expires_in_days": {
                "type": "integer",
                "minimum": 1,
                "maximum": 3650,
                "nullable": True,
            },
        },
    },
    "NewProjectRequest": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "pattern": PROJECT_ID_PATTERN}},
    },
    "MemberRequest": {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string", "enum": ["read", "write", "owner"]}},
    },
    "NewSessionRequest": {"type": "object", "required": ["goal"], "properties": {"goal": _STR}},
    "OperationsRequest": {
        "anyOf": [
            _WRITE_OP,
            _DELETE_OP,
            {
                "type": "object",
                "required": ["operations"],
                "properties": {
                    "operations": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"anyOf": [_WRITE_OP, _DELETE_OP]},
                    }
                },
            },
        ]
    },
    "DecisionRequest": {"type": "object", "required": ["content"], "properties": {"content": _STR}},
    "ConversationRequest": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "agent", "system"]},
            "content": _STR,
        },
    },
}

_PATH_PARAMS: dict[str, Schema] = {
    "project": {"type": "string", "pattern": PROJECT_ID_PATTERN},
    "sid": {"type": "string", "pattern": SESSION_ID_PATTERN},
    "hash_hex": _HASH,
    "token_id": {"type": "string", "minLength": 1},
    "user_id": {"type": "string", "minLength": 1},
    "path": _PATH,
}
_QUERY_PARAMS: dict[str, Schema] = {
    "state": {"type": "string", "enum": ["open", "landed", "conflicted", "abandoned"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
    "cursor": _STR,
    "prefix": _STR,
    "at": _POSITION,
    "from": _POSITION,
    "to": _POSITION,
}

# Error statuses every authenticated operation can answer.
_COMMON_ERRORS = (400, 401, 413, 429, 503)
_ERROR_TEXT = {
    400: "invalid request",
    401: "missing, unknown, expired or revoked token",
    403: "role too low for this project",
    404: "not found (or not readable by the caller)",
    409: "conflict, invalid state or already exists",
    413: "over a configured limit",
    429: "rate limited; see Retry-After",
    503: "storage or auth DB unavailable",
}


@dataclass(frozen=True)
class Operation:
    """One route: what the app serves and what the document says about it."""

    method: str  # lower case, as in OpenAPI
    path: str  # OpenAPI template; parameters named like the Flask rule's variables
    operation_id: str
    summary: str
    ok: dict[int, Schema | str | None]  # status -> schema, "bytes", "text" or None (no body)
    errors: tuple[int, ...] = ()
    body: str | None = None  # a REQUEST_BODIES name, or "bytes"
    query: tuple[str, ...] = ()
    required_query: tuple[str, ...] = ()
    public: bool = False
    tag: str = ""
    head: bool = False  # document HEAD alongside GET (Flask serves HEAD for every GET)


_P = "/api/mic/projects/{project}"
_S = _P + "/sessions/{sid}"

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/api/mic/me", "getMe", "The caller.", {200: _ref("User")}, tag="identity"),
    Operation("post", "/api/mic/tokens", "createToken", "Create an API token (shown once).",
              {201: _ref("NewToken")}, body="NewTokenRequest", tag="identity"),
    Operation("get", "/api/mic/tokens", "listTokens", "The caller's tokens (never the secret).",
              {200: _ref("TokenList")}, tag="identity"),
    Operation("delete", "/api/mic/tokens/{token_id}", "revokeToken", "Revoke a token at once.",
              {204: None}, errors=(404,), tag="identity"),
    Operation("post", "/api/mic/projects", "createProject", "Create a project; caller is owner.",
              {201: _ref("Project")}, errors=(409,), body="NewProjectRequest", tag="projects"),
    Operation("get", "/api/mic/projects", "listProjects", "Projects the caller can read.",
              {200: _ref("ProjectList")}, tag="projects"),
    Operation("get", _P, "getProject", "A project and its head.",
              {200: _ref("Project")}, errors=(404,), tag="projects"),
    Operation("put", _P + "/members/{user_id}", "setMember", "Give a user a role (owner only).",
              {200: _ref("Member")}, errors=(403, 404), body="MemberRequest", tag="projects"),
    Operation("delete", _P + "/members/{user_id}", "removeMember", "Remove a member (owner only).",
              {204: None}, errors=(403, 404), tag="projects"),
    Operation("post", _P + "/sessions", "startSession", "Start a session at the current tip.",
              {201: _ref("Session")}, errors=(403, 404), body="NewSessionRequest", tag="sessions"),
    Operation("get", _P + "/sessions", "listSessions", "Sessions in creation order (oldest first), paginated.",
              {200: _ref("SessionList")}, errors=(404,), query=("state", "limit", "cursor"),
              tag="sessions"),
    Operation("get", _S, "getSession", "One session.",
              {200: _ref("Session")}, errors=(404,), tag="sessions"),
    Operation("post", _S + "/operations", "recordOperations", "Record one or a batch of operations.",
              {200: _ref("Session")}, errors=(403, 404, 409), body="OperationsRequest",
              tag="sessions"),
    Operation("post", _S + "/decisions", "recordDecision", "Record a decision.",
              {200: _ref("Session")}, errors=(403, 404, 409), body="DecisionRequest",
              tag="sessions"),
    Operation("post", _S + "/conversation", "recordConversation", "Record a conversation entry.",
              {200: _ref("Session")}, errors=(403, 404, 409), body="ConversationRequest",
              tag="sessions"),
    Operation("post", _S + "/land", "landSession", "Land the session onto the project's history.",
              {200: _ref("Landed")}, errors=(403, 404, 409), tag="sessions"),
    Operation("post", _S + "/abandon", "abandonSession", "Abandon the session.",
              {200: _ref("Session")}, errors=(403, 404, 409), tag="sessions"),
    Operation("post", _S + "/rebase", "rebaseSession", "Move the session's base to the tip.",
              {200: _ref("Session")}, errors=(403, 404, 409), tag="sessions"),
    Operation("post", _P + "/blobs", "uploadBlob", "Store raw bytes; 200 if already stored.",
              {200: _ref("Blob"), 201: _ref("Blob")}, errors=(403, 404), body="bytes",
              tag="content"),
    Operation("get", _P + "/blobs/{hash_hex}", "getBlob", "Raw blob bytes; honours If-None-Match.",
              {200: "bytes", 304: None}, errors=(404,), tag="content", head=True),
    Operation("get", _P + "/tree", "getTree", "List the tree at a position.",
              {200: _ref("Tree")}, errors=(404,), query=("prefix", "at", "limit", "cursor"),
              tag="content"),
    Operation("get", _P + "/files/{path}", "getFile", "Raw bytes of a file at a position.",
              {200: "bytes"}, errors=(404,), query=("at",), tag="content"),
    Operation("get", _P + "/log", "getLog", "Landings, newest first.",
              {200: _ref("Log")}, errors=(404,), query=("from", "limit"), tag="content"),
    Operation("get", _P + "/diff", "getDiff", "Changes between two positions.",
              {200: _ref("Diff")}, errors=(404, 413), query=("from", "to"),
              required_query=("from", "to"), tag="content"),
    Operation("get", "/healthz", "healthz", "Store and auth DB answer.",
              {200: _ref("Health")}, errors=(503,), public=True, tag="service"),
    Operation("get", "/metrics", "metrics", "Prometheus text format.",
              {200: "text"}, public=True, tag="service"),
    Operation("get", "/api/openapi.json", "openapi", "This document.",
              {200: {"type": "object"}}, public=True, tag="service"),
)  # fmt: skip


def _content(kind: Schema | str | None) -> dict[str, Any]:
    if kind is None:
        return {}
    if kind == "bytes":
        return {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        }
    if kind == "text":
        return {"content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"content": {"application/json": {"schema": kind}}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = []
    for name in _path_variables(op.path):
        params.append({"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS[name]})
    for name in op.query:
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in op.required_query,
                # An empty value is the same as leaving the parameter out (docs/api.md).
                "allowEmptyValue": name not in op.required_query,
                "schema": _QUERY_PARAMS[name],
            }
        )
    return params


def _path_variables(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _responses(op: Operation, *, head: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, kind in op.ok.items():
        responses[str(status)] = {"description": "success", **({} if head else _content(kind))}
    errors = op.errors if op.public else (*_COMMON_ERRORS, *op.errors)
    for status in sorted(set(errors)):
        content = {} if head else _content(_ref("Error"))
        responses[str(status)] = {"description": _ERROR_TEXT[status], **content}
    if "401" in responses:
        responses["401"]["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "required": True},
        }
    if "429" in responses:
        responses["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "required": True},
        }
    if op.operation_id == "getBlob":
        responses["200"]["headers"] = {
            "ETag": {"schema": {"type": "string"}, "required": True},
            "Cache-Control": {"schema": {"type": "string"}, "required": True},
        }
    return responses


def _operation(op: Operation, *, head: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": ("head" + op.operation_id[3:]) if head else op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op, head=head),
    }
    if op.public:
        doc["security"] = []
    if op.body == "bytes":
        # No body at all is a body of 0 bytes: it uploads the empty blob.
        doc["requestBody"] = {
            "required": False,
            "description": "the blob's bytes; an empty or absent body is the empty blob",
            **_content("bytes"),
        }
    elif op.body:
        doc["requestBody"] = {"required": True, **_content(_ref(op.body))}
    return doc


def openapi_path(flask_rule: str) -> str:
    """The OpenAPI template of a Flask rule: ``<anypath:path>`` -> ``{path}``."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", flask_rule)


def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(method, OpenAPI path) -> the query parameters the route takes; HEAD as GET.

    The public service routes (health, metrics, this document) are left out: probes
    and scrapers may add parameters of their own, and ignoring them is harmless."""
    table: dict[tuple[str, str], frozenset[str]] = {}
    for op in OPERATIONS:
        if op.public:
            continue
        table[(op.method, op.path)] = frozenset(op.query)
        if op.method == "get":
            table[("head", op.path)] = frozenset(op.query)
    return table


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may not mutate a shared one)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item = paths.setdefault(op.path, {})
        item[op.method] = _operation(op)
        if op.head:
            item["head"] = _operation(op, head=True)
    return copy.deepcopy(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "micforge",
                "version": "1",
                "description": "The REST contract of micforge (API.md). Errors are "
                '{"error": {"code", "message", ...}}.',
            },
            "paths": paths,
            "components": {
                "schemas": {**SCHEMAS, **REQUEST_BODIES},
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }
    )
