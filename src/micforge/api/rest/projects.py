"""Projects and their members (API.md "Projects")."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from micforge import validate
from micforge.api.rest.auth import current_user
from micforge.api.rest.inputs import choice, field, json_body

bp = Blueprint("projects", __name__, url_prefix="/api/mic/projects")

ROLES = ("read", "write", "owner")


def _projects():
    return current_app.extensions["micforge"].services.projects


@bp.post("")
def create_project() -> tuple[dict, int]:
    project = validate.project_id(field(json_body(), "id", str))
    return _projects().create(current_user(), project), 201


@bp.get("")
def list_projects() -> dict:
    return {"projects": _projects().list(current_user())}


@bp.get("/<project>")
def get_project(project: str) -> dict:
    return _projects().get(current_user(), validate.project_id(project))


@bp.put("/<project>/members/<user_id>")
def set_member(project: str, user_id: str) -> dict:
    project = validate.project_id(project)
    role = choice(field(json_body(), "role", str), ROLES, "role")
    return _projects().set_member(current_user(), project, user_id, role)


@bp.delete("/<project>/members/<user_id>")
def remove_member(project: str, user_id: str) -> Response:
    _projects().remove_member(current_user(), validate.project_id(project), user_id)
    return Response(status=204)
