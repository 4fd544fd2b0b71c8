"""Content: blobs, trees, files, the log and diffs (API.md "Content").

Blob bodies stream both ways: uploads are handed to the service chunk by chunk
as they are read, downloads are sent chunk by chunk as the service verifies
them, so no request holds a whole large blob in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request

from micforge import validate
from micforge.api.rest.auth import current_user
from micforge.api.rest.inputs import (
    LIMIT_MAX,
    body_chunks,
    body_length,
    query_int,
    query_limit,
    query_str,
)
from micforge.errors import InvalidRequest

bp = Blueprint("content", __name__, url_prefix="/api/mic/projects/<project>")

# Blobs are content-addressed: the bytes behind a hash never change. "private"
# rather than "public" because the response needs a token and a shared cache
# must not hand one project's blob to a caller who cannot read that project.
BLOB_CACHE_CONTROL = "private, max-age=31536000, immutable"
LOG_PAGE_DEFAULT = 50
UPLOAD_ENDPOINT = "content.upload_blob"


def _state():
    return current_app.extensions["micforge"]


def _stream(
    size_bytes: int, chunks: Iterator[bytes], headers: dict[str, str] | None = None
) -> Response:
    response = Response(chunks, status=200, mimetype="application/octet-stream")
    response.content_length = size_bytes
    response.headers.update(headers or {})
    return response


@bp.post("/blobs")
def upload_blob(project: str) -> tuple[dict, int]:
    project = validate.project_id(project)
    limit_bytes = _state().config.limits.blob_max_bytes
    view, created = _state().services.blobs.put_stream(
        current_user(),
        project,
        body_chunks(limit_bytes, "blob"),
        expected_size=body_length(),
    )
    return view, 201 if created else 200


@bp.get("/blobs/<hash_hex>")  # Flask answers HEAD through this view too
def get_blob(project: str, hash_hex: str) -> Response:
    project = validate.project_id(project)
    hash_hex = validate.hash_hex(hash_hex)
    blobs = _state().services.blobs
    etag = f'"{hash_hex}"'
    cache_headers = {"ETag": etag, "Cache-Control": BLOB_CACHE_CONTROL}
    conditional = request.if_none_match
    if request.method == "HEAD" or conditional:
        size_bytes = blobs.stat(current_user(), project, hash_hex)  # role and existence first
        if conditional and (conditional.star_tag or conditional.contains_weak(hash_hex)):
            response = Response(status=304)
            response.headers.update(cache_headers)
            return response
        if request.method == "HEAD":
            return _stream(size_bytes, iter(()), cache_headers)
    size_bytes, chunks = blobs.open(current_user(), project, hash_hex)
    return _stream(size_bytes, chunks, cache_headers)


@bp.get("/tree")
def tree(project: str) -> dict:
    project = validate.project_id(project)
    return _state().services.content.tree(
        current_user(),
        project,
        prefix=validate.path_prefix(request.args.get("prefix", "")),
        at=query_int("at"),
        limit=query_limit(LIMIT_MAX),
        cursor=query_str("cursor"),
    )


@bp.get("/files/<anypath:path>")
def file(project: str, path: str) -> Response:
    project = validate.project_id(project)
    path = validate.path(path)
    content = _state().services.content
    at = query_int("at")
    if request.method == "HEAD":  # the size from the blob's header; the content is not read
        return _stream(content.file_size(current_user(), project, path, at=at), iter(()))
    size_bytes, chunks = content.file(current_user(), project, path, at=at)
    return _stream(size_bytes, chunks)


@bp.get("/log")
def log(project: str) -> dict:
    project = validate.project_id(project)
    return _state().services.content.log(
        current_user(),
        project,
        from_position=query_int("from", minimum=0),
        limit=query_limit(LOG_PAGE_DEFAULT),
    )


@bp.get("/diff")
def diff(project: str) -> dict:
    project = validate.project_id(project)
    from_position = query_int("from")
    to_position = query_int("to")
    if from_position is None or to_position is None:
        raise InvalidRequest("diff needs both 'from' and 'to' positions")
    return _state().services.content.diff(current_user(), project, from_position, to_position)
