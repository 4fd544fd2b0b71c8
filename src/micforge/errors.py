"""The domain error hierarchy, defined once.

Every layer raises these; the REST app and the gRPC server each map them to
their wire status in exactly one place (``api/rest/errors.py`` and
``api/grpc/interceptors.py``). ``code`` is the snake_case code of API.md.
"""

from __future__ import annotations


class MicError(Exception):
    """Base of every error a client may see."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    @property
    def client_message(self) -> str:
        """What a REST or gRPC client is told; ``message`` (the operator's, for logs and
        the ``micforge`` command) may say more."""
        return self.message


class InvalidRequest(MicError):
    code = "invalid_request"
    http_status = 400


class Unauthorized(MicError):
    code = "unauthorized"
    http_status = 401


class Forbidden(MicError):
    code = "forbidden"
    http_status = 403


class NotFound(MicError):
    code = "not_found"
    http_status = 404


class Conflict(MicError):
    """A landing conflicts with landings after the session's base."""

    code = "conflict"
    http_status = 409

    def __init__(
        self, message: str = "", paths: list[str] | None = None, **details: object
    ) -> None:
        self.paths = sorted(paths or [])
        super().__init__(message or "landing conflicts", paths=self.paths, **details)


class InvalidState(MicError):
    code = "invalid_state"
    http_status = 409


class AlreadyExists(MicError):
    code = "already_exists"
    http_status = 409


class TooLarge(MicError):
    code = "too_large"
    http_status = 413


class RateLimited(MicError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str = "", retry_after_s: int = 1, **details: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message or "rate limited", **details)


class Unavailable(MicError):
    """Storage (or the auth DB) could not be reached after retries; nothing was half-written."""

    code = "unavailable"
    http_status = 503


class AuthDBUnavailable(Unavailable):
    """The auth DB did not answer. ``message`` carries the driver's reason (host and
    port, never a password) for the log and the operator; clients, who may not even
    be authenticated yet, are told only that the auth DB is unavailable."""

    @property
    def client_message(self) -> str:
        return "auth DB unavailable"


class Corrupt(MicError):
    """A stored object failed its integrity check; it is never served."""

    code = "internal"
    http_status = 500
