"""503 unavailable: the store stops answering; nothing is half-written; health recovers."""

from __future__ import annotations

import requests

from tests.api.helpers import assert_error, create_project


def test_store_outage_is_503_and_writes_nothing(micforge_server_factory):
    server = micforge_server_factory()
    api = server.client(server.create_user().token)
    project = create_project(api)
    store_dir = server.data_dir / "store"
    away_dir = server.data_dir / "store.away"

    # The outage: the store's root becomes a symlink loop, so every access fails with ELOOP
    # (an I/O error, not "absent"), as a dead disk or mount would.
    store_dir.rename(away_dir)
    store_dir.symlink_to(store_dir)
    try:
        health = requests.get(server.url + "/healthz", timeout=60)
        error = assert_error(health, 503, "unavailable")
        assert error["checks"] == {"store": "unavailable", "auth_db": "ok"}
        assert_error(api.get(f"/api/mic/projects/{project}"), 503, "unavailable")
        assert_error(
            api.post(f"/api/mic/projects/{project}/blobs", data=b"during outage"),
            503,
            "unavailable",
        )
        assert_error(
            api.post(f"/api/mic/projects/{project}/sessions", json={"goal": "g"}),
            503,
            "unavailable",
        )
    finally:
        store_dir.unlink()
        away_dir.rename(store_dir)

    assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
    # The refused upload left no blob and the refused start left no session behind.
    blob = api.post(f"/api/mic/projects/{project}/blobs", data=b"during outage")
    assert blob.status_code == 201, blob.text
    assert api.get(f"/api/mic/projects/{project}/sessions").json()["sessions"] == []
