"""peewee models of the auth DB, built per database (never bound globally).

``make_models(database)`` returns fresh model classes bound to that one
database, so several AuthDB instances (SQLite and PostgreSQL, in tests or in
one process) coexist without re-pointing a shared model at another database.

The tables themselves are created by ``migrations.py``: these classes describe
the schema at the latest version for querying, they never create tables.
Times are integer milliseconds since the Unix epoch (UTC) so that both
backends store and compare them identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee


@dataclass(frozen=True)
class Models:
    user: type[peewee.Model]
    token: type[peewee.Model]
    project: type[peewee.Model]
    permission: type[peewee.Model]


def make_models(database: peewee.Database) -> Models:
    class Base(peewee.Model):
        class Meta:
            pass

    Base._meta.set_database(database)

    class UserRow(Base):
        id = peewee.CharField(max_length=32, primary_key=True)
        email = peewee.CharField(max_length=320, unique=True)
        password_hash = peewee.TextField(null=True)
        created_at = peewee.BigIntegerField()

        class Meta:
            table_name = "users"

    class TokenRow(Base):
        id = peewee.CharField(max_length=32, primary_key=True)
        user = peewee.ForeignKeyField(UserRow, column_name="user_id", on_delete="CASCADE")
        name = peewee.CharField(max_length=200)
        secret_hash = peewee.CharField(max_length=64, unique=True)
        created_at = peewee.BigIntegerField()
        expires_at = peewee.BigIntegerField(null=True)
        revoked_at = peewee.BigIntegerField(null=True)
        last_used_at = peewee.BigIntegerField(null=True)  # schema v2

        class Meta:
            table_name = "tokens"

    class ProjectRow(Base):
        id = peewee.CharField(max_length=63, primary_key=True)
        created_by = peewee.ForeignKeyField(UserRow, column_name="created_by")
        created_at = peewee.BigIntegerField()

        class Meta:
            table_name = "projects"

    class PermissionRow(Base):
        project = peewee.ForeignKeyField(ProjectRow, column_name="project_id", on_delete="CASCADE")
        user = peewee.ForeignKeyField(UserRow, column_name="user_id", on_delete="CASCADE")
        role = peewee.SmallIntegerField()

        class Meta:
            table_name = "permissions"
            primary_key = peewee.CompositeKey("project", "user")

    return Models(user=UserRow, token=TokenRow, project=ProjectRow, permission=PermissionRow)
