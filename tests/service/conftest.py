"""Fixtures for service tests: real stores (LocalStore, S3Store on moto), a real SQLite
auth DB, and a small cast of users with different roles on one project."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from micforge.auth import AuthDB, Role, ScryptParams, User
from micforge.config import Config
from micforge.service import Services, build_services
from micforge.storage import LocalStore, Store

CHEAP_SCRYPT = ScryptParams(n=2, r=1, p=1)


def make_config(data_dir: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "cache_dir": "off",
        "landing_backoff_base_ms": 1,
    }
    values.update(overrides)
    return Config.load(values, environ={})


@dataclass
class World:
    services: Services
    store: Store  # the raw backend under the services' cache
    auth: AuthDB
    project: str
    owner: User
    writer: User
    reader: User
    stranger: User

    def blob(self, content: bytes, user: User | None = None) -> str:
        view, _ = self.services.blobs.put(user or self.owner, self.project, content)
        return view["hash"]

    def session(self, user: User | None = None, goal: str = "goal") -> str:
        return self.services.sessions.start(user or self.owner, self.project, goal)["id"]

    def write(self, sid: str, path: str, content: bytes, user: User | None = None) -> dict:
        user = user or self.owner
        h = self.blob(content, user)
        return self.services.sessions.record_operations(
            user, self.project, sid, [{"op": "write", "path": path, "blob_hash": h}]
        )

    def land(self, sid: str, user: User | None = None) -> dict:
        return self.services.landing.land(user or self.owner, self.project, sid)


@contextlib.contextmanager
def another_process(w: World) -> Iterator[Services]:
    """Services of a second agent on the same store and auth DB: another process, with
    nothing of what this one's services remember (sessions, head, positions seen)."""
    config = make_config(Path(w.services.config.data_dir) / f"other-{uuid.uuid4().hex}")
    with build_services(config, store=w.store, auth_db=w.auth) as services:
        yield services


def populate(services: Services, store: Store, auth: AuthDB, project: str = "demo") -> World:
    owner = auth.create_user("owner@example.com")
    writer = auth.create_user("writer@example.com")
    reader = auth.create_user("reader@example.com")
    stranger = auth.create_user("stranger@example.com")
    auth.create_project(project, owner.id)
    auth.set_role(project, writer.id, Role.WRITE)
    auth.set_role(project, reader.id, Role.READ)
    return World(services, store, auth, project, owner, writer, reader, stranger)


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    opened: list[tuple[Services, AuthDB]] = []

    def make(
        store: Store | None = None,
        *,
        wrap: Callable[[Store], Store] | None = None,
        **overrides: object,
    ) -> World:
        n = len(opened)
        config = make_config(tmp_path / f"w{n}", **overrides)
        raw = store if store is not None else LocalStore(str(tmp_path / f"w{n}" / "store"))
        backend = wrap(raw) if wrap else raw
        auth = AuthDB.open(
            f"sqlite:///{tmp_path / f'w{n}' / 'auth.db'}", scrypt_params=CHEAP_SCRYPT
        )
        services = build_services(config, store=backend, auth_db=auth)
        opened.append((services, auth))
        return populate(services, backend, auth)

    yield make
    for services, auth in opened:
        services.close()
        auth.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture(params=["local", "s3"])
def any_world(request: pytest.FixtureRequest, make_world: Callable[..., World]) -> World:
    if request.param == "local":
        return make_world()
    make_s3_store = request.getfixturevalue("make_s3_store")
    return make_world(make_s3_store())
