"""The Flask application factory: ``create_app(config, services=...)``.

Nothing is configured at import time. Each call builds its own app and HTTP
metrics (on the services' own Prometheus registry), and takes its rate limiter
from the services (shared with a gRPC server over them), so any number of apps
live side by side in one process, as the tests do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.routing import PathConverter

from micforge.api.rest import (
    auth,
    content,
    errors,
    identity,
    openapi,
    projects,
    service,
    sessions,
)
from micforge.api.rest.inputs import (
    check_content_length,
    check_query_is_utf8,
    check_url_path_is_utf8,
)
from micforge.api.rest.observe import HttpMetrics, RequestObserver
from micforge.config import Config
from micforge.errors import InvalidRequest
from micforge.service.ratelimit import RateLimiter

if TYPE_CHECKING:
    from micforge.service import Services

BLUEPRINTS = (identity.bp, projects.bp, sessions.bp, content.bp, service.bp)


class AnyPathConverter(PathConverter):
    """Captures any rest of the URL, even empty or starting with '/'.

    Werkzeug's ``path`` refuses a leading slash and an empty value, which would
    turn a malformed repository path into a 404; API.md wants 400 for those,
    so the view sees the raw value and ``validate.path`` decides.
    """

    regex = ".*"
    # Werkzeug guesses part isolation from a "/" in the regex; ".*" has none but spans "/".
    part_isolating = False


@dataclass
class AppState:
    """What ``app.extensions["micforge"]`` holds: the app's collaborators."""

    config: Config
    services: Any  # micforge.service.Services
    limiter: RateLimiter
    http_metrics: HttpMetrics


def create_app(config: Config, *, services: Services | None = None) -> Flask:
    """The REST app over ``services`` (built from ``config`` when not given).

    One app per ``Services``: the app registers its HTTP metrics on
    ``services.metrics.registry``, and a registry takes each metric name once.
    """
    if services is None:
        from micforge.service import build_services

        services = build_services(config)

    app = Flask("micforge.api.rest", static_folder=None)  # an API: no /static route
    # Keep every byte of a URL: no "a//b" -> "a/b" redirect, paths are validated, not fixed.
    app.url_map.merge_slashes = False
    app.url_map.converters["anypath"] = AnyPathConverter
    app.json.sort_keys = False  # keep fields in the order API.md lists them
    app.json.ensure_ascii = False

    state = AppState(
        config=config,
        services=services,
        limiter=services.rate_limiter,
        http_metrics=HttpMetrics(services.metrics.registry),
    )
    app.extensions["micforge"] = state

    @app.before_request
    def note_route() -> None:
        # First hook: the request log and metrics label by route template, not raw path.
        if request.url_rule is not None:
            request.environ["micforge.route"] = request.url_rule.rule

    @app.before_request
    def reject_non_utf8_url() -> None:
        # Before routing's answer and the token: Werkzeug decoded the URL with
        # errors="replace", so what it routed on is not what the client sent.
        check_url_path_is_utf8()
        if request.endpoint not in auth.PUBLIC_ENDPOINTS:  # those ignore their parameters
            check_query_is_utf8()

    auth.install(app)

    allowed_query = openapi.query_parameters()

    @app.before_request
    def reject_unknown_query() -> None:
        # A misspelt (`?limt=5`) or repeated parameter must not be silently ignored:
        # 400 names it.
        if request.url_rule is None or not request.args:
            return
        path = openapi.openapi_path(request.url_rule.rule)
        allowed = allowed_query.get((request.method.lower(), path))
        if allowed is None:  # a public service route: parameters are ignored
            return
        for name in request.args:
            if name not in allowed:
                raise InvalidRequest(
                    f"unknown query parameter {name!r:.80}"
                    + (f"; this route takes {', '.join(sorted(allowed))}" if allowed else "")
                )
            # `?limit=5&limit=500` has no one meaning; taking either would hide a bug.
            given = len(request.args.getlist(name))
            if given > 1:
                raise InvalidRequest(f"query parameter {name!r} given {given} times; give it once")

    @app.before_request
    def limit_body() -> None:
        # Decided from Content-Length before anything reads the body (API.md: 413).
        if request.endpoint == content.UPLOAD_ENDPOINT:
            check_content_length(config.limits.blob_max_bytes, "blob")
        else:
            check_content_length(config.limits.json_body_max_bytes, "request body")

    @app.after_request
    def no_content_has_no_type(response: Response) -> Response:
        # A 204 has no body, so nothing to describe (RFC 9110 §15.3.5); Flask's
        # Response would still announce its default text/html.
        if response.status_code == 204:
            response.response = []
            response.headers.remove("Content-Type")
            response.headers.remove("Content-Length")
        return response

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    errors.register_error_handlers(app)
    app.wsgi_app = RequestObserver(app.wsgi_app, state.http_metrics)  # type: ignore[method-assign]
    return app
