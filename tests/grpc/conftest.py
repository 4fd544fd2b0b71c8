"""A real gRPC server on loopback per test, over real services (local store, SQLite auth DB).

Three users: `owner` (owner of project "p1"), `reader` (read role on "p1")
and `outsider` (no role). Stubs take the caller's token as metadata.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from micforge.api.grpc import build_grpc_server
from micforge.api.grpc.gen.micforge.v1 import (
    content_pb2,
    content_pb2_grpc,
    sessions_pb2_grpc,
)
from micforge.auth import Role, User
from micforge.config import Config
from micforge.service import Services, build_services
from micforge.storage import keys

PROJECT = "p1"
# Small enough that "many chunks" stays cheap, unlike the 256 KiB default.
CHUNK_BYTES = 16 * 1024
BLOB_MAX_BYTES = 1_000_000


@dataclass
class GrpcEnv:
    config: Config
    services: Services
    server: grpc.Server
    port: int
    channel: grpc.Channel
    sessions: sessions_pb2_grpc.SessionServiceStub
    content: content_pb2_grpc.ContentServiceStub
    owner: User
    reader: User
    outsider: User
    tokens: dict[str, str]  # user name -> secret

    def auth(self, who: str = "owner") -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.tokens[who]}")]

    def put_blob(
        self,
        data: bytes,
        *,
        who: str = "owner",
        piece_bytes: int = CHUNK_BYTES,
        project: str = PROJECT,
        **header: Any,
    ) -> content_pb2.PutBlobResponse:
        return self.content.PutBlob(
            put_requests(data, piece_bytes=piece_bytes, project=project, **header),
            metadata=self.auth(who),
        )

    def get_blob(self, hash_hex: str, *, who: str = "owner") -> list[content_pb2.BlobChunk]:
        request = content_pb2.GetBlobRequest(project=PROJECT, hash=hash_hex)
        return list(self.content.GetBlob(request, metadata=self.auth(who)))

    def stored_blob_keys(self, project: str = PROJECT) -> list[str]:
        """Blob objects in the store itself (below the cache), straight from the backend."""
        prefix = keys.blob(project, "0" * 64).rsplit("/", 2)[0] + "/"
        return self.services.store.list(prefix)

    def rpc_failures(self, method: str) -> float:
        """Calls of ``method`` the server has finished with any status but OK."""
        return sum(
            sample.value
            for metric in self.services.metrics.registry.collect()
            if metric.name == "micforge_grpc_requests"
            for sample in metric.samples
            if sample.name.endswith("_total")
            and sample.labels["method"] == method
            and sample.labels["code"] != "OK"
        )

    def rpc_count(self, method: str, code: str) -> float:
        value = self.services.metrics.registry.get_sample_value(
            "micforge_grpc_requests_total", {"method": method, "code": code}
        )
        return value or 0.0


def put_requests(
    data: bytes, *, piece_bytes: int = CHUNK_BYTES, project: str = PROJECT, **header: Any
) -> Iterator[content_pb2.PutBlobRequest]:
    """The PutBlob stream of ``data``: a header message with the first piece, then the rest.

    The final message is marked ``last`` unless ``last=False`` (a truncated upload).
    """
    mark_last = header.pop("last", True)
    starts = range(piece_bytes, len(data), piece_bytes)
    yield content_pb2.PutBlobRequest(
        project=project, data=data[:piece_bytes], last=mark_last and not starts, **header
    )
    for start in starts:
        yield content_pb2.PutBlobRequest(
            data=data[start : start + piece_bytes], last=mark_last and start == starts[-1]
        )


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll until ``condition()`` holds (server-side work finishes after the client returns)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def make_grpc_env(tmp_path: Path) -> Iterator[Callable[..., GrpcEnv]]:
    """Build services + a started gRPC server + a channel; config overrides as keywords."""
    built: list[GrpcEnv] = []

    def make(**overrides: Any) -> GrpcEnv:
        settings = {
            "data_dir": tmp_path / f"env{len(built)}",
            "grpc_chunk_bytes": CHUNK_BYTES,
            "blob_max_bytes": BLOB_MAX_BYTES,
            "threads": 8,
            "cache_dir": "off",
        }
        settings.update(overrides)
        config = Config.load(settings, environ={})
        services = build_services(config)
        server, port = build_grpc_server(config, services)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        owner = services.auth.create_user("owner@example.com")
        reader = services.auth.create_user("reader@example.com")
        outsider = services.auth.create_user("outsider@example.com")
        services.auth.create_project(PROJECT, owner.id)
        services.auth.set_role(PROJECT, reader.id, Role.READ)
        tokens = {
            name: services.auth.create_token(user.id, "test")[1]
            for name, user in (("owner", owner), ("reader", reader), ("outsider", outsider))
        }
        env = GrpcEnv(
            config=config,
            services=services,
            server=server,
            port=port,
            channel=channel,
            sessions=sessions_pb2_grpc.SessionServiceStub(channel),
            content=content_pb2_grpc.ContentServiceStub(channel),
            owner=owner,
            reader=reader,
            outsider=outsider,
            tokens=tokens,
        )
        built.append(env)
        return env

    yield make
    for env in built:
        env.channel.close()
        env.server.stop(None).wait()
        env.services.close()


@pytest.fixture
def env(make_grpc_env: Callable[..., GrpcEnv]) -> GrpcEnv:
    return make_grpc_env()


def trailers(error: grpc.RpcError) -> dict[str, str]:
    return dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
