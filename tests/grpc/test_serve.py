"""`micforge serve` serves gRPC next to REST: one real process, both transports, same data."""

from __future__ import annotations

import random
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from micforge.api.grpc.gen.micforge.v1 import content_pb2_grpc
from micforge.core import blob_hash
from tests.grpc.conftest import put_requests


def test_micforge_serve_answers_grpc_with_the_same_data_as_rest(micforge_server) -> None:
    assert micforge_server.grpc_port is not None
    user = micforge_server.create_user()
    api = micforge_server.client(user.token)
    project = f"grpc-{uuid.uuid4().hex[:10]}"
    assert api.post("/api/mic/projects", json={"id": project}).status_code == 201
    metadata = [("authorization", f"Bearer {user.token}")]
    data = random.Random(7).randbytes(300_000)

    with grpc.insecure_channel(f"127.0.0.1:{micforge_server.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        content = content_pb2_grpc.ContentServiceStub(channel)
        put = content.PutBlob(
            put_requests(data, piece_bytes=64 * 1024, project=project),
            metadata=metadata,
            timeout=30,
        )
    assert put.hash == blob_hash(data).hex()

    got = api.get(f"/api/mic/projects/{project}/blobs/{put.hash}")
    assert got.status_code == 200
    assert got.content == data
