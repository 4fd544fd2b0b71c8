"""A store that cannot be used answers 503 everywhere, and /healthz says so.

The fault: the LocalStore's root directory replaced by a plain file (a lost
mount, an operator's mistake). Reads of such a root find nothing rather than
failing, and writes fail with ENOTDIR, which the storage layer reports as a
plain ``StoreError``: that used to be a 500 for sessions and landings, and
/healthz (a one-key list) kept answering 200.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from micforge.api.rest import create_app
from micforge.config import Config
from micforge.service import build_services
from micforge.storage import InvalidKey, LocalStore, StorageUnavailable, StoreError
from tests.api.helpers import assert_error, create_project, start_session, upload
from tests.fixtures.server import MicforgeServer


def _store_replaced_by_a_file(server: MicforgeServer) -> tuple[Path, Path]:
    store_dir = server.data_dir / "store"
    away_dir = server.data_dir / "store.away"
    store_dir.rename(away_dir)
    store_dir.write_bytes(b"not a directory")
    return store_dir, away_dir


def _restore(store_dir: Path, away_dir: Path) -> None:
    store_dir.unlink()
    away_dir.rename(store_dir)


def test_unusable_store_root_is_503_for_writes_and_health(micforge_server_factory):
    server = micforge_server_factory()
    api = server.client(server.create_user().token)
    project = create_project(api)
    sid = start_session(api, project)["id"]
    upload(api, project, b"stored before the fault")

    store_dir, away_dir = _store_replaced_by_a_file(server)
    try:
        health = requests.get(server.url + "/healthz", timeout=60)
        error = assert_error(health, 503, "unavailable")
        assert error["checks"] == {"store": "unavailable", "auth_db": "ok"}
        assert error["message"] == "unavailable: store (the log says why)"

        refused = [
            api.post(f"/api/mic/projects/{project}/sessions", json={"goal": "during"}),
            api.post(f"/api/mic/projects/{project}/sessions/{sid}/land"),
            api.post(f"/api/mic/projects/{project}/blobs", data=b"during the fault"),
            # Reads the cache cannot answer: not an empty project, an outage.
            api.get(f"/api/mic/projects/{project}/sessions"),
            api.get(f"/api/mic/projects/{project}/blobs/{'0' * 64}"),
        ]
        for response in refused:
            error = assert_error(response, 503, "unavailable")
            assert str(server.data_dir) not in error["message"]  # no server paths to clients
    finally:
        _restore(store_dir, away_dir)

    assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
    sessions = api.get(f"/api/mic/projects/{project}/sessions").json()["sessions"]
    assert [(s["id"], s["state"]) for s in sessions] == [(sid, "open")]
    assert api.post(f"/api/mic/projects/{project}/sessions/{sid}/land").status_code == 200


def test_health_probe_leaves_nothing_in_the_store(micforge_server_factory):
    server = micforge_server_factory()
    objects_dir = server.data_dir / "store" / "objects"
    before = sorted(p.name for p in objects_dir.iterdir())
    for _ in range(3):
        assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
    assert sorted(p.name for p in objects_dir.iterdir()) == before


def test_health_recovers_when_the_store_root_comes_back_empty(micforge_server_factory):
    # The probe must not need any particular object to exist: an empty store is healthy.
    server = micforge_server_factory()
    store_dir, away_dir = _store_replaced_by_a_file(server)
    assert requests.get(server.url + "/healthz", timeout=60).status_code == 503
    store_dir.unlink()
    (store_dir / "objects").mkdir(parents=True)
    assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
    shutil.rmtree(store_dir)
    away_dir.rename(store_dir)


# -- in process: a store that reads but refuses writes, and which errors map to what --


class WriteRefusingStore:
    """A real LocalStore whose writes fail with ``refusal`` once set, while reads and
    listings still answer: a read-only mount, a bucket policy that denies writes."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.refusal: Exception | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def _write(self, name: str):
        if self.refusal is not None:
            raise self.refusal
        return getattr(self.inner, name)

    def put(self, *args, **kwargs):
        return self._write("put")(*args, **kwargs)

    def put_file(self, *args, **kwargs):
        return self._write("put_file")(*args, **kwargs)

    def open_writer(self, *args, **kwargs):
        return self._write("open_writer")(*args, **kwargs)


@pytest.fixture
def refusing(tmp_path):
    """(store, test client, auth header, project) over real services on that store."""
    config = Config(data_dir=tmp_path, cache_dir="off")
    store = WriteRefusingStore(LocalStore(tmp_path / "store"))
    services = build_services(config, store=store)
    app = create_app(config, services=services)
    user = services.auth.create_user("faults@example.com")
    _, token = services.auth.create_token(user.id, "faults")
    services.projects.create(user, "faults")
    yield store, app.test_client(), {"Authorization": f"Bearer {token}"}, "faults"
    services.close()


def test_health_is_503_when_the_store_reads_but_cannot_write(refusing):
    store, client, _, _ = refusing
    assert client.get("/healthz").status_code == 200
    store.refusal = StorageUnavailable("read-only file system")
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["error"]["checks"] == {"store": "unavailable", "auth_db": "ok"}


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (StorageUnavailable("retries spent"), 503, "unavailable"),
        (StoreError("s3://bucket: S3 403 AccessDenied"), 503, "unavailable"),
        (StoreError("cannot create key: a parent is not a directory"), 503, "unavailable"),
        # Only a bug builds a bad key: that is no outage, and 503 would hide it.
        (InvalidKey("key contains NUL"), 500, "internal"),
    ],
)
def test_store_errors_are_503_unless_they_mean_a_bug(refusing, refusal, status, code):
    store, client, auth, project = refusing
    store.refusal = refusal
    response = client.post(
        f"/api/mic/projects/{project}/sessions", json={"goal": "g"}, headers=auth
    )
    assert response.status_code == status, response.get_data()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert "bucket" not in error["message"] and "NUL" not in error["message"]
