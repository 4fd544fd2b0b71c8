"""AuthDB behaviour, on SQLite and on PostgreSQL (the ``auth_db`` fixture runs each test on both)."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest

from micforge.auth import AuthDB, Member, Role
from micforge.errors import (
    AlreadyExists,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)


class Clock:
    """Controlled time for AuthDB (injected, like any collaborator)."""

    def __init__(self, now_s: float = 1_800_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


# -- users -------------------------------------------------------------------


def test_user_round_trip_and_lookup_by_email(auth_db: AuthDB) -> None:
    user = auth_db.create_user("Ada@Example.org")
    assert user.id.startswith("u_") and len(user.id) == 18
    assert user.email == "ada@example.org"
    assert auth_db.get_user(user.id) == user
    assert auth_db.find_user("ADA@example.org") == user
    assert auth_db.list_users() == [user]


def test_duplicate_email_is_already_exists_whatever_the_case(auth_db: AuthDB) -> None:
    auth_db.create_user("ada@example.org")
    with pytest.raises(AlreadyExists, match="ada@example.org"):
        auth_db.create_user("ADA@example.org")
    assert len(auth_db.list_users()) == 1


@pytest.mark.parametrize(
    "email",
    [
        "",
        "no-at-sign",
        "a@b",
        "two@@example.org",
        "sp ace@example.org",
        None,
        42,
        "a@" + "x" * 320 + ".org",
    ],
)
def test_bad_email_is_invalid_request(auth_db: AuthDB, email: object) -> None:
    with pytest.raises(InvalidRequest):
        auth_db.create_user(email)  # type: ignore[arg-type]


def test_unknown_user_is_not_found(auth_db: AuthDB) -> None:
    with pytest.raises(NotFound):
        auth_db.get_user("u_0000000000000000")
    with pytest.raises(NotFound):
        auth_db.find_user("nobody@example.org")


def test_password_is_checked_and_stored_hashed(auth_db: AuthDB) -> None:
    user = auth_db.create_user("ada@example.org", password="correct horse")
    assert auth_db.check_password("ada@example.org", "correct horse") == user
    with pytest.raises(Unauthorized):
        auth_db.check_password("ada@example.org", "wrong horse!")
    with pytest.raises(Unauthorized):
        auth_db.check_password("nobody@example.org", "correct horse")
    stored = auth_db._db.execute_sql("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("scrypt$") and "correct horse" not in stored


def test_user_without_password_cannot_log_in_with_one(auth_db: AuthDB) -> None:
    auth_db.create_user("ada@example.org")
    with pytest.raises(Unauthorized):
        auth_db.check_password("ada@example.org", "anything at all")


@pytest.mark.parametrize("password", ["short", "x" * 1025, 12345678])
def test_bad_password_is_invalid_request(auth_db: AuthDB, password: object) -> None:
    with pytest.raises(InvalidRequest):
        auth_db.create_user("ada@example.org", password=password)  # type: ignore[arg-type]
    assert auth_db.list_users() == []


# -- tokens ------------------------------------------------------------------


def test_token_verifies_to_its_user_and_is_listed_without_secret(auth_db: AuthDB) -> None:
    user = auth_db.create_user("ada@example.org")
    info, secret = auth_db.create_token(user.id, "laptop")
    assert secret.startswith("mic_") and len(secret) == 47
    assert info.id.startswith("t_") and info.user_id == user.id and info.name == "laptop"
    assert info.expires_at is None
    assert auth_db.verify_token(secret) == user
    listed = auth_db.list_tokens(user.id)
    assert [t.id for t in listed] == [info.id]
    assert secret not in repr(listed)


def test_tokens_are_distinct_and_belong_to_their_user(auth_db: AuthDB) -> None:
    ada = auth_db.create_user("ada@example.org")
    bob = auth_db.create_user("bob@example.org")
    _, ada_secret = auth_db.create_token(ada.id, "one")
    _, bob_secret = auth_db.create_token(bob.id, "one")
    assert ada_secret != bob_secret
    assert auth_db.verify_token(ada_secret) == ada
    assert auth_db.verify_token(bob_secret) == bob
    assert len(auth_db.list_tokens(ada.id)) == 1


def test_revoked_token_fails_at_once_and_is_not_listed(auth_db: AuthDB) -> None:
    user = auth_db.create_user("ada@example.org")
    info, secret = auth_db.create_token(user.id, "laptop")
    keep, keep_secret = auth_db.create_token(user.id, "desktop")
    auth_db.revoke_token(user.id, info.id)
    with pytest.raises(Unauthorized, match="revoked"):
        auth_db.verify_token(secret)
    assert [t.id for t in auth_db.list_tokens(user.id)] == [keep.id]
    assert auth_db.verify_token(keep_secret) == user
    auth_db.revoke_token(user.id, info.id)  # a retried revoke is a no-op


def test_revoke_is_scoped_to_the_owner_of_the_token(auth_db: AuthDB) -> None:
    ada = auth_db.create_user("ada@example.org")
    bob = auth_db.create_user("bob@example.org")
    info, secret = auth_db.create_token(ada.id, "laptop")
    with pytest.raises(NotFound):
        auth_db.revoke_token(bob.id, info.id)
    assert auth_db.verify_token(secret) == ada
    with pytest.raises(NotFound):
        auth_db.revoke_token(None, "t_0000000000000000")
    auth_db.revoke_token(None, info.id)  # the operator may revoke anyone's token
    with pytest.raises(Unauthorized):
        auth_db.verify_token(secret)


def test_token_expires_after_its_days(auth_db_factory) -> None:
    clock = Clock()
    auth_db = auth_db_factory(clock=clock)
    user = auth_db.create_user("ada@example.org")
    info, secret = auth_db.create_token(user.id, "ci", expires_in_days=2)
    assert info.expires_at - info.created_at == timedelta(days=2)
    clock.advance(2 * 86400 - 1)
    assert auth_db.verify_token(secret) == user
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        auth_db.verify_token(secret)
    # Expired tokens stay listed (with their expiry) until revoked.
    assert [t.id for t in auth_db.list_tokens(user.id)] == [info.id]


@pytest.mark.parametrize("days", [0, -1, 3651, 1.5, "7", True])
def test_bad_expiry_is_invalid_request(auth_db: AuthDB, days: object) -> None:
    user = auth_db.create_user("ada@example.org")
    with pytest.raises(InvalidRequest):
        auth_db.create_token(user.id, "ci", expires_in_days=days)  # type: ignore[arg-type]
    assert auth_db.list_tokens(user.id) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\there", None])
def test_bad_token_name_is_invalid_request(auth_db: AuthDB, name: object) -> None:
    user = auth_db.create_user("ada@example.org")
    with pytest.raises(InvalidRequest):
        auth_db.create_token(user.id, name)  # type: ignore[arg-type]


def test_token_for_unknown_user_is_not_found(auth_db: AuthDB) -> None:
    with pytest.raises(NotFound):
        auth_db.create_token("u_0000000000000000", "laptop")
    with pytest.raises(NotFound):
        auth_db.list_tokens("u_0000000000000000")


def test_last_used_is_written_at_most_once_per_interval(auth_db_factory) -> None:
    clock = Clock()
    auth_db = auth_db_factory(clock=clock)
    user = auth_db.create_user("ada@example.org")
    info, secret = auth_db.create_token(user.id, "laptop")
    assert auth_db.get_token(info.id).last_used_at is None
    auth_db.verify_token(secret)
    first = auth_db.get_token(info.id).last_used_at
    assert first is not None
    clock.advance(59)
    auth_db.verify_token(secret)
    assert auth_db.get_token(info.id).last_used_at == first
    clock.advance(1)
    _, token = auth_db.authenticate(secret)
    assert token.id == info.id
    assert auth_db.get_token(info.id).last_used_at == first + timedelta(seconds=60)


# -- projects and roles ------------------------------------------------------


@pytest.fixture
def people(auth_db: AuthDB):
    return (
        auth_db.create_user("owner@example.org"),
        auth_db.create_user("other@example.org"),
    )


def test_creator_becomes_owner(auth_db: AuthDB, people) -> None:
    owner, other = people
    project = auth_db.create_project("acme-web", owner.id)
    assert project.id == "acme-web" and project.created_by == owner.id
    assert auth_db.get_project("acme-web") == project
    assert auth_db.role_of("acme-web", owner.id) is Role.OWNER
    assert auth_db.role_of("acme-web", other.id) is None
    assert auth_db.list_projects(owner.id) == [project]
    assert auth_db.list_projects(other.id) == []


def test_project_ids_are_one_global_namespace(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    with pytest.raises(AlreadyExists):
        auth_db.create_project("acme", other.id)
    assert auth_db.role_of("acme", other.id) is None  # no access gained


@pytest.mark.parametrize("project_id", ["", "Acme", "-x", "a/b", "a" * 64, None])
def test_bad_project_id_is_invalid_request(auth_db: AuthDB, people, project_id: object) -> None:
    with pytest.raises(InvalidRequest):
        auth_db.create_project(project_id, people[0].id)  # type: ignore[arg-type]


def test_project_by_unknown_user_is_not_found(auth_db: AuthDB) -> None:
    with pytest.raises(NotFound):
        auth_db.create_project("acme", "u_0000000000000000")
    with pytest.raises(NotFound):
        auth_db.get_project("acme")


def test_check_permission_orders_roles_and_does_not_leak(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    # No role: NotFound, exactly as for a project that does not exist.
    with pytest.raises(NotFound) as no_role:
        auth_db.check_permission("acme", other.id, Role.READ)
    with pytest.raises(NotFound) as no_project:
        auth_db.check_permission("ghost", other.id, Role.READ)
    assert type(no_role.value) is type(no_project.value)
    assert no_role.value.message.replace("acme", "X") == no_project.value.message.replace(
        "ghost", "X"
    )

    auth_db.set_role("acme", other.id, Role.READ)
    assert auth_db.check_permission("acme", other.id, Role.READ) is Role.READ
    with pytest.raises(Forbidden, match="write"):
        auth_db.check_permission("acme", other.id, Role.WRITE)
    auth_db.set_role("acme", other.id, "write")
    assert auth_db.check_permission("acme", other.id, "read") is Role.WRITE
    with pytest.raises(Forbidden):
        auth_db.check_permission("acme", other.id, Role.OWNER)
    assert auth_db.check_permission("acme", owner.id, Role.OWNER) is Role.OWNER
    assert [p.id for p in auth_db.list_projects(other.id)] == ["acme"]


def test_members_are_listed_with_roles(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    auth_db.set_role("acme", other.id, Role.WRITE)
    assert auth_db.list_members("acme") == [
        Member(user_id=other.id, email=other.email, role=Role.WRITE),
        Member(user_id=owner.id, email=owner.email, role=Role.OWNER),
    ]


def test_remove_member_revokes_access(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    auth_db.set_role("acme", other.id, Role.WRITE)
    auth_db.remove_member("acme", other.id)
    with pytest.raises(NotFound):
        auth_db.check_permission("acme", other.id, Role.READ)
    with pytest.raises(NotFound):
        auth_db.remove_member("acme", other.id)


def test_the_last_owner_cannot_be_demoted_or_removed(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    with pytest.raises(InvalidRequest, match="last owner"):
        auth_db.set_role("acme", owner.id, Role.WRITE)
    with pytest.raises(InvalidRequest, match="last owner"):
        auth_db.remove_member("acme", owner.id)
    assert auth_db.role_of("acme", owner.id) is Role.OWNER
    # With a second owner, the first may step down.
    auth_db.set_role("acme", other.id, Role.OWNER)
    auth_db.set_role("acme", owner.id, Role.READ)
    assert auth_db.role_of("acme", owner.id) is Role.READ
    with pytest.raises(InvalidRequest):
        auth_db.remove_member("acme", other.id)


def test_set_role_rejects_unknown_things(auth_db: AuthDB, people) -> None:
    owner, other = people
    auth_db.create_project("acme", owner.id)
    with pytest.raises(NotFound):
        auth_db.set_role("ghost", other.id, Role.READ)
    with pytest.raises(NotFound):
        auth_db.set_role("acme", "u_0000000000000000", Role.READ)
    for bad in ("admin", "READ", 2, None):
        with pytest.raises(InvalidRequest):
            auth_db.set_role("acme", other.id, bad)  # type: ignore[arg-type]
    assert auth_db.role_of("acme", other.id) is None


def test_role_labels_round_trip() -> None:
    assert [Role.parse(r.label) for r in Role] == [Role.READ, Role.WRITE, Role.OWNER]
    assert Role.READ < Role.WRITE < Role.OWNER


# -- the instance itself -----------------------------------------------------


def test_ping_and_repr(auth_db: AuthDB) -> None:
    auth_db.ping()
    assert repr(auth_db).startswith("AuthDB(")


def test_two_instances_on_one_database_see_each_other(auth_db_factory) -> None:
    first, second = auth_db_factory(), auth_db_factory()
    user = first.create_user("ada@example.org")
    _, secret = first.create_token(user.id, "laptop")
    assert second.verify_token(secret) == user


def test_unsupported_url_is_invalid_request() -> None:
    for url in ("mysql://x/y", "sqlite:///:memory:", "sqlite:///", "", None):
        with pytest.raises(InvalidRequest):
            AuthDB.open(url)  # type: ignore[arg-type]


def test_sqlite_and_postgres_instances_coexist(tmp_path, postgres_url: str) -> None:
    # Models are per instance: writes through one never land in the other.
    from micforge.auth import ScryptParams

    cheap = ScryptParams(n=16)
    with (
        AuthDB.open(f"sqlite:///{tmp_path / 'auth.db'}", scrypt_params=cheap) as lite,
        AuthDB.open(postgres_url, scrypt_params=cheap) as pg,
    ):
        lite_user = lite.create_user("ada@example.org")
        pg_user = pg.create_user("ada@example.org")
        assert (lite.backend, pg.backend) == ("sqlite", "postgresql")
        assert lite_user.id != pg_user.id
        assert lite.find_user("ada@example.org") == lite_user
        assert pg.find_user("ada@example.org") == pg_user
        _, secret = lite.create_token(lite_user.id, "laptop")
        with pytest.raises(Unauthorized):
            pg.verify_token(secret)


def _socket_options(auth_db: AuthDB) -> tuple[int, int, int, int, int]:
    """The TCP options the kernel holds for one of ``auth_db``'s pooled connections."""
    with auth_db._session():
        raw = socket.socket(fileno=os.dup(auth_db._db.connection().fileno()))
    with raw:
        return (
            raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )


