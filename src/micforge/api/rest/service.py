"""Service endpoints that need no token: health, metrics, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from micforge.api.rest.errors import error_response
from micforge.api.rest.openapi import openapi_document

bp = Blueprint("service", __name__)


@bp.get("/healthz")
def healthz() -> Response | dict:
    checks = current_app.extensions["micforge"].services.health()  # also gRPC health's
    failed = sorted(name for name, status in checks.items() if status != "ok")
    if checks.get("server") == "shutting_down":  # draining before the ports close
        return error_response(503, "unavailable", "shutting down", checks=checks)
    if failed:
        return error_response(
            503,
            "unavailable",
            f"unavailable: {', '.join(failed)} (the log says why)",
            checks=checks,
        )
    return {"status": "ok", "checks": checks}


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["micforge"].services.metrics.registry
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.get("/api/openapi.json")
def openapi() -> dict:
    return openapi_document()
