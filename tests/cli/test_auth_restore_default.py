"""`micforge auth restore` without --name restores the most recently made backup, named or not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from micforge.auth import AuthDB
from micforge.config import Config
from micforge.storage import keys, open_store
from tests.cli.test_micforge_cli import Run


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run("--data-dir", str(tmp_path / "data"))


def _add_user(run: Run, email: str) -> None:
    assert run("user", "create", "--email", email)[0] == 0


def _emails(run: Run) -> set[str]:
    status, listing, err = run("user", "list")
    assert status == 0, err
    return {line.split("\t")[1] for line in listing.splitlines()}


def _backup(run: Run, *argv: str) -> str:
    """Make a backup; returns the key it was made under (the first line names it)."""
    status, out, err = run("auth", "backup", *argv)
    assert status == 0, err
    match = re.search(r"to (auth/backups/auth-\d{8}T\d{12}Z\.db)$", out.splitlines()[0])
    assert match, out
    return match.group(1)


def test_a_named_backup_does_not_outrank_a_later_one(run: Run) -> None:
    # The audit's sequence: "before-upgrade.db" sorts after "auth-…", yet it is not the newest.
    _add_user(run, "a@example.org")
    _backup(run)
    _add_user(run, "b@example.org")
    _backup(run, "--name", "before-upgrade.db")
    _add_user(run, "c@example.org")
    newest = _backup(run)
    _add_user(run, "d@example.org")

    status, out, err = run("auth", "restore")

    assert status == 0, err
    assert newest in out.splitlines()[0] and "most recently made" in out
    assert _emails(run) == {"a@example.org", "b@example.org", "c@example.org"}


def test_a_named_backup_made_last_is_the_default(run: Run) -> None:
    _add_user(run, "a@example.org")
    _backup(run)
    _add_user(run, "b@example.org")
    made = _backup(run, "--name", "before-upgrade.db")
    _add_user(run, "c@example.org")

    status, out, err = run("auth", "restore")

    assert status == 0, err
    assert made in out
    assert _emails(run) == {"a@example.org", "b@example.org"}
    # The name given is a copy of the same snapshot, restorable by that name.
    _add_user(run, "d@example.org")
    status, out, err = run("auth", "restore", "--name", "before-upgrade.db")
    assert status == 0 and "auth/backups/before-upgrade.db" in out, err
    assert _emails(run) == {"a@example.org", "b@example.org"}


def test_a_made_at_name_is_restorable_by_name_but_not_choosable(run: Run) -> None:
    _add_user(run, "a@example.org")
    first = _backup(run)
    _add_user(run, "b@example.org")
    _backup(run)
    status, _, err = run("auth", "restore", "--name", first.removeprefix(keys.AUTH_BACKUP_PREFIX))
    assert status == 0, err
    assert _emails(run) == {"a@example.org"}
    # A chosen name that looks made at some time could pose as the newest backup.
    status, _, err = run("auth", "backup", "--name", "auth-20991231T235959000000Z.db")
    assert status == 1 and "auth-<UTC time>.db" in err


def test_backups_that_say_no_time_are_named_not_guessed(run: Run, tmp_path: Path) -> None:
    # A backup stored under a bare name, as `auth backup --name` did before backups
    # always carried their time: the default cannot tell when it was made.
    _add_user(run, "a@example.org")
    config = Config.load({"data_dir": str(tmp_path / "data")}, {})
    store = open_store(config.store_url, config, cache=False)
    try:
        with AuthDB.open(config.auth_db_url) as auth_db:
            auth_db.backup_to(store, keys.auth_backup("old.db"))
    finally:
        store.close()

    status, out, err = run("auth", "restore")

    assert status == 1 and out == ""
    assert "--name" in err and "old.db" in err
