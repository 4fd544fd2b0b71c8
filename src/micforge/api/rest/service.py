"""Service endpoints that need no token: health, metrics, the OpenAPI document."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from micforge.api.rest.errors import error_response
from micforge.api.rest.openapi import openapi_document

bp = Blueprint("service", __name__)
log = logging.getLogger("micforge.api.rest")


@bp.get("/healthz")
def healthz() -> Response | dict:
    services = current_app.extensions["micforge"].services
    checks: dict[str, str] = {}
    # Any failure, not just Unavailable: a health check must answer, not crash.
    try:
        services.store.list("", limit=1)  # reaches a remote store
        # A store that lists may still refuse every write (a read-only mount, a
        # LocalStore root that is no longer a directory, which reads as empty).
        # An object writer opened and aborted (leaving the block) writes nothing
        # and fails there as every write would.
        with services.store.open_writer():
            pass
        checks["store"] = "ok"
    except Exception as error:  # noqa: BLE001
        log.warning("health check: store failed: %s", error)
        checks["store"] = "unavailable"
    try:
        services.auth.ping()
        checks["auth_db"] = "ok"
    except Exception as error:  # noqa: BLE001
        log.warning("health check: auth DB failed: %s", error)
        checks["auth_db"] = "unavailable"
    failed = sorted(name for name, status in checks.items() if status != "ok")
    if failed:
        return error_response(
            503, "unavailable", f"not answering: {', '.join(failed)}", checks=checks
        )
    return {"status": "ok", "checks": checks}


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["micforge"].services.metrics.registry
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.get("/api/openapi.json")
def openapi() -> dict:
    return openapi_document()
