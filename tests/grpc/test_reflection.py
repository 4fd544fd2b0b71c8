"""Server reflection as clients use it: under v1alpha and v1, services, files and
methods found by name, and the v1 service described like any other."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2

from micforge.api.grpc.reflection import V1_FILE_NAME, V1_SERVICE_NAME
from tests.grpc.conftest import GrpcEnv

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
OURS = {"micforge.v1.SessionService", "micforge.v1.ContentService", "grpc.health.v1.Health"}


def _ask(env: GrpcEnv, service: str, **request: str) -> reflection_pb2.ServerReflectionResponse:
    """One reflection request on ``service`` (the v1alpha messages: same wire format)."""
    call = env.channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (reply,) = list(call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
    return reply


def _pool_of(reply: reflection_pb2.ServerReflectionResponse) -> descriptor_pool.DescriptorPool:
    """A pool of the files in a file_descriptor_response, as a client builds one."""
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    assert files, reply
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    while len(added) < len(files):  # dependencies first, whatever the order sent
        before = len(added)
        for proto in files:
            if proto.name not in added and set(proto.dependency) <= added:
                pool.Add(proto)
                added.add(proto.name)
        assert len(added) > before, f"a dependency was not sent: {[f.name for f in files]}"
    return pool


@pytest.mark.parametrize("service", [V1ALPHA, V1_SERVICE_NAME])
def test_both_names_list_every_service(env: GrpcEnv, service: str) -> None:
    reply = _ask(env, service, list_services="")
    names = {s.name for s in reply.list_services_response.service}
    assert names == OURS | {V1ALPHA, V1_SERVICE_NAME}


@pytest.mark.parametrize("service", [V1ALPHA, V1_SERVICE_NAME])
@pytest.mark.parametrize(
    "symbol",
    [
        "micforge.v1.ContentService",
        "micforge.v1.ContentService.GetBlob",  # a method: what `grpcurl describe` sends
        "micforge.v1.PutBlobRequest",
    ],
)
def test_a_symbol_gives_the_file_that_defines_it(env: GrpcEnv, service: str, symbol: str) -> None:
    pool = _pool_of(_ask(env, service, file_containing_symbol=symbol))
    get_blob = pool.FindServiceByName("micforge.v1.ContentService").methods_by_name["GetBlob"]
    assert get_blob.input_type.full_name == "micforge.v1.GetBlobRequest"
    assert get_blob.server_streaming and not get_blob.client_streaming


@pytest.mark.parametrize("service", [V1ALPHA, V1_SERVICE_NAME])
@pytest.mark.parametrize(
    "symbol", ["micforge.v1.ContentService.NoSuchMethod", "micforge.v1.Nothing", "GetBlob", ""]
)
def test_an_unknown_symbol_is_not_found(env: GrpcEnv, service: str, symbol: str) -> None:
    reply = _ask(env, service, file_containing_symbol=symbol)
    assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.original_request.file_containing_symbol == symbol


def test_the_v1_service_is_described_and_is_v1alpha_renamed(env: GrpcEnv) -> None:
    by_symbol = _ask(env, V1_SERVICE_NAME, file_containing_symbol=V1_SERVICE_NAME)
    by_name = _ask(env, V1ALPHA, file_by_filename=V1_FILE_NAME)
    assert (
        by_symbol.file_descriptor_response.file_descriptor_proto
        == by_name.file_descriptor_response.file_descriptor_proto
    )
    v1 = _pool_of(by_symbol)
    method = v1.FindServiceByName(V1_SERVICE_NAME).methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.output_type.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    assert method.client_streaming and method.server_streaming
    # Field for field the v1alpha messages, under the new package.
    v1alpha = reflection_pb2.DESCRIPTOR
    assert set(v1.FindFileByName(V1_FILE_NAME).message_types_by_name) == set(
        v1alpha.message_types_by_name
    )
    for name, old in v1alpha.message_types_by_name.items():
        new = v1.FindMessageTypeByName(f"grpc.reflection.v1.{name}")
        assert [
            (f.name, f.number, f.type, f.containing_oneof and f.containing_oneof.name)
            for f in new.fields
        ] == [
            (f.name, f.number, f.type, f.containing_oneof and f.containing_oneof.name)
            for f in old.fields
        ]
        for new_field, old_field in zip(new.fields, old.fields, strict=True):
            if old_field.message_type is not None:
                assert new_field.message_type.full_name == old_field.message_type.full_name.replace(
                    "grpc.reflection.v1alpha.", "grpc.reflection.v1."
                )


def test_a_client_built_from_the_v1_description_talks_v1(env: GrpcEnv) -> None:
    """Messages of the described v1 types, not v1alpha's, make a working v1 call."""
    v1 = _pool_of(_ask(env, V1_SERVICE_NAME, file_containing_symbol=V1_SERVICE_NAME))
    request_type = message_factory.GetMessageClass(
        v1.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest")
    )
    response_type = message_factory.GetMessageClass(
        v1.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
    )
    call = env.channel.stream_stream(
        f"/{V1_SERVICE_NAME}/ServerReflectionInfo",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString,
    )
    requests = [
        request_type(list_services=""),
        request_type(file_containing_symbol="micforge.v1.SessionService.LandSession"),
    ]
    listed, described = list(call(iter(requests), timeout=10))
    assert {s.name for s in listed.list_services_response.service} >= OURS
    assert described.original_request.file_containing_symbol.endswith("LandSession")
    assert described.file_descriptor_response.file_descriptor_proto


def test_the_default_pool_is_left_alone(env: GrpcEnv) -> None:
    # A later module defining grpc/reflection/v1/reflection.proto must still import.
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindFileByName(V1_FILE_NAME)
