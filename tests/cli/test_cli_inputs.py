"""Bad settings and unusable data dirs: one clear line on stderr and exit 1, nothing
changed; and the inputs that are fine (IPv6 hosts) work."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from micforge.api.serve import Server
from micforge.cli.micforge import EXIT_ERROR
from micforge.config import Config
from micforge.service import build_services
from tests.cli.test_micforge_cli import Run, _subprocess_env


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--port", "70000"], {}, "MICFORGE_PORT"),
        (["--grpc-port", "65536"], {}, "MICFORGE_GRPC_PORT"),
        ([], {"MICFORGE_PORT": "70000"}, "MICFORGE_PORT"),
        ([], {"MICFORGE_PORT": "abc"}, "MICFORGE_PORT"),
        ([], {"MICFORGE_THREADS": "0"}, "MICFORGE_THREADS"),
        ([], {"MICFORGE_CACHE_RAM_BYTES": "x"}, "MICFORGE_CACHE_RAM_BYTES"),
        ([], {"MICFORGE_BLOB_MAX_BYTES": "-1"}, "MICFORGE_BLOB_MAX_BYTES"),
        ([], {"MICFORGE_RATE_LIMIT_PER_MINUTE": "-3"}, "MICFORGE_RATE_LIMIT_PER_MINUTE"),
        (["--rate-limit-per-minute", "-5"], {}, "MICFORGE_RATE_LIMIT_PER_MINUTE"),
        (["--log-level", "LOUD"], {}, "MICFORGE_LOG_LEVEL"),
        ([], {"MICFORGE_GRPC_HEALTH_POLL_MS": "0"}, "MICFORGE_GRPC_HEALTH_POLL_MS"),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_it(
    tmp_path: Path, argv: list[str], environ: dict[str, str], named: str
) -> None:
    run = Run("--data-dir", str(tmp_path / "data"), environ=environ)
    status, out, err = run("serve", *argv)  # refused before anything is opened or bound
    assert status == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith("micforge: ") and named in err, err
    assert not (tmp_path / "data").exists()


def test_config_takes_an_ipv6_host_with_or_without_brackets() -> None:
    assert Config(host="[::1]").host == "::1"
    assert Config(host="::1").host == "::1"
    with pytest.raises(ValueError, match="host"):
        Config(host="")


def _one_error_line_from_a_real_process(argv: list[str]) -> str:
    """Run `micforge ARGV` as its own process; it must exit 1 with exactly one
    `micforge:` line on stderr and no traceback. Returns that line."""
    result = subprocess.run(
        [sys.executable, "-m", "micforge.cli.micforge", *argv],
        env=_subprocess_env({}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_ERROR, result.stderr
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("micforge:")]
    assert len(ours) == 1, result.stderr
    return ours[0]


@pytest.mark.parametrize("command", [["user", "list"], ["serve", "--port", "0"]])
def test_a_data_dir_that_cannot_be_made_is_one_line_and_exit_1(
    tmp_path: Path, command: list[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    said = _one_error_line_from_a_real_process([*command, "--data-dir", str(afile / "sub")])
    assert str(afile) in said
    if command[0] == "serve":  # it names what it could not make
        assert said == f"micforge: cannot create the data dir {afile / 'sub'}: Not a directory"


@pytest.mark.parametrize("command", [["user", "list"], ["serve", "--port", "0"]])
def test_an_auth_db_that_is_not_sqlite_is_one_line_and_left_alone(
    tmp_path: Path, command: list[str]
) -> None:
    junk = tmp_path / "auth.db"
    content = b"these bytes are not a SQLite database\n" * 200
    junk.write_bytes(content)
    said = _one_error_line_from_a_real_process(
        [*command, "--data-dir", str(tmp_path), "--auth-db", f"sqlite:///{junk}"]
    )
    assert "not a usable SQLite database" in said and str(junk) in said
    assert junk.read_bytes() == content
    assert not (tmp_path / "auth.db-wal").exists()


@pytest.mark.parametrize("command", [["user", "list"], ["user", "create", "--email", "b@x.org"]])
def test_an_auth_db_damaged_past_its_header_is_one_line(tmp_path: Path, command: list[str]) -> None:
    run = Run("--data-dir", str(tmp_path))
    assert run("user", "create", "--email", "a@x.org")[0] == 0
    path = tmp_path / "auth.db"
    assert not (tmp_path / "auth.db-wal").exists() or not (tmp_path / "auth.db-wal").stat().st_size
    with sqlite3.connect(path) as db:
        page_bytes = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) >= 3 * page_bytes
    data[page_bytes : 2 * page_bytes] = b"\xff" * page_bytes  # page 2: a table's b-tree
    path.write_bytes(bytes(data))
    status, out, err = run(*command)
    assert status == EXIT_ERROR and out == "", err
    assert err.count("\n") == 1 and err.startswith("micforge: auth DB unavailable: "), err
    assert "malformed" in err


def test_an_unreachable_postgres_is_one_line(tmp_path: Path) -> None:
    # A port nobody listens on: libpq's error runs over two lines, ours is one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = Run(
        "--data-dir",
        str(tmp_path / "data"),
        "--auth-db",
        f"postgresql://micforge:s3cret-pw@127.0.0.1:{port}/micforge",
    )
    status, out, err = run("user", "list")
    assert status == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith("micforge: auth DB unavailable: "), err
    assert "s3cret-pw" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["user", "list"],
        ["token", "list", "--user", "ada@example.org"],
        ["token", "create", "--user", "ada@example.org", "--name", "ci"],
        ["project", "members", "acme"],
        ["project", "create", "acme", "--owner", "ada@example.org"],
        ["auth", "backup"],
    ],
)
def test_a_command_on_a_mistyped_data_dir_makes_nothing(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "micforge-dta"
    status, out, err = Run("--data-dir", str(typo))(*command)
    assert status == EXIT_ERROR and out == ""
    assert err == (
        f"micforge: no auth DB at {typo / 'auth.db'}: check --data-dir or --auth-db"
        " ('micforge user create' or 'micforge serve' makes a new one)\n"
    )
    assert not typo.exists()


def test_user_create_makes_the_auth_db_the_other_commands_need(tmp_path: Path) -> None:
    run = Run("--data-dir", str(tmp_path / "new"))
    assert run("user", "list")[0] == EXIT_ERROR
    status, _, err = run("user", "create", "--email", "ada@example.org")
    assert (status, err) == (0, "")
    status, out, err = run("user", "list")
    assert (status, err) == (0, "") and "ada@example.org" in out


@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "?no_such_option=1",
            'auth DB URL: invalid dsn: invalid connection option "no_such_option"',
        ),
        ("?timeout=5", "auth DB URL option 'timeout' is not a connection option"),
        # The query's host wins over the URL's, as in libpq: a socket directory here.
        ("?host=/nonexistent-socket-dir", "auth DB unavailable: "),
        ("?dbname=other&port=2", "auth DB unavailable: "),
        ("?dbname=other&database=another&port=2", "auth DB unavailable: "),
    ],
)
def test_a_postgres_url_with_query_options_is_one_line(
    tmp_path: Path, query: str, said: str
) -> None:
    url = f"postgresql://micforge:s3cret-pw@127.0.0.1:1/micforge{query}"
    status, out, err = Run("--data-dir", str(tmp_path), "--auth-db", url)("user", "list")
    assert status == EXIT_ERROR and out == ""
    assert err.count("\n") == 1 and err.startswith(f"micforge: {said}"), err
    assert "s3cret-pw" not in err
    if "host=" in query:
        assert "/nonexistent-socket-dir" in err
    if "port=2" in query:
        assert "port 2 failed" in err


def test_user_create_with_a_bad_token_name_creates_no_user(tmp_path: Path) -> None:
    run = Run("--data-dir", str(tmp_path / "data"))
    status, out, err = run("user", "create", "--email", "tn@example.com", "--token-name", "")
    assert status == EXIT_ERROR and out == "" and "token name" in err
    status, out, _ = run("user", "list")
    assert status == 0 and "tn@example.com" not in out  # both or neither
    status, out, err = run("user", "create", "--email", "tn@example.com", "--token-name", "ci")
    assert (status, err) == (0, "") and out.splitlines()[-1].startswith("mic_")


def test_serve_binds_an_ipv6_host(tmp_path: Path) -> None:
    config = Config.load({"data_dir": tmp_path, "host": "[::1]", "port": 0, "grpc_port": 0}, {})
    try:
        server = Server(config)
    except OSError as exc:  # a machine without IPv6 loopback
        pytest.skip(f"no ::1 here: {exc}")
    try:
        server.start()
        assert server.rest_url == f"http://[::1]:{server.http_port}"
        with urllib.request.urlopen(server.rest_url + "/healthz", timeout=30) as answer:
            assert answer.status == 200
        with grpc.insecure_channel(f"[::1]:{server.grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert f"gRPC listening on [::1]:{server.grpc_port}" in server.banner()
    finally:
        server.stop(grace_s=0)


def _banner(tmp_path: Path, **settings: object) -> str:
    """The banner of a server whose config has ``settings`` (its services are the
    embedded defaults: the banner only reads the config)."""
    config = Config.load({"data_dir": tmp_path, "port": 0, "grpc_port": 0, **settings}, {})
    services = build_services(Config.load({"data_dir": tmp_path}, {}))
    server = Server(config, services=services)
    try:
        return server.banner()
    finally:
        server.stop(grace_s=0)


def test_the_banner_never_prints_a_password_it_asks_you_to_paste(tmp_path: Path) -> None:
    banner = _banner(tmp_path, auth_db_url="postgresql://mic:s3cret@db.example/mic")
    assert "s3cret" not in banner
    command = next(line for line in banner.splitlines() if "user create" in line)
    assert "--auth-db" not in command  # a masked URL could not be pasted
    assert "MICFORGE_AUTH_DB_URL" in banner


def test_a_bad_store_url_is_not_blamed_on_the_port(tmp_path: Path) -> None:
    run = Run("--data-dir", str(tmp_path / "data"))
    status, out, err = run("serve", "--port", "0", "--store", "ftp://x")
    assert status == EXIT_ERROR and out == ""
    assert err.startswith("micforge: unsupported store URL") and "REST" not in err, err


def test_the_banner_names_a_custom_s3_endpoint(tmp_path: Path) -> None:
    banner = _banner(
        tmp_path, store_url="s3://acme-mic/prod", s3_endpoint_url="http://minio.internal:9000"
    )
    assert "store:    s3://acme-mic/prod at http://minio.internal:9000" in banner
