"""Copying the auth DB's rows between a live database and a SQLite snapshot file.

The one backup format is a SQLite file with our schema, whatever the live
backend: SQLite deployments produce it with SQLite's online backup API
(see ``AuthDB.backup_to``), PostgreSQL deployments with a row copy made in
one REPEATABLE READ transaction (a consistent snapshot). The same file
restores into either backend, which also moves a deployment between them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import peewee

from micforge.auth.migrations import migrate
from micforge.auth.models import Models

_BATCH_ROWS = 1000


def tables(models: Models) -> list[tuple[str, list[str]]]:
    """(table, columns) in foreign-key order: parents before children."""
    ordered = (models.user, models.project, models.token, models.permission)
    return [(m._meta.table_name, [f.column_name for f in m._meta.sorted_fields]) for m in ordered]


def create_empty(path: Path) -> None:
    """A SQLite file with the latest schema and no rows."""
    database = peewee.SqliteDatabase(str(path))
    try:
        migrate(database)
        with database.connection_context():
            database.execute_sql("PRAGMA journal_mode=DELETE")
    finally:
        database.close()


def upgrade(path: Path) -> None:
    """Migrate a downloaded snapshot to the latest schema before it goes live,
    so no reader ever sees an old schema in the live database."""
    database = peewee.SqliteDatabase(str(path))
    try:
        migrate(database)
    finally:
        database.close()


def copy_out(
    live: peewee.Database, table_list: Sequence[tuple[str, list[str]]], path: Path
) -> None:
    """Copy every row of a PostgreSQL auth DB into the (empty, latest-schema) snapshot at ``path``.

    The caller holds ``live``'s connection; the reads run in one REPEATABLE
    READ, READ ONLY transaction, so the snapshot is consistent while others write.
    """
    snapshot = sqlite3.connect(str(path), isolation_level=None)
    try:
        snapshot.execute("BEGIN")
        with live.atomic("REPEATABLE READ"):
            live.execute_sql("SET TRANSACTION READ ONLY")
            for table, columns in table_list:
                cursor = live.execute_sql(f"SELECT {', '.join(columns)} FROM {table}")
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                while rows := cursor.fetchmany(_BATCH_ROWS):
                    snapshot.executemany(insert, rows)
        snapshot.execute("COMMIT")
    finally:
        snapshot.close()


def copy_in(path: Path, live: peewee.Database, table_list: Sequence[tuple[str, list[str]]]) -> None:
    """Replace every row of a PostgreSQL auth DB with the snapshot's, in one transaction.

    The tables are locked exclusively first, so concurrent requests wait and
    then see all of the old rows or all of the new, never a mix; any failure
    rolls the whole restore back.
    """
    snapshot = sqlite3.connect(str(path))
    try:
        with live.atomic():
            names = ", ".join(table for table, _ in table_list)
            live.execute_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
            for table, _ in reversed(table_list):
                live.execute_sql(f"DELETE FROM {table}")
            raw = live.connection().cursor()
            try:
                for table, columns in table_list:
                    select = snapshot.execute(f"SELECT {', '.join(columns)} FROM {table}")
                    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
                    while rows := select.fetchmany(_BATCH_ROWS):
                        # Driver errors become peewee's, as for every other query.
                        with peewee.__exception_wrapper__:
                            raw.executemany(insert, rows)
            finally:
                raw.close()
    finally:
        snapshot.close()
