"""Blob upload and download over HTTP: streaming, ETag, conditional GET, cache headers."""

from __future__ import annotations

import hashlib
import os

from tests.api.helpers import assert_error, create_project


def test_large_blob_round_trips_streamed_with_length_etag_and_cache_headers(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    data = os.urandom(3 * 1024 * 1024 + 17)

    def body():  # chunked upload: no Content-Length, the server counts as it reads
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    created = api.post(f"/api/mic/projects/{project}/blobs", data=body())
    assert created.status_code == 201, created.text
    blob = created.json()["hash"]
    assert created.json()["size"] == len(data)

    url = f"/api/mic/projects/{project}/blobs/{blob}"
    with api.get(url, stream=True) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["ETag"] == f'"{blob}"'
        cache = response.headers["Cache-Control"]
        assert "max-age=31536000" in cache and "immutable" in cache
        digest = hashlib.sha256()
        for chunk in response.iter_content(64 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    head = api.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(data)) and head.headers["ETag"] == f'"{blob}"'


def test_if_none_match_answers_304_only_for_the_same_hash(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    blob = api.post(f"/api/mic/projects/{project}/blobs", data=b"cached").json()["hash"]
    url = f"/api/mic/projects/{project}/blobs/{blob}"
    for header in (f'"{blob}"', f'W/"{blob}"', f'"{"0" * 64}", "{blob}"', "*"):
        response = api.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b"" and response.headers["ETag"] == f'"{blob}"'
    other = api.get(url, headers={"If-None-Match": f'"{"0" * 64}"'})
    assert other.status_code == 200 and other.content == b"cached"
    # A conditional request still needs read access: no existence leak through 304.
    stranger = micforge_server.client(micforge_server.create_user().token)
    assert_error(stranger.get(url, headers={"If-None-Match": f'"{blob}"'}), 404, "not_found")


def test_blob_upload_takes_any_content_type_and_empty_bodies(micforge_server):
    api = micforge_server.client(micforge_server.create_user().token)
    project = create_project(api)
    url = f"/api/mic/projects/{project}/blobs"
    as_json = api.post(url, data=b'{"a": 1}', headers={"Content-Type": "application/json"})
    as_text = api.post(url, data=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert as_json.status_code == 201 and as_text.status_code == 200
    assert as_json.json() == as_text.json() and as_json.json()["size"] == 8
    empty = api.post(url, data=b"")
    assert empty.status_code == 201 and empty.json()["size"] == 0
    assert api.get(f"{url}/{empty.json()['hash']}").content == b""
