"""Copying the auth DB's rows between a live database and a SQLite snapshot file.

The one backup format is a SQLite file with our schema, whatever the live
backend: SQLite deployments produce it with SQLite's online backup API
(see ``AuthDB.backup_to``), PostgreSQL deployments with a row copy made in
one REPEATABLE READ transaction (a consistent snapshot). The same file
restores into either backend, which also moves a deployment between them.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import peewee

from micforge.auth.migrations import migrate
from micforge.auth.models import Models

_BATCH_ROWS = 1000
# A restore's wait for its table locks, per try, and for all tries (see copy_in).
_LOCK_WAIT_MS = 200
_LOCK_DEADLINE_S = 60.0
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out


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

    The locks are taken one table after another (``LOCK TABLE a, b``), and a
    request's query takes its tables' shared locks one after another too, in
    its own order: the two can each hold what the other waits for. PostgreSQL
    would then abort one of them after ``deadlock_timeout`` (1 s), often the
    request (503; found by an outside test, 4 restores in 25 under load). So
    the restore waits at most ``_LOCK_WAIT_MS`` for its locks, well before any
    deadlock check, lets go of all of them, and tries again a moment later:
    requests only ever wait, and the restore gets its locks between two of
    them (give up after ``_LOCK_DEADLINE_S``).
    """
    snapshot = sqlite3.connect(str(path))
    names = ", ".join(table for table, _ in table_list)
    deadline_s = time.monotonic() + _LOCK_DEADLINE_S
    try:
        for attempt in itertools.count():
            try:
                with live.atomic():
                    live.execute_sql(f"SET LOCAL lock_timeout = '{_LOCK_WAIT_MS}ms'")
                    live.execute_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                    live.execute_sql("SET LOCAL lock_timeout = 0")
                    _replace_rows(snapshot, live, table_list)
                return
            except peewee.OperationalError as error:
                if _sqlstate(error) != _LOCK_NOT_AVAILABLE or time.monotonic() > deadline_s:
                    raise
            time.sleep(min(0.2, 0.005 * 2 ** min(attempt, 6)) * random.random())
    finally:
        snapshot.close()


def _replace_rows(
    snapshot: sqlite3.Connection, live: peewee.Database, table_list: Sequence[tuple[str, list[str]]]
) -> None:
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


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver error under peewee's wrapper (psycopg2's ``pgcode``)."""
    seen: set[int] = set()
    stack: list[object] = [error]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "pgcode", None)
        if code:
            return code
        stack.extend([current.__cause__, current.__context__, *current.args])
    return None
