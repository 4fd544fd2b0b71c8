"""Identity: who am I, and my API tokens (API.md "Identity")."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app

from micforge.api.rest.auth import current_user
from micforge.api.rest.inputs import field, json_body

bp = Blueprint("identity", __name__, url_prefix="/api/mic")


def _time(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds and ``Z``, as the service layer writes times."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # the auth DB hands out naive UTC datetimes
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _auth():
    return current_app.extensions["micforge"].services.auth


@bp.get("/me")
def me() -> dict:
    user = current_user()
    return {"id": user.id, "email": user.email}


@bp.post("/tokens")
def create_token() -> tuple[dict, int]:
    body = json_body()
    name = field(body, "name", str)  # the auth DB checks length and characters
    days = field(body, "expires_in_days", int, required=False)
    info, secret = _auth().create_token(current_user().id, name, expires_in_days=days)
    return {
        "id": info.id,
        "name": info.name,
        "token": secret,
        "expires_at": _time(info.expires_at),
    }, 201


@bp.get("/tokens")
def list_tokens() -> dict:
    return {
        "tokens": [
            {
                "id": info.id,
                "name": info.name,
                "expires_at": _time(info.expires_at),
                "created_at": _time(info.created_at),
            }
            for info in _auth().list_tokens(current_user().id)
        ]
    }


@bp.delete("/tokens/<token_id>")
def revoke_token(token_id: str) -> Response:
    _auth().revoke_token(current_user().id, token_id)
    return Response(status=204)
