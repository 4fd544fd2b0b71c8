"""Schema versions: migrations run on open, are idempotent, and upgrade data in place."""

from __future__ import annotations

import threading

import peewee
import pytest
from playhouse.db_url import connect

from micforge.auth import AuthDB
from micforge.auth.credentials import new_token_secret, token_lookup_hash
from micforge.auth.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    VERSION_TABLE,
    current_version,
    migrate,
)
from micforge.errors import Unavailable


def _raw(url: str) -> peewee.Database:
    """A plain peewee connection to the test's database, to build old schemas by hand."""
    return connect(url)


def test_fresh_database_is_at_the_latest_version(auth_db: AuthDB) -> None:
    assert LATEST_VERSION == len(MIGRATIONS) >= 2
    assert auth_db.schema_version() == LATEST_VERSION


def test_reopening_is_idempotent_and_keeps_data(auth_db_factory) -> None:
    first = auth_db_factory()
    user = first.create_user("ada@example.org")
    first.close()
    second = auth_db_factory()
    assert second.get_user(user.id) == user
    assert second.schema_version() == LATEST_VERSION


def test_v1_database_upgrades_in_place(auth_db_url: str, auth_db_factory) -> None:
    raw = _raw(auth_db_url)
    assert migrate(raw, target=1) == 1
    secret = new_token_secret()
    with raw.connection_context():
        raw.execute_sql(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ('u_1', 'old@example.org', NULL, 1)"
        )
        raw.execute_sql(
            "INSERT INTO tokens (id, user_id, name, secret_hash, created_at, expires_at, revoked_at) "
            f"VALUES ('t_1', 'u_1', 'old', '{token_lookup_hash(secret)}', 1, NULL, NULL)"
        )
        assert current_version(raw) == 1
        columns = {c.name for c in raw.get_columns("tokens")}
        assert "last_used_at" not in columns
    raw.close()

    auth_db = auth_db_factory()
    assert auth_db.schema_version() == LATEST_VERSION
    user = auth_db.verify_token(secret)  # also writes last_used_at, a v2 column
    assert user.email == "old@example.org"
    assert auth_db.get_token("t_1").last_used_at is not None


def test_newer_schema_is_refused(auth_db_url: str, auth_db_factory) -> None:
    auth_db_factory().close()
    raw = _raw(auth_db_url)
    with raw.connection_context():
        raw.execute_sql(f"UPDATE {VERSION_TABLE} SET version = {LATEST_VERSION + 1}")
    raw.close()
    with pytest.raises(Unavailable, match="newer"):
        auth_db_factory()


def test_agents_starting_at_once_migrate_once(auth_db_url: str, auth_db_factory) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    opened: list[AuthDB] = []

    def start() -> None:
        barrier.wait()
        try:
            opened.append(auth_db_factory())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    raw = _raw(auth_db_url)
    with raw.connection_context():
        assert raw.execute_sql(f"SELECT COUNT(*) FROM {VERSION_TABLE}").fetchone()[0] == 1
        assert current_version(raw) == LATEST_VERSION
    raw.close()


def test_models_match_the_migrated_schema(auth_db: AuthDB) -> None:
    # models.py describes the latest version; a migration without the model
    # change (or the reverse) fails here rather than at the first query.
    database = auth_db._db
    with database.connection_context():
        for model in (
            auth_db._models.user,
            auth_db._models.token,
            auth_db._models.project,
            auth_db._models.permission,
        ):
            table = model._meta.table_name
            in_db = {c.name for c in database.get_columns(table)}
            assert in_db == {f.column_name for f in model._meta.sorted_fields}, table
