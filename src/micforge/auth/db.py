"""AuthDB: users, API tokens, projects and per-project roles.

One AuthDB wraps one peewee database (SQLite or PostgreSQL, chosen by URL)
with its own model classes (``models.make_models``), so any number of
instances coexist in one process. Every public method borrows a pooled
connection for its duration and gives it back, which makes an AuthDB safe to
share between the threads of the WSGI server and lets ``close()`` close every
connection it ever opened.

Database failures (unreachable server, SQLite busy past the timeout) surface
as ``Unavailable``; bad input as ``InvalidRequest``; the other domain errors
are documented per method and in docs/auth.md.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

import peewee
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase, PooledSqliteDatabase

from micforge import validate
from micforge.auth import credentials, snapshot
from micforge.auth.credentials import ScryptParams
from micforge.auth.migrations import (
    LATEST_VERSION,
    current_version,
    is_postgres,
    migrate,
    write_transaction,
)
from micforge.auth.models import make_models
from micforge.errors import (
    AlreadyExists,
    AuthDBUnavailable,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)
from micforge.redact import redact_url

if TYPE_CHECKING:
    from micforge.storage import Store

log = logging.getLogger(__name__)

EMAIL_MAX_CHARS = 320
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
TOKEN_NAME_MAX_CHARS = 200
TOKEN_EXPIRES_IN_DAYS_MAX = 3650
DAY_MS = 86_400_000
_EMAIL_RE = re.compile(r"[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+")


class Role(IntEnum):
    """Per-project roles; each includes the ones below it."""

    READ = 1
    WRITE = 2
    OWNER = 3

    @property
    def label(self) -> str:
        """The wire name: ``read`` / ``write`` / ``owner``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> Role:
        """A Role from a Role or its wire name; InvalidRequest otherwise."""
        if isinstance(value, Role):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__ and value == value.lower():
            return cls[value.upper()]
        raise InvalidRequest(f"role must be one of read, write, owner; got {value!r:.40}")


@dataclass(frozen=True)
class User:
    id: str
    email: str


@dataclass(frozen=True)
class TokenInfo:
    """A token's metadata. The secret is never part of it (shown once, at creation)."""

    id: str
    user_id: str
    name: str
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Project:
    id: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    role: Role


def _to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _key(value: object) -> str:
    """A value safe to look up by: ids and emails that cannot exist (not a
    string, too long, a NUL byte that PostgreSQL refuses) become "", which
    matches no row, so the caller answers NotFound instead of crashing."""
    if not isinstance(value, str) or len(value) > EMAIL_MAX_CHARS or "\x00" in value:
        return ""
    return value


