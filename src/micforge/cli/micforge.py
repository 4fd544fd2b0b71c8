"""``micforge``: the operator command (server, accounts, tokens, projects, auth backups).

    micforge serve [--host H --port P --grpc-port G ...]
    micforge user create --email E [--token-name N] [--password-stdin]
    micforge user list
    micforge token create --user U --name N [--expires-in-days D]
    micforge token list --user U
    micforge token revoke TOKEN_ID [--user U]
    micforge project create ID --owner U
    micforge project grant ID --user U --role read|write|owner
    micforge project revoke ID --user U
    micforge project members ID
    micforge auth backup [--name NAME]
    micforge auth restore [--name NAME]      (default: the most recently made backup)

Every subcommand takes ``--data-dir``, ``--auth-db`` and ``--store``; values
come from flags > ``MICFORGE_*`` environment > defaults (``Config.load``).
``U`` is a user id (``u_...``) or an email. Commands that make a token print
it alone on the last line of stdout, for scripts. Exit status: 0 ok, 1 a
domain error (message on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from micforge.config import Config
from micforge.errors import InvalidRequest, MicError, NotFound

if TYPE_CHECKING:
    from micforge.storage import Store

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
_BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Every backup is made under a name that says when, in a fixed width, so name
# order is the order they were made in, on every store: object times are not
# part of the Store protocol, and copying a store keeps names but not always
# times. A --name backup is a second copy of the same snapshot under that name.
_MADE_AT_FORMAT = "auth-%Y%m%dT%H%M%S%fZ.db"
_MADE_AT_NAME = re.compile(r"auth-\d{8}T\d{12}Z\.db")


class _Out:
    """Where commands print; main() passes the real streams, tests their own."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr

    def line(self, text: str = "") -> None:
        print(text, file=self.stdout)


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration (flags > MICFORGE_* environment > defaults)")
    group.add_argument("--data-dir", help="data directory (default: ./micforge-data)")
    group.add_argument(
        "--auth-db", help="sqlite:///path or postgresql://... (default: sqlite in data dir)"
    )
    group.add_argument(
        "--store", help="file:///path or s3://bucket/prefix (default: file store in data dir)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micforge", description="micforge operator command")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    serve = groups.add_parser("serve", help="run the REST and gRPC server")
    _common(serve)
    serve.add_argument("--host", help="interface to bind REST and gRPC to (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="REST port (default 8080; 0 = any free port)")
    serve.add_argument("--grpc-port", type=int, help="gRPC port (default 50051; 0 = any free)")
    serve.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    serve.add_argument("--rate-limit-per-minute", type=int, help="per token; 0 = off")
    serve.set_defaults(handler=_serve, makes_auth_db=True)

    user = groups.add_parser("user", help="accounts").add_subparsers(
        dest="cmd", required=True, metavar="CMD"
    )
    p = user.add_parser("create", help="create a user and print a first token (last line)")
    _common(p)
    p.add_argument("--email", required=True, help="the user's email (unique, case-insensitive)")
    p.add_argument(
        "--token-name", default="initial", help="name of the first token (default: initial)"
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="read a password from the first line of stdin"
    )
    p.set_defaults(handler=_user_create, makes_auth_db=True)
    p = user.add_parser("list", help="list users")
    _common(p)
    p.set_defaults(handler=_user_list)

    token = groups.add_parser("token", help="API tokens").add_subparsers(
        dest="cmd", required=True, metavar="CMD"
    )
    p = token.add_parser("create", help="create a token and print it (last line)")
    _common(p)
    p.add_argument("--user", required=True, help="user id or email")
    p.add_argument("--name", required=True)
    p.add_argument("--expires-in-days", type=int)
    p.set_defaults(handler=_token_create)
    p = token.add_parser("list", help="list a user's tokens (never their secrets)")
    _common(p)
    p.add_argument("--user", required=True, help="user id or email")
    p.set_defaults(handler=_token_list)
    p = token.add_parser("revoke", help="revoke a token at once")
    _common(p)
    p.add_argument("token_id")
    p.add_argument("--user", help="only if the token is this user's (id or email)")
    p.set_defaults(handler=_token_revoke)

    project = groups.add_parser("project", help="projects and roles").add_subparsers(
        dest="cmd", required=True, metavar="CMD"
    )
    p = project.add_parser("create", help="create a project; the owner gets the owner role")
    _common(p)
    p.add_argument("project_id")
    p.add_argument("--owner", required=True, help="user id or email")
    p.set_defaults(handler=_project_create)
    p = project.add_parser("grant", help="give a user a role on a project")
    _common(p)
    p.add_argument("project_id")
    p.add_argument("--user", required=True, help="user id or email")
    p.add_argument("--role", required=True, choices=["read", "write", "owner"])
    p.set_defaults(handler=_project_grant)
    p = project.add_parser("revoke", help="remove a user's role on a project")
    _common(p)
    p.add_argument("project_id")
    p.add_argument("--user", required=True, help="user id or email")
    p.set_defaults(handler=_project_revoke)
    p = project.add_parser("members", help="list a project's members")
    _common(p)
    p.add_argument("project_id")
    p.set_defaults(handler=_project_members)

    auth = groups.add_parser(
        "auth",
        help="auth DB backup and restore (SQLite or PostgreSQL)",
        description="Snapshots of the auth DB, SQLite or PostgreSQL, kept in the store as "
        "SQLite files; any snapshot restores into either backend.",
    ).add_subparsers(dest="cmd", required=True, metavar="CMD")
    p = auth.add_parser("backup", help="write a consistent snapshot of the auth DB to the store")
    _common(p)
    p.add_argument(
        "--name", help="also keep the backup under this name (it is always auth-<UTC time>.db)"
    )
    p.set_defaults(handler=_auth_backup)
    p = auth.add_parser("restore", help="replace the auth DB with a backup from the store")
    _common(p)
    p.add_argument("--name", help="backup name (default: the most recently made backup)")
    p.set_defaults(handler=_auth_restore, makes_auth_db=True)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; returns the exit status. ``environ`` and the streams
    default to the process's own (tests pass theirs)."""
    out = _Out(stdout or sys.stdout, stderr or sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        config = _config(args, environ)
        if not getattr(args, "makes_auth_db", False):
            _require_auth_db(config)
        handler: Callable[..., int | None] = args.handler
        status = handler(args, config, out, stdin or sys.stdin)
        return EXIT_OK if status is None else status
    except MicError as exc:
        print(f"micforge: {exc.message}", file=out.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # configuration or store URL the loaders rejected
        print(f"micforge: {exc}", file=out.stderr)
        return EXIT_ERROR
    except _store_errors() as exc:
        print(f"micforge: storage error: {exc}", file=out.stderr)
        return EXIT_ERROR
    except OSError as exc:  # e.g. a data dir that cannot be created (a parent is a file)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"micforge: {exc.strerror or exc}{where}", file=out.stderr)
        return EXIT_ERROR


def _store_errors() -> tuple[type[BaseException], ...]:
    # Imported late so `micforge --help` and account commands work without the storage layer loaded.
    from micforge.storage import StoreError

    return (StoreError,)


def _config(args: argparse.Namespace, environ: Mapping[str, str] | None) -> Config:
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "auth_db_url": getattr(args, "auth_db", None),
        "store_url": getattr(args, "store", None),
    }
    for flag in ("host", "port", "grpc_port", "log_level", "rate_limit_per_minute"):
        if hasattr(args, flag):
            overrides[flag] = getattr(args, flag)
    return Config.load(overrides, environ)


def _require_auth_db(config: Config) -> None:
    """NotFound if the auth DB is a SQLite file that does not exist. Only ``serve``,
    ``user create`` and ``auth restore`` make one: any other command on a mistyped
    ``--data-dir`` (or from another directory than the usual one, with the default
    ``./micforge-data``) would otherwise start an empty deployment there and
    report, say, no users."""
    from micforge.auth.db import sqlite_file

    path = sqlite_file(config.auth_db_url)
    if path is not None and not path.exists():
        raise NotFound(
            f"no auth DB at {path}: check --data-dir or --auth-db"
            " ('micforge user create' or 'micforge serve' makes a new one)"
        )


def _open_auth(config: Config):
    from micforge.auth import AuthDB

    return AuthDB.open(config.auth_db_url)


def _resolve_user(auth_db, ref: str):
    """A user from an id or an email, so operators can type either."""
    return auth_db.find_user(ref) if "@" in ref else auth_db.get_user(ref)


def _when(value: datetime | None) -> str:
    return "never" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- commands ------------------------------------------------------------------


def _serve(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> int:
    # Lazy: the API layer is heavy (flask, grpc) and account commands do not need it.
    from micforge.api.serve import serve

    return serve(config)


def _user_create(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    password = None
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    with _open_auth(config) as auth_db:
        user, info, secret = auth_db.create_user_with_token(
            args.email, args.token_name, password=password
        )
    out.line(f"user {user.id} {user.email}")
    out.line(f"token {info.id} {info.name!r} (shown once; store it now)")
    out.line(secret)


def _user_list(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        for user in auth_db.list_users():
            out.line(f"{user.id}\t{user.email}")


def _token_create(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        user = _resolve_user(auth_db, args.user)
        info, secret = auth_db.create_token(user.id, args.name, args.expires_in_days)
    out.line(
        f"token {info.id} {info.name!r} for {user.email}, expires {_when(info.expires_at)} (shown once)"
    )
    out.line(secret)


def _token_list(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        user = _resolve_user(auth_db, args.user)
        tokens = auth_db.list_tokens(user.id)
    for token in tokens:
        out.line(
            f"{token.id}\t{token.name}\tcreated {_when(token.created_at)}\t"
            f"expires {_when(token.expires_at)}\tlast used {_when(token.last_used_at)}"
        )


def _token_revoke(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        user_id = _resolve_user(auth_db, args.user).id if args.user else None
        auth_db.revoke_token(user_id, args.token_id)
    out.line(f"revoked {args.token_id}")


def _project_create(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        owner = _resolve_user(auth_db, args.owner)
        project = auth_db.create_project(args.project_id, owner.id)
    out.line(f"project {project.id} owned by {owner.email}")


def _project_grant(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        user = _resolve_user(auth_db, args.user)
        auth_db.set_role(args.project_id, user.id, args.role)
    out.line(f"{user.email} has {args.role} on {args.project_id}")


def _project_revoke(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        user = _resolve_user(auth_db, args.user)
        try:
            auth_db.remove_member(args.project_id, user.id)
        except NotFound:
            auth_db.get_project(args.project_id)  # raises if that was the reason
            # The auth layer names the user by id; the operator typed an id or an email.
            raise NotFound(f"{user.email} has no role on project {args.project_id}") from None
    out.line(f"removed {user.email} from {args.project_id}")


def _project_members(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    with _open_auth(config) as auth_db:
        members = auth_db.list_members(args.project_id)
    for member in members:
        out.line(f"{member.user_id}\t{member.email}\t{member.role.label}")


def _backup_name(name: str) -> str:
    if not _BACKUP_NAME.fullmatch(name):
        raise InvalidRequest("backup name must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}")
    return name


def _made_at(name: str) -> str:
    return datetime.strptime(name, _MADE_AT_FORMAT).strftime("%Y-%m-%d %H:%M:%S UTC")


def _auth_backup(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    from micforge.storage import keys, open_store

    label = None if args.name is None else _backup_name(args.name)
    if label is not None and _MADE_AT_NAME.fullmatch(label):
        # It would pass for a backup made at that time, and could pose as the newest.
        raise InvalidRequest("backup names of the form auth-<UTC time>.db are micforge's own")
    key = keys.auth_backup(datetime.now(UTC).strftime(_MADE_AT_FORMAT))
    store = open_store(config.store_url, config, cache=False)
    try:
        with _open_auth(config) as auth_db:
            size_bytes = auth_db.backup_to(store, key)
        out.line(f"backed up the auth DB ({size_bytes} bytes) to {key}")
        if label is not None:
            named_key = keys.auth_backup(label)
            reader, size_bytes, _etag = store.open(key)
            with contextlib.closing(reader):
                store.put_file(named_key, reader, size_bytes)
            out.line(f"and kept the same backup as {named_key}")
    finally:
        store.close()


def _newest_backup(store: Store) -> str:
    """The key of the most recently made backup: the last name that says when it was made."""
    from micforge.storage import keys

    found = store.list(keys.AUTH_BACKUP_PREFIX)
    if not found:
        raise NotFound(f"no auth backups under {keys.AUTH_BACKUP_PREFIX} in the store")
    names = [key.removeprefix(keys.AUTH_BACKUP_PREFIX) for key in found]
    made = [name for name in names if _MADE_AT_NAME.fullmatch(name)]
    if not made:  # only backups named by an older micforge, which kept no time
        raise NotFound(
            f"no backup under {keys.AUTH_BACKUP_PREFIX} says when it was made; "
            f"restore one by --name: {', '.join(names[:10])}"
        )
    return keys.auth_backup(made[-1])  # list() is sorted, and so is this fixed-width time


def _auth_restore(args: argparse.Namespace, config: Config, out: _Out, stdin: TextIO) -> None:
    from micforge.storage import keys, open_store

    store = open_store(config.store_url, config, cache=False)
    try:
        if args.name is not None:
            key = keys.auth_backup(_backup_name(args.name))
        else:
            key = _newest_backup(store)
            made_at = _made_at(key.removeprefix(keys.AUTH_BACKUP_PREFIX))
            out.line(f"restoring the most recently made backup, {key} (made {made_at})")
        with _open_auth(config) as auth_db:
            auth_db.restore_from(store, key)
    finally:
        store.close()
    out.line(f"restored the auth DB from {key}")


if __name__ == "__main__":
    sys.exit(main())
