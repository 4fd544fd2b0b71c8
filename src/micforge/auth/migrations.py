"""Schema versions of the auth DB and the migrations between them.

Each migration is a list of portable SQL statements (the same text runs on
SQLite and PostgreSQL). ``migrate`` runs on every ``AuthDB.open``: it takes a
write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL transaction-level advisory
lock), reads the recorded version and applies only the missing steps, all in
one transaction. So it is idempotent, safe when several agents start at once
against one database, and an existing database upgrades in place.

Migrations are frozen once released: a schema change is a new entry at the
end, never an edit of an old one (``models.py`` describes the latest version).
"""

from __future__ import annotations

import peewee

from micforge.errors import Unavailable

VERSION_TABLE = "micforge_schema_version"
# Arbitrary constant naming our advisory lock on PostgreSQL ("mic" in ASCII).
_PG_ADVISORY_LOCK_ID = 0x6D6963

MIGRATIONS: list[list[str]] = [
    # v1: users, tokens, projects, per-project roles.
    [
        """CREATE TABLE users (
            id VARCHAR(32) PRIMARY KEY,
            email VARCHAR(320) NOT NULL UNIQUE,
            password_hash TEXT NULL,
            created_at BIGINT NOT NULL)""",
        """CREATE TABLE tokens (
            id VARCHAR(32) PRIMARY KEY,
            user_id VARCHAR(32) NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name VARCHAR(200) NOT NULL,
            secret_hash VARCHAR(64) NOT NULL UNIQUE,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NULL,
            revoked_at BIGINT NULL)""",
        "CREATE INDEX tokens_user_id ON tokens (user_id)",
        """CREATE TABLE projects (
            id VARCHAR(63) PRIMARY KEY,
            created_by VARCHAR(32) NOT NULL REFERENCES users(id),
            created_at BIGINT NOT NULL)""",
        """CREATE TABLE permissions (
            project_id VARCHAR(63) NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            user_id VARCHAR(32) NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role SMALLINT NOT NULL CHECK (role IN (1, 2, 3)),
            PRIMARY KEY (project_id, user_id))""",
    ],
    # v2: remember when a token was last used (updated at most once a minute),
    # and list a user's projects without scanning every permission.
    [
        "ALTER TABLE tokens ADD COLUMN last_used_at BIGINT NULL",
        "CREATE INDEX permissions_user_id ON permissions (user_id)",
    ],
]

LATEST_VERSION = len(MIGRATIONS)


def is_postgres(database: peewee.Database) -> bool:
    return isinstance(database, peewee.PostgresqlDatabase)


def write_transaction(database: peewee.Database):
    """A transaction that holds the write lock from its first statement.

    On SQLite a plain BEGIN takes the lock lazily, and two read-then-write
    transactions can deadlock (SQLITE_BUSY with no retry); IMMEDIATE avoids it.
    """
    if isinstance(database, peewee.SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def current_version(database: peewee.Database) -> int:
    """The recorded schema version; 0 for an empty database."""
    if not database.table_exists(VERSION_TABLE):
        return 0
    row = database.execute_sql(f"SELECT version FROM {VERSION_TABLE}").fetchone()
    return int(row[0]) if row else 0


def migrate(database: peewee.Database, target: int = LATEST_VERSION) -> int:
    """Bring the schema to ``target`` (default: latest); returns the version reached."""
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"no schema version {target}")
    with database.connection_context(), write_transaction(database):
        if is_postgres(database):
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_ADVISORY_LOCK_ID,))
        database.execute_sql(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)"
        )
        row = database.execute_sql(f"SELECT version FROM {VERSION_TABLE}").fetchone()
        version = int(row[0]) if row else 0
        if row is None:
            database.execute_sql(f"INSERT INTO {VERSION_TABLE} (version) VALUES (0)")
        if version > LATEST_VERSION:
            # A newer micforge migrated this database; running old code on it
            # could corrupt data it does not understand.
            raise Unavailable(
                f"auth DB schema version {version} is newer than this micforge supports "
                f"({LATEST_VERSION}); upgrade micforge"
            )
        for step in range(version, target):
            for statement in MIGRATIONS[step]:
                database.execute_sql(statement)
        if target > version:
            database.execute_sql(f"UPDATE {VERSION_TABLE} SET version = {int(target)}")
            version = target
    return version
