"""gRPC server reflection under both of its names, with methods found as symbols.

grpcio-reflection (Python) serves only ``grpc.reflection.v1alpha``. The stable
name is ``grpc.reflection.v1``: the same protocol, message for message and
field for field, under another package. Clients that ask for ``v1`` first fall
back on ``v1alpha`` when told UNIMPLEMENTED (grpcurl does); a ``v1``-only
client would find no reflection at all. So the one servicer answers on both
names, its ``v1alpha`` messages doing for ``v1`` on the wire.

For its own ``v1`` service to be described (``describe
grpc.reflection.v1.ServerReflection``), the servicer looks symbols up in a
small pool of its own, holding the ``v1`` file (made from the ``v1alpha`` one
by renaming its package), before the default pool, which holds micforge's
services. Nothing is added to the default pool: a later protobuf module of the
same file name (a grpcio-reflection that ships ``v1``) must still import.

grpcio-reflection also looks a symbol up only as a type, a service, a field, a
oneof or an enum value, so a method's full name (``micforge.v1.ContentService.GetBlob``,
which grpcurl's ``describe`` sends) was not found: here a method's symbol is
its service's file, as in the other gRPC languages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME  # grpc.reflection.v1alpha.ServerReflection
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
_METHOD = "ServerReflectionInfo"


def v1_file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The ``v1`` reflection file: grpcio-reflection's ``v1alpha`` file under the
    ``v1`` package (every type reference renamed with it), without the
    ``v1alpha`` file's options (its Java and Go package names, its deprecation)."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old_prefix, new_prefix = f".{proto.package}.", f".{V1_PACKAGE}."
    proto.name = V1_FILE_NAME
    proto.package = V1_PACKAGE
    proto.ClearField("options")

    def renamed(type_name: str) -> str:
        if type_name.startswith(old_prefix):
            return new_prefix + type_name[len(old_prefix) :]
        return type_name

    def rename_fields(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for message in messages:
            for field in message.field:
                if field.HasField("type_name"):  # set only where there was one
                    field.type_name = renamed(field.type_name)
            rename_fields(message.nested_type)

    rename_fields(proto.message_type)
    for service in proto.service:
        for method in service.method:
            method.input_type = renamed(method.input_type)
            method.output_type = renamed(method.output_type)
    return proto


class _Pools:
    """The lookups the reflection servicer makes, tried in each pool in turn."""

    def __init__(self, *pools: descriptor_pool.DescriptorPool) -> None:
        self._pools = pools

    def _first(self, lookup: str, name: str) -> Any:
        for pool in self._pools:
            try:
                return getattr(pool, lookup)(name)
            except KeyError:
                continue
        raise KeyError(name)

    def FindFileByName(self, name: str) -> descriptor.FileDescriptor:  # noqa: N802 - pool API
        return self._first("FindFileByName", name)

    def FindFileContainingSymbol(self, name: str) -> descriptor.FileDescriptor:  # noqa: N802
        return self._first("FindFileContainingSymbol", name)

    def FindMessageTypeByName(self, name: str) -> descriptor.Descriptor:  # noqa: N802
        return self._first("FindMessageTypeByName", name)

    def FindServiceByName(self, name: str) -> descriptor.ServiceDescriptor:  # noqa: N802
        return self._first("FindServiceByName", name)

    # Extensions live in the pool of the message they extend.
    def FindExtensionByNumber(self, message: descriptor.Descriptor, number: int) -> Any:  # noqa: N802
        return message.file.pool.FindExtensionByNumber(message, number)

    def FindAllExtensions(self, message: descriptor.Descriptor) -> Any:  # noqa: N802
        return message.file.pool.FindAllExtensions(message)


class ReflectionServicer(reflection.ReflectionServicer):
    """grpcio-reflection's servicer over micforge's pools, finding methods as symbols."""

    def __init__(self, service_names: Iterable[str]) -> None:
        v1_pool = descriptor_pool.DescriptorPool()
        v1_pool.AddSerializedFile(v1_file_descriptor_proto().SerializeToString())
        self._pools = _Pools(v1_pool, descriptor_pool.Default())
        super().__init__(service_names, pool=self._pools)

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        service, _, method = fully_qualified_name.rpartition(".")
        if service and self._has_method(service, method):
            fully_qualified_name = service  # the file that defines the method
        return super()._file_containing_symbol(request, fully_qualified_name)

    def _has_method(self, service: str, method: str) -> bool:
        try:
            return method in self._pools.FindServiceByName(service).methods_by_name
        except KeyError:
            return False


def enable_reflection(service_names: Iterable[str], server: grpc.Server) -> None:
    """Serve reflection on ``server`` as ``v1alpha`` and ``v1``, listing
    ``service_names`` and both reflection services."""
    names = (*service_names, V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
    servicer = ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                V1_SERVICE_NAME,
                {
                    _METHOD: grpc.stream_stream_rpc_method_handler(
                        servicer.ServerReflectionInfo,
                        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                    )
                },
            ),
        )
    )
