"""Building the gRPC server: servicers, interceptors, health and reflection."""

from __future__ import annotations

import errno
import socket
from concurrent import futures
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2_grpc

from micforge.api.grpc.gen.micforge.v1 import (
    content_pb2,
    content_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
)
from micforge.api.grpc.interceptors import RpcMetrics, default_interceptors
from micforge.api.grpc.lifecycle import FollowingHealth, GrpcServer, StallGuard
from micforge.api.grpc.reflection import enable_reflection
from micforge.api.grpc.servicers import ContentServicer, SessionServicer

if TYPE_CHECKING:
    from micforge.config import Config
    from micforge.service import Services

# Room for a message's framing and non-data fields on top of its payload.
_MESSAGE_OVERHEAD_BYTES = 64 * 1024

_HEALTH_SERVICE_NAME = "grpc.health.v1.Health"
SERVICE_NAMES = (
    sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    content_pb2.DESCRIPTOR.services_by_name["ContentService"].full_name,
)


def build_grpc_server(
    config: Config, services: Services, bind: str = "127.0.0.1:0"
) -> tuple[GrpcServer, int]:
    """A gRPC server for ``services`` bound to ``bind``, not yet started: returns (server, port).

    The caller starts it (``server.start()``) and stops it (``server.stop(grace)``),
    which also starts and stops its housekeeping (health, stalled streams:
    api/grpc/lifecycle.py). ``bind`` with port 0 picks a free port, which is returned.
    """
    metrics = RpcMetrics(services.metrics.registry)
    guard = (
        StallGuard(
            config.grpc_stall_timeout_ms / 1000,
            on_stall=lambda method: metrics.stalled.labels(method=method).inc(),
        )
        if config.grpc_stall_timeout_ms > 0
        else None
    )
    # The largest message we accept: a blob chunk a client chose, or a unary
    # request as large as REST accepts as a JSON body (a batch of operations).
    receive_max_bytes = (
        max(config.grpc_chunk_bytes, config.limits.json_body_max_bytes) + _MESSAGE_OVERHEAD_BYTES
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="micforge-grpc"),
        interceptors=default_interceptors(
            metrics, services.auth.authenticate, services.rate_limiter, guard
        ),
        options=[
            ("grpc.max_receive_message_length", receive_max_bytes),
            # Sessions and trees can be large; the client's own receive limit still applies.
            ("grpc.max_send_message_length", -1),
            # grpc enables SO_REUSEPORT by default on Linux, which lets a second
            # `micforge serve` bind the same port silently and steal half the calls.
            ("grpc.so_reuseport", 0),
        ],
    )
    sessions_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(services), server)
    content_pb2_grpc.add_ContentServiceServicer_to_server(
        ContentServicer(services, metrics, config.grpc_chunk_bytes), server
    )

    health_servicer = FollowingHealth(services.health, ("", *SERVICE_NAMES))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection((*SERVICE_NAMES, _HEALTH_SERVICE_NAME), server)

    _check_port_free(bind)
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as error:  # grpc's way of saying bind() failed
        raise OSError(
            f"gRPC server could not bind {bind} (in use, or not a local address)"
        ) from error
    if port == 0:  # older grpc releases return 0 instead of raising
        raise OSError(f"gRPC server could not bind {bind}")
    return GrpcServer(server, health_servicer, guard, config.grpc_health_poll_ms / 1000), port


def _check_port_free(bind: str) -> None:
    """OSError if ``bind`` (``host:port``, IPv6 in brackets) is taken, before grpc tries:
    grpc's core would print its own error line for it, next to ours.

    A probe socket binds each address the host resolves to, as grpc will (with
    SO_REUSEADDR, without SO_REUSEPORT); only "in use" is decided here, anything
    else is left for grpc to report. Port 0 (any free port) is never taken."""
    host, _, port_text = bind.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or int(port_text) == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host or None, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return  # an unknown host: grpc says so
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise OSError(f"gRPC server could not bind {bind}: address in use") from None
