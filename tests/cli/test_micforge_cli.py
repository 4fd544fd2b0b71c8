"""The `micforge` operator command: in-process through main() and as a real subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import micforge
from micforge.auth import AuthDB, Role
from micforge.cli.micforge import build_parser, main
from micforge.config import Config
from tests.fixtures.moto_server import create_bucket


class Run:
    """main() with its own streams and an empty environment (never the test process's)."""

    def __init__(self, *common: str, environ: dict[str, str] | None = None) -> None:
        self.common = list(common)
        self.environ = environ or {}

    def open_auth_db(self) -> AuthDB:
        """The AuthDB these commands use, resolved the way the CLI resolves it."""
        flags = dict(zip(self.common[::2], self.common[1::2], strict=True))
        config = Config.load(
            {"data_dir": flags.get("--data-dir"), "auth_db_url": flags.get("--auth-db")}, {}
        )
        return AuthDB.open(config.auth_db_url)

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(
            [*argv, *self.common],
            environ=self.environ,
            stdin=io.StringIO(stdin),
            stdout=out,
            stderr=err,
        )
        return status, out.getvalue(), err.getvalue()


@pytest.fixture(params=["sqlite", "postgres"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Run:
    common = ["--data-dir", str(tmp_path / "data")]
    if request.param == "postgres":
        common += ["--auth-db", request.getfixturevalue("postgres_url")]
    return Run(*common)


def test_user_create_prints_a_working_token_on_the_last_line(run: Run) -> None:
    status, out, err = run("user", "create", "--email", "ada@example.org")
    assert (status, err) == (0, "")
    token = out.splitlines()[-1]
    assert token.startswith("mic_") and token == token.strip()
    with run.open_auth_db() as auth_db:
        assert auth_db.verify_token(token).email == "ada@example.org"


def test_duplicates_and_unknown_users_are_clear_errors(run: Run) -> None:
    assert run("user", "create", "--email", "ada@example.org")[0] == 0
    status, out, err = run("user", "create", "--email", "ADA@example.org")
    assert status == 1 and "already exists" in err and out == ""
    status, _, err = run("token", "create", "--user", "bob@example.org", "--name", "x")
    assert status == 1 and "bob@example.org" in err
    status, _, err = run("project", "create", "acme", "--owner", "u_0000000000000000")
    assert status == 1 and "no user" in err
    status, _, err = run("user", "create", "--email", "not-an-email")
    assert status == 1 and "email" in err


def test_token_create_list_revoke(run: Run) -> None:
    run("user", "create", "--email", "ada@example.org")
    status, out, _ = run(
        "token", "create", "--user", "ada@example.org", "--name", "ci", "--expires-in-days", "7"
    )
    assert status == 0
    secret = out.splitlines()[-1]
    token_id = out.split()[1]
    status, listing, _ = run("token", "list", "--user", "ada@example.org")
    assert status == 0 and token_id in listing and "initial" in listing and secret not in listing
    assert run("token", "revoke", token_id, "--user", "ada@example.org")[0] == 0
    status, listing, _ = run("token", "list", "--user", "ada@example.org")
    assert token_id not in listing
    with run.open_auth_db() as auth_db, pytest.raises(micforge.errors.Unauthorized):
        auth_db.verify_token(secret)
    status, _, err = run("token", "revoke", "t_0000000000000000")
    assert status == 1 and "no token" in err


def test_project_create_grant_revoke(run: Run) -> None:
    run("user", "create", "--email", "ada@example.org")
    run("user", "create", "--email", "bob@example.org")
    assert run("project", "create", "acme", "--owner", "ada@example.org")[0] == 0
    status, _, err = run("project", "create", "acme", "--owner", "bob@example.org")
    assert status == 1 and "already exists" in err
    assert run("project", "grant", "acme", "--user", "bob@example.org", "--role", "write")[0] == 0
    status, members, _ = run("project", "members", "acme")
    assert (
        status == 0 and "bob@example.org\twrite" in members and "ada@example.org\towner" in members
    )
    with run.open_auth_db() as auth_db:
        bob = auth_db.find_user("bob@example.org")
        assert auth_db.check_permission("acme", bob.id, Role.WRITE) is Role.WRITE
    status, out, _ = run("project", "revoke", "acme", "--user", "bob@example.org")
    assert status == 0 and out == "removed bob@example.org from acme\n"
    status, _, err = run("project", "revoke", "acme", "--user", "bob@example.org")
    assert status == 1 and err == "micforge: bob@example.org has no role on project acme\n"
    status, _, err = run("project", "revoke", "ghost", "--user", "bob@example.org")
    assert status == 1 and err == "micforge: project ghost not found\n"
    status, _, err = run("project", "revoke", "acme", "--user", "ada@example.org")
    assert status == 1 and "last owner" in err
    status, _, err = run("project", "grant", "ghost", "--user", "bob@example.org", "--role", "read")
    assert status == 1 and "not found" in err
    status, _, err = run("project", "create", "Bad/Id", "--owner", "ada@example.org")
    assert status == 1 and "project id" in err


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("frobnicate")[0] == 2
    assert run("user", "create")[0] == 2  # --email missing
    assert run("project", "grant", "acme", "--user", "a@b.io", "--role", "admin")[0] == 2
    assert (
        run("token", "create", "--user", "a@b.io", "--name", "x", "--expires-in-days", "soon")[0]
        == 2
    )


def test_password_from_stdin(tmp_path: Path) -> None:
    run = Run("--data-dir", str(tmp_path))
    status, _, _ = run(
        "user", "create", "--email", "ada@example.org", "--password-stdin", stdin="correct horse\n"
    )
    assert status == 0
    with AuthDB.open(f"sqlite:///{tmp_path / 'auth.db'}") as auth_db:
        assert auth_db.check_password("ada@example.org", "correct horse").email == "ada@example.org"


def test_environment_applies_below_flags(tmp_path: Path) -> None:
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    by_env = Run(environ={"MICFORGE_DATA_DIR": str(env_dir)})
    assert by_env("user", "create", "--email", "ada@example.org")[0] == 0
    assert (env_dir / "auth.db").exists()
    assert (
        by_env("user", "create", "--email", "ada@example.org", "--data-dir", str(flag_dir))[0] == 0
    )
    assert (flag_dir / "auth.db").exists()


def test_serve_flags_reach_the_config() -> None:
    from micforge.cli.micforge import _config

    args = build_parser().parse_args(["serve", "--port", "9001", "--rate-limit-per-minute", "5"])
    config = _config(args, {"MICFORGE_PORT": "7", "MICFORGE_GRPC_PORT": "7002"})
    assert (config.port, config.grpc_port, config.rate_limit_per_minute) == (9001, 7002, 5)


def test_backup_and_restore_on_a_file_store(run: Run) -> None:
    _, out, _ = run("user", "create", "--email", "ada@example.org")
    secret = out.splitlines()[-1]
    status, out, _ = run("auth", "backup")
    assert status == 0 and "auth/backups/auth-" in out
    run("user", "create", "--email", "late@example.org")
    status, out, err = run("auth", "restore")  # the newest backup
    assert status == 0, err
    status, listing, _ = run("user", "list")
    assert "ada@example.org" in listing and "late@example.org" not in listing
    with run.open_auth_db() as auth_db:
        assert auth_db.verify_token(secret).email == "ada@example.org"
    status, _, err = run("auth", "restore", "--name", "nope.db")
    assert status == 1 and "no auth backup" in err
    status, _, err = run("auth", "backup", "--name", "../escape")
    assert status == 1 and "backup name" in err


def test_restore_without_backups_is_an_error(tmp_path: Path) -> None:
    status, _, err = Run("--data-dir", str(tmp_path))("auth", "restore")
    assert status == 1 and "no auth backups" in err


def _subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    src = str(Path(micforge.__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICFORGE_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def test_real_process_backs_up_to_s3_and_restores(tmp_path: Path, s3_credentials) -> None:
    bucket = create_bucket(s3_credentials)
    env = _subprocess_env(
        {
            "MICFORGE_DATA_DIR": str(tmp_path / "data"),
            "MICFORGE_STORE_URL": f"s3://{bucket}/forge",
            "MICFORGE_S3_ENDPOINT_URL": s3_credentials["endpoint_url"],
            "AWS_ACCESS_KEY_ID": s3_credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": s3_credentials["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": s3_credentials["region_name"],
        }
    )

    def micforge_cmd(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "micforge.cli.micforge", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = micforge_cmd("user", "create", "--email", "ada@example.org")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    backup = micforge_cmd("auth", "backup", "--name", "s3.db")
    assert backup.returncode == 0, backup.stderr
    (tmp_path / "data" / "auth.db").unlink()  # lose the machine's DB (and its WAL)
    for sidecar in ("auth.db-wal", "auth.db-shm"):
        (tmp_path / "data" / sidecar).unlink(missing_ok=True)
    restored = micforge_cmd("auth", "restore")
    assert restored.returncode == 0, restored.stderr
    with AuthDB.open(f"sqlite:///{tmp_path / 'data' / 'auth.db'}") as auth_db:
        assert auth_db.verify_token(secret).email == "ada@example.org"
    duplicate = micforge_cmd("user", "create", "--email", "ada@example.org")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    usage = micforge_cmd("user")
    assert usage.returncode == 2
