"""An auth DB that stops answering: 503 for every authenticated call, REST and gRPC,
with a message that names nothing of the deployment (host, port), and recovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest

from micforge.api.grpc import build_grpc_server
from micforge.api.grpc.gen.micforge.v1 import content_pb2, content_pb2_grpc
from micforge.api.rest import create_app
from micforge.auth import AuthDB, ScryptParams
from micforge.config import Config
from micforge.service import Services, build_services
from tests.fixtures.tcp_proxy import TcpProxy

UNKNOWN_TOKEN = "mic_" + "a" * 43  # well formed, so the server must ask the auth DB


@pytest.fixture
def behind_proxy(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Services, TcpProxy, str]]:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)
    host_port = f"127.0.0.1:{proxy.port}"
    url = urlunsplit(
        parts._replace(netloc=f"{netloc[0]}@{host_port}" if len(netloc) == 2 else host_port)
    )
    config = Config.load({"data_dir": tmp_path, "cache_dir": "off", "auth_db_url": url}, {})
    auth_db = AuthDB.open(url, scrypt_params=ScryptParams(n=2))
    services = build_services(config, auth_db=auth_db)
    user = services.auth.create_user("ops@example.com")
    _, token = services.auth.create_token(user.id, "t")
    services.auth.create_project("acme", user.id)
    yield services, proxy, token
    proxy.close()
    services.close()
    auth_db.close()


def test_an_auth_db_outage_is_503_without_its_address(
    behind_proxy: tuple[Services, TcpProxy, str],
) -> None:
    services, proxy, token = behind_proxy
    app = create_app(services.config, services=services)
    client = app.test_client()
    grpc_server, port = build_grpc_server(services.config, services)
    grpc_server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    content = content_pb2_grpc.ContentServiceStub(channel)
    try:
        assert (
            client.get("/api/mic/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
        proxy.cut()
        for secret in (token, UNKNOWN_TOKEN):
            answer = client.get("/api/mic/me", headers={"Authorization": f"Bearer {secret}"})
            assert answer.status_code == 503
            assert answer.get_json() == {
                "error": {"code": "unavailable", "message": "auth DB unavailable"}
            }
            with pytest.raises(grpc.RpcError) as failed:
                content.GetHead(
                    content_pb2.GetHeadRequest(project="acme"),
                    metadata=[("authorization", f"Bearer {secret}")],
                    timeout=30,
                )
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert failed.value.details() == "auth DB unavailable"
        proxy.restore()
        answer = client.get("/api/mic/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.get_json()
    finally:
        channel.close()
        grpc_server.stop(None).wait()