def test_postgres_connections_notice_a_vanished_host_in_a_minute(postgres_url: str) -> None:
    # Linux's own defaults would take hours (keepalive) or ~15 min (retransmission).
    from micforge.auth import ScryptParams
    from micforge.auth.db import PG_TCP_DEFAULTS

    cheap = ScryptParams(n=16)
    assert "@127.0.0.1:" in postgres_url  # TCP, where the options apply
    assert PG_TCP_DEFAULTS["tcp_user_timeout"] == 30_000
    with AuthDB.open(postgres_url, scrypt_params=cheap) as pg:
        assert _socket_options(pg) == (1, 30, 10, 3, 30_000)
    # The URL's own options win.
    with AuthDB.open(
        f"{postgres_url}?keepalives_idle=7&tcp_user_timeout=9000", scrypt_params=cheap
    ) as pg:
        assert _socket_options(pg) == (1, 7, 10, 3, 9000)


def test_a_libpq_before_12_gets_keepalives_but_no_tcp_user_timeout(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq 11 refuses the option by name ("invalid dsn"): a psycopg2 built from source
    # against an old system libpq must still connect. (The bundled libpq is 17.)
    from micforge.auth import ScryptParams, db

    monkeypatch.setattr(db, "_libpq_version", lambda: 110000)
    with AuthDB.open(postgres_url, scrypt_params=ScryptParams(n=16)) as pg:
        assert _socket_options(pg) == (1, 30, 10, 3, 0)


@pytest.mark.parametrize("bad", ["u_\x00", "x" * 1000, "", 7, None])
def test_impossible_ids_are_not_found_not_crashes(auth_db: AuthDB, bad: object) -> None:
    # PostgreSQL refuses NUL bytes in text: such ids must not reach it.
    owner = auth_db.create_user("owner@example.org")
    auth_db.create_project("acme", owner.id)
    for call in (
        lambda: auth_db.get_user(bad),
        lambda: auth_db.create_token(bad, "laptop"),
        lambda: auth_db.revoke_token(None, bad),
        lambda: auth_db.set_role("acme", bad, Role.READ),
        lambda: auth_db.remove_member("acme", bad),
        lambda: auth_db.check_permission("acme", bad, Role.READ),
        lambda: auth_db.create_project("other", bad),
    ):
        with pytest.raises(NotFound):
            call()
    assert auth_db.role_of("acme", bad) is None
    assert auth_db.list_projects(bad) == []
    with pytest.raises((NotFound, InvalidRequest)):
        auth_db.find_user(bad)
    with pytest.raises(InvalidRequest):
        auth_db.create_user("nul\x00@example.org")
    with pytest.raises(Unauthorized):
        auth_db.check_password("nul\x00@example.org", "password1")


def test_unopenable_sqlite_path_is_unavailable_at_once(tmp_path) -> None:
    (tmp_path / "auth.db").mkdir()  # a directory where the file should be
    started = time.monotonic()
    with pytest.raises(Unavailable):
        AuthDB.open(f"sqlite:///{tmp_path / 'auth.db'}")
    assert time.monotonic() - started < 2
