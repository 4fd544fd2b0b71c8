"""The PostgreSQL fixture's own rules: where binaries are found, and skip versus fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.postgres import REQUIRE_ENV, _find_bin_dir, _unavailable


def _fake_bin(directory: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")) -> Path:
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).touch()
    return directory


def test_debian_directories_are_searched_newest_first(tmp_path: Path) -> None:
    _fake_bin(tmp_path / "lib/postgresql/9/bin")
    newest = _fake_bin(tmp_path / "lib/postgresql/15/bin")
    _fake_bin(tmp_path / "lib/postgresql/16/bin", names=("initdb",))  # incomplete: skipped
    found = _find_bin_dir(initdb_on_path="", debian_glob=str(tmp_path / "lib/postgresql/*/bin"))
    assert found == newest


def test_path_wins_over_debian_directories(tmp_path: Path) -> None:
    on_path = _fake_bin(tmp_path / "usr/local/bin")
    _fake_bin(tmp_path / "lib/postgresql/15/bin")
    found = _find_bin_dir(
        initdb_on_path=str(on_path / "initdb"), debian_glob=str(tmp_path / "lib/postgresql/*/bin")
    )
    assert found == on_path


def test_nothing_found(tmp_path: Path) -> None:
    assert _find_bin_dir(initdb_on_path="", debian_glob=str(tmp_path / "none/*/bin")) is None


def test_missing_postgres_skips_unless_required() -> None:
    with pytest.raises(pytest.skip.Exception, match="not found"):
        _unavailable("binaries not found", environ={})
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_ENV):
        _unavailable("binaries not found", environ={REQUIRE_ENV: "1"})
