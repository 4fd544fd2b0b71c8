"""`micforge serve` when a port is taken: one line on stderr, exit 1, nothing left open."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from micforge.api.serve import Server
from micforge.config import Config
from micforge.service import build_services
from tests.cli.test_micforge_cli import _subprocess_env


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket of this process for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _serve(data_dir: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`micforge serve` on 127.0.0.1 as a real process that is expected to fail fast;
    returns it and its own ("micforge: ") stderr lines."""
    result = subprocess.run(
        [sys.executable, "-m", "micforge.cli.micforge", "serve", "--data-dir", str(data_dir)]
        + ["--host", "127.0.0.1", *flags],
        env=_subprocess_env({}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    return result, [line for line in result.stderr.splitlines() if line.startswith("micforge:")]


def test_a_taken_grpc_port_is_one_line_and_exit_1(tmp_path: Path, taken_port: int) -> None:
    started_s = time.monotonic()
    result, ours = _serve(tmp_path, "--port", "0", "--grpc-port", str(taken_port))
    assert len(ours) == 1, result.stderr
    assert "gRPC" in ours[0] and f"127.0.0.1:{taken_port}" in ours[0]
    assert "Traceback" not in result.stderr
    assert "add_port" not in result.stderr  # grpc's core did not print its own line too
    assert "still running" not in result.stderr  # waitress's workers were joined, not abandoned
    assert "listening" not in result.stdout  # no banner for a server that never ran
    assert time.monotonic() - started_s < 30


def test_a_failed_start_closes_the_rest_socket_and_every_thread(
    tmp_path: Path, taken_port: int
) -> None:
    config = Config.load({"data_dir": str(tmp_path), "port": 0, "grpc_port": taken_port}, {})
    threads_before = set(threading.enumerate())
    server = Server(config)
    rest_port = server.http_port

    with pytest.raises(OSError, match=f"127.0.0.1:{taken_port}"):
        server.start()

    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.bind(("127.0.0.1", rest_port))  # REST's listening socket is closed


def _open_files_under(directory: Path) -> list[str]:
    """Paths under ``directory`` that this process holds open (Linux /proc)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


def test_a_taken_rest_port_closes_the_services_it_was_given(
    tmp_path: Path, taken_port: int
) -> None:
    config = Config.load({"data_dir": str(tmp_path), "port": taken_port, "grpc_port": 0}, {})
    services = build_services(config)
    services.auth.create_user("someone@example.com")  # the auth DB is open now
    assert _open_files_under(tmp_path)
    threads_before = set(threading.enumerate())

    with pytest.raises(OSError):
        Server(config, services=services)

    assert _open_files_under(tmp_path) == []  # the auth DB (and the store) are closed
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == []


def test_a_taken_rest_port_is_one_line_and_exit_1(tmp_path: Path, taken_port: int) -> None:
    result, ours = _serve(tmp_path, "--port", str(taken_port), "--grpc-port", "0")
    assert len(ours) == 1 and f"127.0.0.1:{taken_port}" in ours[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_host_with_two_addresses_serves_and_stops_on_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like "localhost" on a dual-stack machine: waitress then listens on each address
    # (its MultiSocketServer), and the server must configure and stop all of them.
    real_getaddrinfo = socket.getaddrinfo

    def dual(host: object, *args: object, **kwargs: object) -> list:
        if host == "dual.test":
            v4 = real_getaddrinfo("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
            v6 = real_getaddrinfo("::1", *args, **kwargs)  # type: ignore[arg-type]
            return v4 + v6
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", dual)
    with socket.socket() as probe:  # a free port, for both families
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config.load({"data_dir": str(tmp_path), "host": "dual.test", "port": port}, {})
    threads_before = set(threading.enumerate())
    try:
        server = Server(config)
    except OSError as exc:
        pytest.skip(f"no ::1 here, or the port was taken meanwhile: {exc}")
    assert len(server._listeners) == 2
    server._http_thread.start()  # REST only: grpc resolves names itself, not via Python
    try:
        for host in ("127.0.0.1", "[::1]"):
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=30) as answer:
                assert answer.status == 200
    finally:
        server.stop(grace_s=5)
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as again:
            # With SO_REUSEADDR, Linux refuses the bind only while a socket still
            # listens there (the served connections may linger in TIME_WAIT).
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind((address, port))  # both listening sockets are closed
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == []
