"""The gRPC API: servicers over the service layer, interceptors, generated code (gen/).

See docs/grpc.md. ``build_grpc_server(config, services, bind)`` is the entry point.
"""

from micforge.api.grpc.server import build_grpc_server

__all__ = ["build_grpc_server"]
