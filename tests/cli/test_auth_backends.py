"""`micforge auth` says it serves SQLite and PostgreSQL, and it does, across the two."""

from __future__ import annotations

from pathlib import Path

import pytest

from micforge.cli.micforge import main
from tests.cli.test_micforge_cli import Run


def test_help_names_both_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    (auth_line,) = [line for line in capsys.readouterr().out.splitlines() if "auth " in line]
    assert "SQLite" in auth_line and "PostgreSQL" in auth_line
    assert main(["auth", "--help"]) == 0
    assert "PostgreSQL" in capsys.readouterr().out


def test_a_postgresql_backup_restores_into_sqlite(tmp_path: Path, postgres_url: str) -> None:
    data_dir = str(tmp_path / "data")  # one store for both: the backup lives there
    on_postgres = Run("--data-dir", data_dir, "--auth-db", postgres_url)
    on_sqlite = Run("--data-dir", data_dir)
    assert on_postgres("user", "create", "--email", "ada@example.org")[0] == 0
    assert on_postgres("auth", "backup")[0] == 0

    status, _, err = on_sqlite("auth", "restore")

    assert status == 0, err
    assert "ada@example.org" in on_sqlite("user", "list")[1]
