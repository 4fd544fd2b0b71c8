"""Reading and checking request input: JSON bodies, query parameters, raw bodies.

Blueprints never touch ``request.get_json`` or ``request.args`` directly, so
the rules of API.md (Content-Type, body must be an object, size limits decided
before reading, integer parameters) live in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import current_app, request

from micforge.errors import InvalidRequest, TooLarge
from micforge.service.common import PAGE_LIMIT_MAX

READ_CHUNK_BYTES = 64 * 1024
POSITION_MAX = 2**63 - 1  # positions are unsigned 64-bit on disk; keep clear of the sign bit
LIMIT_MAX = PAGE_LIMIT_MAX  # largest page size any listing accepts (the services' bound)


def _limits():
    return current_app.extensions["micforge"].config.limits


def body_length() -> int | None:
    """The body's length in bytes if known before reading it.

    Werkzeug reports none for a chunked request, but a server that de-chunks
    before calling the app (waitress) marks the input terminated and sets
    CONTENT_LENGTH to the real length; use it, so a chunked body is judged
    before it is read and the service can hash it in one pass.
    """
    if request.content_length is not None:
        return request.content_length
    raw = request.environ.get("CONTENT_LENGTH", "")
    if request.environ.get("wsgi.input_terminated") and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def check_content_length(limit_bytes: int, what: str) -> None:
    """413 from the header alone, before a byte of the body is read."""
    length = body_length()
    if length is not None and length > limit_bytes:
        raise TooLarge(f"{what} is {length} bytes; the limit is {limit_bytes} bytes")


def body_chunks(limit_bytes: int, what: str) -> Iterator[bytes]:
    """The raw body as chunks, cut off with 413 as soon as it passes ``limit_bytes``.

    Content-Length is checked up front; a body without one (chunked) is counted
    while it streams, so nothing past the limit is ever handed on.
    """
    check_content_length(limit_bytes, what)
    if (
        request.content_length is None
        and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        and not request.environ.get("wsgi.input_terminated")
    ):
        # Werkzeug would read such a body as empty; storing an empty blob would be a lie.
        raise InvalidRequest("this server cannot read chunked bodies; send Content-Length")
    stream = request.stream
    total_bytes = 0
    while True:
        chunk = stream.read(READ_CHUNK_BYTES)
        if not chunk:
            return
        total_bytes += len(chunk)
        if total_bytes > limit_bytes:
            raise TooLarge(f"{what} is over the limit of {limit_bytes} bytes")
        yield chunk


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or 400/413 as API.md says."""
    if request.mimetype != "application/json":
        raise InvalidRequest(
            f"Content-Type must be application/json, got {request.content_type or 'none'!r}"
        )
    limit_bytes = _limits().json_body_max_bytes
    raw = b"".join(body_chunks(limit_bytes, "JSON body"))
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise InvalidRequest(f"malformed JSON body: {error}") from None
    except RecursionError:
        raise InvalidRequest("malformed JSON body: nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidRequest("JSON body must be an object")
    return value


def field(body: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    """``body[name]`` checked to be of ``kind`` (bool is not an int here)."""
    if name not in body or body[name] is None:
        if required:
            raise InvalidRequest(f"missing field {name!r}")
        return None
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"field {name!r} must be {_kind_name(kind)}")
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON "\ud800" escapes decode to unpaired surrogates
            raise InvalidRequest(f"field {name!r} is not valid UTF-8 text") from None
    return value


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", dict: "an object", list: "an array"}.get(
        kind, kind.__name__
    )


def choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{what} must be one of {', '.join(allowed)}; got {value!r:.80}")
    return value  # type: ignore[return-value]


def check_url_path_is_utf8() -> None:
    """400 unless the URL's path, percent-decoded, is valid UTF-8.

    Under WSGI, PATH_INFO holds the decoded bytes as latin-1 characters, and
    Werkzeug routes on them decoded with errors="replace": ``files/%ff`` would
    name the file "\ufffd" (API.md: paths are compared byte for byte, and a
    malformed path is 400, in a body or in a URL).
    """
    if not _is_utf8(request.environ.get("PATH_INFO", "")):
        raise InvalidRequest("URL path is not valid UTF-8 (after percent-decoding)")


def check_query_is_utf8() -> None:
    """400 unless every query key and value, percent-decoded, is valid UTF-8.

    Werkzeug keeps undecodable bytes percent-encoded (``?prefix=%ff`` reads as
    the text "%FF"), so the raw QUERY_STRING is checked, split as Werkzeug
    splits it (on "&", then the first "=", "+" meaning a space).
    """
    raw = request.environ.get("QUERY_STRING", "")
    if not raw:
        return
    try:
        raw_bytes = raw.encode("latin-1")
    except UnicodeEncodeError:  # not PEP 3333 bytes-as-latin-1: nothing to trust
        raise InvalidRequest("query string is not valid UTF-8") from None
    for pair in raw_bytes.split(b"&"):
        for part in pair.split(b"=", 1):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest(
                    "query string is not valid UTF-8 (after percent-decoding)"
                ) from None


def _is_utf8(wsgi_text: str) -> bool:
    """Whether a WSGI string (bytes as latin-1 characters) holds valid UTF-8."""
    try:
        wsgi_text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False
    return True


def query_int(
    name: str, *, default: int | None = None, minimum: int = 0, maximum: int = POSITION_MAX
) -> int | None:
    raw = query_str(name)
    if raw is None:
        return default
    # int() would accept " 7", "+7" and "7_0"; the contract is plain decimal digits.
    if not raw.isascii() or not raw.isdigit():
        raise InvalidRequest(f"query parameter {name!r} must be a non-negative integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"query parameter {name!r} must be between {minimum} and {maximum}")
    return value


def query_limit(default: int) -> int:
    value = query_int("limit", default=default, minimum=1, maximum=LIMIT_MAX)
    assert value is not None
    return value


def query_str(name: str) -> str | None:
    """A free-form string parameter (a cursor): absent or empty is None (empty is
    absent for every parameter: allowEmptyValue in the OpenAPI document)."""
    raw = request.args.get(name)
    return None if raw is None or raw == "" else raw


def query_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """An enum parameter: absent or empty is None; any other value must be one of
    ``choices`` (400 otherwise)."""
    raw = query_str(name)
    if raw is not None:
        choice(raw, choices, name)
    return raw