def _sqlite_path(url: str) -> Path:
    # sqlite:///relative/path, sqlite:////absolute/path (the SQLAlchemy
    # convention, and what Config builds from data_dir).
    raw = url[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        # Each pooled connection would get its own empty in-memory database.
        raise InvalidRequest("sqlite auth DB URL needs a file path: sqlite:///path/to/auth.db")
    return Path(unquote(raw))


# Options of the connection pool, not of the connection: not taken from a URL's query.
_POOL_OPTIONS = frozenset({"max_connections", "timeout", "stale_timeout"})

# libpq connection options set unless the URL's query gives its own: without them
# a PostgreSQL host that vanishes (a partition, a dead machine: packets dropped,
# nothing answered) is noticed by Linux's defaults only after ~2 hours (keepalive)
# or ~15 minutes (retransmission), while requests wait on its pooled connections.
# With them, an idle connection to it is declared dead after 30 + 3 x 10 s, and a
# query whose bytes go unacknowledged for 30 s fails (503). They do nothing for a
# host that still acknowledges but does not answer (docs/auth.md), nor for Unix
# sockets.
PG_TCP_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def _libpq_version() -> int:
    """The libpq psycopg2 runs on, as libpq numbers it (170011 for 17.11)."""
    from psycopg2.extensions import libpq_version

    return libpq_version()


def _one_line(error: BaseException) -> str:
    """A driver error's message on one line, for the CLI and the log. It names host
    and port, never the password; libpq's runs over several lines ("...refused\n\t
    Is the server running on that host...?"), joined here with "; "."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` auth DB URL; None for any other kind of URL."""
    return _sqlite_path(url) if url.startswith("sqlite:///") else None


def _ensure_wal(path: Path, busy_timeout_ms: int) -> None:
    """Switch the file to WAL once, before the pool opens connections.

    WAL is persistent, so later connections find it already set. Changing the
    mode needs an exclusive lock and SQLite may answer SQLITE_BUSY at once,
    without its busy handler, when agents start together on a new file: retry
    until the busy timeout instead.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            with contextlib.closing(
                sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000)
            ) as conn:
                (mode,) = conn.execute("PRAGMA journal_mode=wal").fetchone()
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() >= deadline:
                raise Unavailable(f"auth DB {path} unavailable: {exc}") from exc
            time.sleep(0.01)
            continue
        except sqlite3.DatabaseError as exc:
            # Not a SQLite file at all (a wrong path, say), or one whose header is
            # damaged: say so in one line rather than with the driver's traceback.
            # (Damage further in shows later, as AuthDBUnavailable: see _session.)
            raise Unavailable(f"auth DB {path} is not a usable SQLite database: {exc}") from exc
        if str(mode).lower() != "wal":
            raise Unavailable(f"auth DB {path} cannot use WAL mode (got {mode})")
        return


@dataclass(frozen=True, slots=True)
class _TokenRow:
    """A token joined with its user's email, as ``AuthDB._select_token`` returns it."""

    id: str
    user_id: str
    name: str
    secret_hash: str
    expires_at: int | None
    revoked_at: int | None
    created_at: int
    last_used_at: int | None
    email: str


class _PreparedSelect:
    """A peewee SELECT compiled to SQL once per AuthDB, then run with new values.

    Peewee builds a query's SQL in ~0.1 ms, ten times what SQLite takes to run
    it; the two reads behind every request (the token, the caller's role) are
    compiled once instead. The query is built with each parameter's name as its
    value, so the compiled parameter list says where each value goes; rows come
    back as tuples of the selected fields' Python values.
    """

    def __init__(self, query: peewee.Select, names: tuple[str, ...]) -> None:
        sql, params = query.sql()
        self._sql = sql
        self._order = [names.index(param) for param in params]
        self._converters = [field.python_value for field in query.selected_columns]

    def first(self, db: peewee.Database, *values: object) -> tuple | None:
        row = db.execute_sql(self._sql, [values[i] for i in self._order]).fetchone()
        if row is None:
            return None
        return tuple(convert(value) for convert, value in zip(self._converters, row, strict=True))


class AuthDB:
    """Identity and authorisation over one database. Build it with ``AuthDB.open(url)``."""

    def __init__(
        self,
        database: peewee.Database,
        *,
        display_url: str,
        sqlite_path: Path | None = None,
        scrypt_params: ScryptParams | None = None,
        clock: Callable[[], float] = time.time,
        last_used_interval_s: int = 60,
    ) -> None:
        self._db = database
        self._models = make_models(database)
        token_row, user_row, permission_row = (
            self._models.token, self._models.user, self._models.permission
        )  # fmt: skip
        # The columns of _TokenRow, in its order: the token's own, then the user's email.
        token_columns = [getattr(token_row, f.name) for f in fields(_TokenRow) if f.name != "email"]
        self._select_token = _PreparedSelect(
            token_row.select(*token_columns, user_row.email)
            .join(user_row)
            .where(token_row.secret_hash == "lookup_hash"),
            ("lookup_hash",),
        )
        self._select_role = _PreparedSelect(
            permission_row.select(permission_row.role).where(
                (permission_row.project == "project_id") & (permission_row.user == "user_id")
            ),
            ("project_id", "user_id"),
        )
        self._display_url = display_url
        self._sqlite_path = sqlite_path
        self._scrypt = scrypt_params or ScryptParams()
        self._clock = clock
        self._last_used_interval_ms = last_used_interval_s * 1000

    @classmethod
    def open(
        cls,
        url: str,
        *,
        scrypt_params: ScryptParams | None = None,
        clock: Callable[[], float] = time.time,
        max_connections: int = 32,
        busy_timeout_ms: int = 5000,
        connect_timeout_s: int = 10,
        last_used_interval_s: int = 60,
    ) -> AuthDB:
        """Open ``sqlite:///path`` or ``postgresql://user:pw@host:port/db`` and migrate it.

        ``scrypt_params`` and ``clock`` exist for tests (cheap KDF, controlled
        time); production uses the defaults.
        """
        if not isinstance(url, str):
            raise InvalidRequest("auth DB URL must be a string")
        database: peewee.Database
        wait_s = max(busy_timeout_ms, 1000) / 1000
        sqlite_path = sqlite_file(url)
        if sqlite_path is not None:
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            _ensure_wal(sqlite_path, busy_timeout_ms)
            database = PooledSqliteDatabase(
                str(sqlite_path),
                max_connections=max_connections,
                timeout=wait_s,  # pool: wait this long for a free connection
                # WAL: readers never block the writer; NORMAL is durable in WAL
                # except for the last transactions on power loss, never corrupt.
                pragmas=[
                    ("busy_timeout", int(busy_timeout_ms)),
                    ("journal_mode", "wal"),
                    ("foreign_keys", 1),
                    ("synchronous", "normal"),
                ],
                # The pool hands a connection to whichever thread asks next.
                check_same_thread=False,
            )
        elif url.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(url)
            params: dict[str, object] = dict(parse_qsl(parts.query))
            pool_options = sorted(_POOL_OPTIONS.intersection(params))
            if pool_options:
                raise InvalidRequest(
                    f"auth DB URL option {pool_options[0]!r} is not a connection option"
                )
            params.setdefault("connect_timeout", connect_timeout_s)
            for option, value in PG_TCP_DEFAULTS.items():
                if option == "tcp_user_timeout" and _libpq_version() < 120000:
                    continue  # unknown to libpq before 12 ("invalid dsn")
                params.setdefault(option, value)
            # As in libpq, the query may give what the URL's parts give, and wins
            # (?host=/run/postgresql: a Unix socket directory, for a URL without a host).
            # (Both popped: either left in params would clash with the name passed below.)
            dbname, database_alias = params.pop("dbname", None), params.pop("database", None)
            dbname = dbname or database_alias
            params.setdefault("user", unquote(parts.username) if parts.username else None)
            params.setdefault("password", unquote(parts.password) if parts.password else None)
            params.setdefault("host", parts.hostname)
            params.setdefault("port", parts.port)
            database = PooledPostgresqlDatabase(
                dbname or unquote(parts.path.lstrip("/")) or "postgres",
                max_connections=max_connections,
                timeout=wait_s,
                stale_timeout=300,  # recycle connections so server restarts heal
                **params,
            )
        else:
            raise InvalidRequest(
                "auth DB URL must start with sqlite:///, postgresql:// or postgres://,"
                f" got {redact_url(url)!r:.80}"
            )
        auth_db = cls(
            database,
            display_url=redact_url(url),
            sqlite_path=sqlite_path,
            scrypt_params=scrypt_params,
            clock=clock,
            last_used_interval_s=last_used_interval_s,
        )
        try:
            with auth_db._session():
                migrate(database)
        except peewee.ProgrammingError as exc:
            auth_db.close()
            if "invalid dsn" in str(exc):  # libpq refused the URL's options before connecting
                raise InvalidRequest(f"auth DB URL: {_one_line(exc)}") from exc
            raise
        except BaseException:
            auth_db.close()
            raise
        return auth_db

    def __repr__(self) -> str:
        return f"AuthDB({self._display_url!r})"

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "postgresql" if is_postgres(self._db) else "sqlite"

    def close(self) -> None:
        """Close every pooled connection. Call once no other thread uses this AuthDB."""
        self._db.close_all()

    def __enter__(self) -> AuthDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Borrow a pooled connection (nestable) and map driver failures to Unavailable."""
        try:
            with self._db.connection_context():
                yield
        except (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded) as exc:
            raise AuthDBUnavailable(f"auth DB unavailable: {_one_line(exc)}") from exc
        except peewee.DatabaseError as exc:
            if type(exc) is not peewee.DatabaseError:
                raise  # IntegrityError and the like: answers that callers handle
            # The driver's plain DatabaseError: the database itself is broken (SQLite:
            # "database disk image is malformed", a damaged page past the header).
            raise AuthDBUnavailable(f"auth DB unavailable: {_one_line(exc)}") from exc

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def ping(self) -> None:
        """One round trip; raises Unavailable if the database does not answer (for /healthz)."""
        with self._session():
            self._db.execute_sql("SELECT 1").fetchone()

    def schema_version(self) -> int:
        with self._session():
            return current_version(self._db)

    # -- users ---------------------------------------------------------------

    @staticmethod
    def _check_email(email: object) -> str:
        if (
            not isinstance(email, str)
            or len(email) > EMAIL_MAX_CHARS
            or not _EMAIL_RE.fullmatch(email)
        ):
            raise InvalidRequest(f"not a valid email address: {email!r:.80}")
        # One account per mailbox whatever the capitalisation.
        return email.lower()

    def create_user(self, email: str, password: str | None = None) -> User:
        """A new user; AlreadyExists if the email (case-insensitive) is taken."""
        return self._create_user(email, password, None)[0]

    def create_user_with_token(
        self, email: str, token_name: str, password: str | None = None
    ) -> tuple[User, TokenInfo, str]:
        """A new user and its first token (metadata, secret), in one transaction: both or
        neither (``micforge user create``; a bad token name must not leave a user
        without a token behind)."""
        user, token = self._create_user(email, password, token_name)
        assert token is not None
        return user, *token

    def _create_user(
        self, email: str, password: str | None, first_token: str | None
    ) -> tuple[User, tuple[TokenInfo, str] | None]:
        email = self._check_email(email)
        if first_token is not None:
            _check_token_request(first_token, None)
        password_hash = None
        if password is not None:
            if not isinstance(password, str) or not (
                PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS
            ):
                raise InvalidRequest(
                    f"password must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
                )
            # Hash before taking the write lock: the KDF is deliberately slow.
            password_hash = credentials.hash_password(password, self._scrypt)
        user_row = self._models.user
        user_id = credentials.new_id("u_")
        token = None
        try:
            with self._session(), write_transaction(self._db):
                if user_row.select().where(user_row.email == email).exists():
                    raise AlreadyExists(f"a user with email {email} already exists")
                user_row.insert(
                    id=user_id, email=email, password_hash=password_hash, created_at=self._now_ms()
                ).execute()
                if first_token is not None:
                    token = self._insert_token(user_id, first_token, None)
        except peewee.IntegrityError:
            # A concurrent create of the same email won the race.
            raise AlreadyExists(f"a user with email {email} already exists") from None
        return User(id=user_id, email=email), token

    def get_user(self, user_id: str) -> User:
        user_row = self._models.user
        with self._session():
            row = user_row.get_or_none(user_row.id == _key(user_id))
        if row is None:
            raise NotFound(f"no user {user_id!r:.80}")
        return User(id=row.id, email=row.email)

    def find_user(self, email: str) -> User:
        """The user with this email (case-insensitive); NotFound otherwise."""
        if not isinstance(email, str):
            raise InvalidRequest("email must be a string")
        user_row = self._models.user
        with self._session():
            row = user_row.get_or_none(user_row.email == _key(email).lower())
        if row is None:
            raise NotFound(f"no user with email {email!r:.80}")
        return User(id=row.id, email=row.email)

    def list_users(self) -> list[User]:
        user_row = self._models.user
        with self._session():
            rows = list(user_row.select().order_by(user_row.email))
        return [User(id=r.id, email=r.email) for r in rows]

    def check_password(self, email: str, password: str) -> User:
        """The user if the password matches; Unauthorized otherwise (same time either way)."""
        user_row = self._models.user
        with self._session():
            row = user_row.get_or_none(user_row.email == _key(email).lower())
        stored = row.password_hash if row is not None else None
        if not credentials.verify_password(str(password), stored, self._scrypt) or row is None:
            raise Unauthorized("wrong email or password")
        return User(id=row.id, email=row.email)

    # -- tokens --------------------------------------------------------------

    def _token_info(self, row: peewee.Model | _TokenRow) -> TokenInfo:
        return TokenInfo(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            expires_at=_to_datetime(row.expires_at),
            created_at=_to_datetime(row.created_at),
            last_used_at=_to_datetime(row.last_used_at),
        )

    def create_token(
        self, user_id: str, name: str, expires_in_days: int | None = None
    ) -> tuple[TokenInfo, str]:
        """A new token for ``user_id``: (metadata, secret). The secret is shown once;
        only its hash is stored."""
        _check_token_request(name, expires_in_days)
        with self._session(), write_transaction(self._db):
            self._require_user(user_id)
            return self._insert_token(user_id, name, expires_in_days)

    def _insert_token(
        self, user_id: str, name: str, expires_in_days: int | None
    ) -> tuple[TokenInfo, str]:
        """Insert a checked token request for an existing user; inside a write transaction."""
        secret = credentials.new_token_secret()
        now_ms = self._now_ms()
        token_id = credentials.new_id("t_")
        expires_at = None if expires_in_days is None else now_ms + expires_in_days * DAY_MS
        self._models.token.insert(
            id=token_id,
            user=user_id,
            name=name,
            secret_hash=credentials.token_lookup_hash(secret),
            created_at=now_ms,
            expires_at=expires_at,
        ).execute()
        info = TokenInfo(
            id=token_id,
            user_id=user_id,
            name=name,
            expires_at=_to_datetime(expires_at),
            created_at=_to_datetime(now_ms),
        )
        return info, secret

    def _require_user(self, user_id: str) -> None:
        user_row = self._models.user
        if not user_row.select().where(user_row.id == _key(user_id)).exists():
            raise NotFound(f"no user {user_id!r:.80}")

    def list_tokens(self, user_id: str) -> list[TokenInfo]:
        """The user's tokens that are not revoked (expired ones included), oldest first."""
        token_row = self._models.token
        with self._session():
            self._require_user(user_id)
            rows = list(
                token_row.select()
                .where((token_row.user == _key(user_id)) & token_row.revoked_at.is_null())
                .order_by(token_row.created_at, token_row.id)
            )
        return [self._token_info(r) for r in rows]

    def get_token(self, token_id: str) -> TokenInfo:
        token_row = self._models.token
        with self._session():
            row = token_row.get_or_none(token_row.id == _key(token_id))
        if row is None:
            raise NotFound(f"no token {token_id!r:.80}")
        return self._token_info(row)

    def revoke_token(self, user_id: str | None, token_id: str) -> None:
        """Revoke at once: once this returns, no verify accepts the token.

        NotFound if the token does not exist or is not ``user_id``'s
        (``user_id=None``: the operator, any user's token). Revoking a revoked
        token again is a no-op, so a retried DELETE succeeds.
        """
        token_row = self._models.token
        with self._session(), write_transaction(self._db):
            row = token_row.get_or_none(token_row.id == _key(token_id))
            if row is None or (user_id is not None and row.user_id != user_id):
                raise NotFound(f"no token {token_id!r:.80}")
            token_row.update(revoked_at=self._now_ms()).where(
                (token_row.id == row.id) & token_row.revoked_at.is_null()
            ).execute()

    def verify_token(self, secret: str) -> User:
        """The user a bearer token belongs to; Unauthorized if it is malformed,
        unknown, expired or revoked."""
        user, _ = self.authenticate(secret)
        return user

    def authenticate(self, secret: str) -> tuple[User, TokenInfo]:
        """Like verify_token, plus the token's metadata (e.g. for per-token rate limits).

        One indexed query by the token's SHA-256. The lookup compares hashes,
        not secrets, so its timing reveals nothing usable; the final equality
        check is constant-time anyway.
        """
        if not credentials.is_well_formed_token(secret):
            # Never echo the presented value: it may be a real secret mistyped.
            raise Unauthorized("malformed token")
        lookup_hash = credentials.token_lookup_hash(secret)
        now_ms = self._now_ms()
        with self._session():
            found = self._select_token.first(self._db, lookup_hash)
            row = None if found is None else _TokenRow(*found)
            if row is None or not hmac.compare_digest(row.secret_hash, lookup_hash):
                raise Unauthorized("unknown token")
            if row.revoked_at is not None:
                raise Unauthorized("token revoked")
            if row.expires_at is not None and row.expires_at <= now_ms:
                raise Unauthorized("token expired")
            if row.last_used_at is None or now_ms - row.last_used_at >= self._last_used_interval_ms:
                self._touch(row.id, now_ms)
        return User(id=row.user_id, email=row.email), self._token_info(row)

    def _touch(self, token_id: str, now_ms: int) -> None:
        # At most one write per token per interval: the WHERE makes concurrent
        # verifies of one token agree on a single winner, and a failure here
        # (SQLite busy) must not fail the request it rides on.
        token_row = self._models.token
        cutoff = now_ms - self._last_used_interval_ms
        try:
            token_row.update(last_used_at=now_ms).where(
                (token_row.id == token_id)
                & (token_row.last_used_at.is_null() | (token_row.last_used_at <= cutoff))
            ).execute()
        except peewee.OperationalError as exc:
            log.debug("could not record last use of token %s: %s", token_id, exc)

    # -- projects and roles --------------------------------------------------

    def create_project(self, project_id: str, created_by: str) -> Project:
        """A new project owned by ``created_by``; AlreadyExists if the id is taken
        (one global namespace, whoever can read it)."""
        project_id = validate.project_id(project_id)
        project_row, permission_row = self._models.project, self._models.permission
        now_ms = self._now_ms()
        try:
            with self._session(), write_transaction(self._db):
                self._require_user(created_by)
                if project_row.select().where(project_row.id == project_id).exists():
                    raise AlreadyExists(f"project {project_id} already exists")
                project_row.insert(
                    id=project_id, created_by=created_by, created_at=now_ms
                ).execute()
                permission_row.insert(
                    project=project_id, user=created_by, role=int(Role.OWNER)
                ).execute()
        except peewee.IntegrityError:
            raise AlreadyExists(f"project {project_id} already exists") from None
        return Project(id=project_id, created_by=created_by, created_at=_to_datetime(now_ms))

    def get_project(self, project_id: str) -> Project:
        project_id = validate.project_id(project_id)
        project_row = self._models.project
        with self._session():
            row = project_row.get_or_none(project_row.id == project_id)
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return Project(
            id=row.id, created_by=row.created_by_id, created_at=_to_datetime(row.created_at)
        )

    def list_projects(self, user_id: str) -> list[Project]:
        """Projects ``user_id`` has any role on, by id."""
        project_row, permission_row = self._models.project, self._models.permission
        with self._session():
            rows = list(
                project_row.select()
                .join(permission_row)
                .where(permission_row.user == _key(user_id))
                .order_by(project_row.id)
            )
        return [
            Project(id=r.id, created_by=r.created_by_id, created_at=_to_datetime(r.created_at))
            for r in rows
        ]

    def list_members(self, project_id: str) -> list[Member]:
        project_id = validate.project_id(project_id)
        permission_row, user_row = self._models.permission, self._models.user
        with self._session():
            self._require_project(project_id, lock=False)
            rows = list(
                permission_row.select(permission_row, user_row)
                .join(user_row)
                .where(permission_row.project == project_id)
                .order_by(user_row.email)
            )
        return [Member(user_id=r.user.id, email=r.user.email, role=Role(r.role)) for r in rows]

    def _require_project(self, project_id: str, *, lock: bool) -> None:
        project_row = self._models.project
        query = project_row.select(project_row.id).where(project_row.id == project_id)
        if lock and is_postgres(self._db):
            # Serialises membership changes per project on PostgreSQL, so two
            # owners demoting each other cannot both see "another owner left".
            # (SQLite: write_transaction already holds the database write lock.)
            query = query.for_update()
        if query.first() is None:
            raise NotFound(f"project {project_id} not found")

    def _owner_count(self, project_id: str) -> int:
        permission_row = self._models.permission
        return (
            permission_row.select()
            .where(
                (permission_row.project == project_id) & (permission_row.role == int(Role.OWNER))
            )
            .count()
        )

    def set_role(self, project_id: str, user_id: str, role: Role | str) -> None:
        """Give ``user_id`` ``role`` on the project (add or change).

        NotFound for an unknown project or user; InvalidRequest when it would
        demote the project's last owner (a project always keeps one). Whether
        the *caller* may do this is the service layer's check (owner only).
        """
        project_id = validate.project_id(project_id)
        role = Role.parse(role)
        permission_row = self._models.permission
        with self._session(), write_transaction(self._db):
            self._require_project(project_id, lock=True)
            self._require_user(user_id)
            current = permission_row.get_or_none(
                (permission_row.project == project_id) & (permission_row.user == _key(user_id))
            )
            if current is None:
                permission_row.insert(project=project_id, user=user_id, role=int(role)).execute()
                return
            if (
                current.role == Role.OWNER
                and role != Role.OWNER
                and self._owner_count(project_id) <= 1
            ):
                raise InvalidRequest(f"cannot demote the last owner of project {project_id}")
            permission_row.update(role=int(role)).where(
                (permission_row.project == project_id) & (permission_row.user == _key(user_id))
            ).execute()

    def remove_member(self, project_id: str, user_id: str) -> None:
        """Remove ``user_id``'s role. NotFound if the project is unknown or the user
        has no role on it; InvalidRequest for the last owner."""
        project_id = validate.project_id(project_id)
        permission_row = self._models.permission
        with self._session(), write_transaction(self._db):
            self._require_project(project_id, lock=True)
            current = permission_row.get_or_none(
                (permission_row.project == project_id) & (permission_row.user == _key(user_id))
            )
            if current is None:
                raise NotFound(f"user {user_id!r:.80} has no role on project {project_id}")
            if current.role == Role.OWNER and self._owner_count(project_id) <= 1:
                raise InvalidRequest(f"cannot remove the last owner of project {project_id}")
            permission_row.delete().where(
                (permission_row.project == project_id) & (permission_row.user == _key(user_id))
            ).execute()

    def role_of(self, project_id: str, user_id: str) -> Role | None:
        """The user's role on the project; None if none (or no such project)."""
        project_id = validate.project_id(project_id)
        with self._session():
            row = self._select_role.first(self._db, project_id, _key(user_id))
        return None if row is None else Role(row[0])

    def check_permission(self, project_id: str, user_id: str, required: Role | str) -> Role:
        """The user's role if it is at least ``required``.

        NotFound when the user cannot read the project, whether or not it
        exists (existence does not leak); Forbidden when they can read it but
        need more.
        """
        required = Role.parse(required)
        role = self.role_of(project_id, user_id)
        if role is None:
            raise NotFound(f"project {project_id} not found")
        if role < required:
            raise Forbidden(
                f"{required.label} access to project {project_id} needed; you have {role.label}"
            )
        return role

    # -- backup and restore --------------------------------------------------

    def backup_to(self, store: Store, key: str) -> int:
        """Write a consistent snapshot of the database to ``store`` at ``key``; returns its size.

        The snapshot is a SQLite file of our schema on either backend. SQLite:
        the online backup API copies one read snapshot while other threads and
        processes keep writing. PostgreSQL: rows are copied in one REPEATABLE
        READ transaction.
        """
        fd, tmp_name = tempfile.mkstemp(prefix=".auth-backup-", suffix=".db", dir=self._temp_dir())
        os.close(fd)
        try:
            with self._session():
                if self._sqlite_path is not None:
                    snapshot_conn = sqlite3.connect(tmp_name)
                    try:
                        self._db.connection().backup(snapshot_conn)
                        # A self-contained file: no -wal sidecar needed to read it.
                        snapshot_conn.execute("PRAGMA journal_mode=DELETE")
                    finally:
                        snapshot_conn.close()
                else:
                    os.unlink(tmp_name)
                    snapshot.create_empty(Path(tmp_name))
                    snapshot.copy_out(self._db, snapshot.tables(self._models), Path(tmp_name))
            size_bytes = os.path.getsize(tmp_name)
            with open(tmp_name, "rb") as snapshot_file:
                store.put_file(key, snapshot_file, size_bytes)
            return size_bytes
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def restore_from(self, store: Store, key: str) -> None:
        """Replace the database's contents with the snapshot at ``key``.

        All or nothing: the snapshot is downloaded to a temp file, checked
        (integrity, a micforge schema this version understands) and migrated
        to the latest schema first. Then, on SQLite, the backup API copies it
        into the live database in one write transaction; on PostgreSQL its
        rows replace the live rows in one transaction under exclusive table
        locks. Either way every connection, in this or another process, sees
        the old contents or the new, never a mix, and a crash mid-way leaves
        the old contents.
        """
        from micforge.storage import KeyNotFound

        fd, tmp_name = tempfile.mkstemp(prefix=".auth-restore-", suffix=".db", dir=self._temp_dir())
        try:
            try:
                reader, _size, _etag = store.open(key)
            except KeyNotFound:
                raise NotFound(f"no auth backup at {key!r}") from None
            with os.fdopen(fd, "wb") as out, contextlib.closing(reader):
                while chunk := reader.read(1024 * 1024):
                    out.write(chunk)
            snapshot_conn = sqlite3.connect(tmp_name)
            try:
                self._check_snapshot(snapshot_conn, key)
            finally:
                snapshot_conn.close()
            snapshot.upgrade(Path(tmp_name))
            with self._session():
                if self._sqlite_path is not None:
                    snapshot_conn = sqlite3.connect(tmp_name)
                    try:
                        snapshot_conn.backup(self._db.connection())
                    finally:
                        snapshot_conn.close()
                else:
                    snapshot.copy_in(Path(tmp_name), self._db, snapshot.tables(self._models))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _temp_dir(self) -> str | None:
        # Next to the SQLite file (its disk has room for a copy of it); else the system default.
        return str(self._sqlite_path.parent) if self._sqlite_path is not None else None

    @staticmethod
    def _check_snapshot(snapshot: sqlite3.Connection, key: str) -> None:
        try:
            (integrity,) = snapshot.execute("PRAGMA integrity_check").fetchone()
            tables = {
                r[0] for r in snapshot.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            version = None
            if "micforge_schema_version" in tables:
                row = snapshot.execute("SELECT version FROM micforge_schema_version").fetchone()
                version = int(row[0]) if row else None
        except sqlite3.DatabaseError as exc:
            raise InvalidRequest(f"{key!r} is not a SQLite database: {exc}") from None
        if integrity != "ok":
            raise InvalidRequest(f"auth backup {key!r} is corrupt: {integrity}")
        if version is None or not 1 <= version <= LATEST_VERSION:
            raise InvalidRequest(
                f"{key!r} is not a micforge auth backup this version can restore (schema {version})"
            )


def _check_token_request(name: object, expires_in_days: object) -> None:
    """InvalidRequest unless ``name`` and ``expires_in_days`` make a valid token."""
    if not isinstance(name, str) or not name.strip() or len(name) > TOKEN_NAME_MAX_CHARS:
        raise InvalidRequest(f"token name must be 1 to {TOKEN_NAME_MAX_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("token name must not contain control characters")
    if expires_in_days is not None and (
        isinstance(expires_in_days, bool)
        or not isinstance(expires_in_days, int)
        or not 1 <= expires_in_days <= TOKEN_EXPIRES_IN_DAYS_MAX
    ):
        raise InvalidRequest(
            f"expires_in_days must be an integer from 1 to {TOKEN_EXPIRES_IN_DAYS_MAX}"
        )
