"""`micforge serve` as a process: banner, health, metrics, graceful shutdown on SIGTERM."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from urllib.parse import urlsplit

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.helpers import create_project


def test_banner_says_where_it_listens_and_how_to_create_the_first_user(micforge_server):
    text = "\n".join(micforge_server.banner)
    assert micforge_server.url in text
    assert str(micforge_server.data_dir.resolve()) in text
    assert (
        f"micforge user create --email you@example.com --data-dir {micforge_server.data_dir.resolve()}"
        in text
    )
    assert micforge_server.grpc_port is not None


def test_healthz_and_metrics_need_no_token(micforge_server):
    health = requests.get(micforge_server.url + "/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    api = micforge_server.client(micforge_server.create_user().token)
    create_project(api)
    counted = 'micforge_http_requests_total{method="POST",route="/api/mic/projects",status="201"}'
    # A request is counted when its response has been sent, which the client can see
    # first: the next scrape may come a moment early, so allow it a few.
    deadline = time.monotonic() + 10
    while True:
        metrics = requests.get(micforge_server.url + "/metrics", timeout=30)
        assert metrics.status_code == 200
        assert metrics.headers["Content-Type"].startswith("text/plain")
        text = metrics.text
        if counted in text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted in text
    assert (
        'micforge_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/mic/me"}'
        in text
    )
    for family in (
        "micforge_landings_total",
        "micforge_conflicts_total",
        "micforge_cas_retries_total",
        "micforge_cache_hit_ratio",
    ):
        assert family in text, family


def test_request_id_is_returned_and_a_tame_client_id_is_kept(micforge_server):
    fresh = requests.get(micforge_server.url + "/healthz", timeout=30).headers["X-Request-Id"]
    assert len(fresh) == 32
    kept = requests.get(
        micforge_server.url + "/healthz", headers={"X-Request-Id": "trace-42"}, timeout=30
    )
    assert kept.headers["X-Request-Id"] == "trace-42"
    wild = requests.get(
        micforge_server.url + "/healthz", headers={"X-Request-Id": "a b\tc"}, timeout=30
    )
    assert wild.headers["X-Request-Id"] != "a b\tc"


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish_then_exits(micforge_server_factory):
    server = micforge_server_factory()
    api = server.client(server.create_user().token)
    project = create_project(api)
    data = os.urandom(16 * 1024 * 1024)
    blob = api.post(f"/api/mic/projects/{project}/blobs", data=data).json()["hash"]

    # In flight 1: a download read slowly, so most of it is still unsent at SIGTERM.
    download = api.get(f"/api/mic/projects/{project}/blobs/{blob}", stream=True)
    assert download.status_code == 200
    first = download.raw.read(1024 * 1024)

    # In flight 2: an upload whose body is only half sent at SIGTERM.
    parts = urlsplit(server.url)
    upload_body = os.urandom(512 * 1024)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = (
        f"POST /api/mic/projects/{project}/blobs HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {api.session.headers['Authorization'].split()[1]}\r\n"
        f"Content-Length: {len(upload_body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + upload_body[: len(upload_body) // 2])
    time.sleep(0.3)

    server.process.send_signal(signal.SIGTERM)
    # New connections are refused while the old ones drain (polled: the signal is
    # handled asynchronously, and this machine may be busy).
    deadline_s = time.monotonic() + 20
    while time.monotonic() < deadline_s:
        try:
            requests.get(server.url + "/healthz", timeout=5)
        except requests.ConnectionError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the server still accepted connections 20 s after SIGTERM")

    sock.sendall(upload_body[len(upload_body) // 2 :])
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 201"), reply[:200]

    rest = b""
    while chunk := download.raw.read(1024 * 1024):
        rest += chunk
        time.sleep(0.01)
    assert hashlib.sha256(first + rest).digest() == hashlib.sha256(data).digest()
    assert server.process.wait(30) == 0


def test_sigterm_on_an_idle_server_exits_promptly(micforge_server_factory):
    server = micforge_server_factory()
    keepalive = requests.Session()  # an idle keep-alive connection must not hold shutdown up
    assert keepalive.get(server.url + "/healthz", timeout=30).status_code == 200
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0, server.log_text()[-3000:]


def _poll(check, timeout_s: float = 20) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline_s, "timed out"
        time.sleep(0.05)


def test_a_drain_reports_unhealthy_while_still_serving_then_exits(micforge_server_factory):
    server = micforge_server_factory(MICFORGE_SHUTDOWN_DRAIN_MS="5000")
    api = server.client(server.create_user().token)
    project = create_project(api)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    health = health_pb2_grpc.HealthStub(channel)
    check = health_pb2.HealthCheckRequest(service="")
    assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    signalled_s = time.monotonic()
    server.process.send_signal(signal.SIGTERM)

    def unhealthy() -> bool:
        return requests.get(server.url + "/healthz", timeout=10).status_code == 503

    _poll(unhealthy)
    during = requests.get(server.url + "/healthz", timeout=10).json()
    assert during["error"]["message"] == "shutting down"
    assert during["error"]["checks"]["server"] == "shutting_down"
    # Both ports still take calls, health and real ones alike, on new connections too.
    fresh = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    for stub in (health, health_pb2_grpc.HealthStub(fresh)):
        answer = stub.Check(check, timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert api.get(f"/api/mic/projects/{project}").status_code == 200
    # (Had the drain ended before these, they would have failed: the ports close then.)
    # Then the ports close and the process exits, once the drain is over.
    assert server.process.wait(30) == 0, server.log_text()[-3000:]
    assert time.monotonic() - signalled_s >= 5
    fresh.close()
    channel.close()


def test_a_second_signal_ends_a_drain(micforge_server_factory):
    server = micforge_server_factory(MICFORGE_SHUTDOWN_DRAIN_MS="600000")
    server.process.send_signal(signal.SIGTERM)
    _poll(lambda: requests.get(server.url + "/healthz", timeout=10).status_code == 503)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0, server.log_text()[-3000:]
    assert "drain ended early by a second signal" in server.log_text()
