#!/usr/bin/env python3
"""gRPC blob throughput of micforge next to the bare-grpcio ceiling on this machine.

One run: upload (PutBlob) and download (GetBlob) of a 1 MiB and a 256 MiB
blob through a real micforge gRPC server (local store in a temp dir, default
config: zstd level and 256 KiB chunks), and the same bytes through a bare
grpcio echo server on loopback that does nothing but move them: raw bytes
messages (no protobuf, no interceptors), the server discarding uploads and
streaming downloads from memory. That is the ceiling; the target is >= 50% of
it in both directions.

    python benchmarks/bench_grpc.py [--sizes-mib 1 256] [--repeat-small 10]

Data is random (incompressible): the worst case for the zstd pass. Results go
to docs/benchmarks.md ("gRPC") by hand, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from micforge.api.grpc import build_grpc_server  # noqa: E402
from micforge.api.grpc.gen.micforge.v1 import content_pb2, content_pb2_grpc  # noqa: E402
from micforge.config import Config  # noqa: E402
from micforge.service import build_services  # noqa: E402

MiB = 1024 * 1024
CHUNK_BYTES = 256 * 1024  # micforge's default grpc_chunk_bytes; the echo uses the same
_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * MiB),
    ("grpc.max_send_message_length", 8 * MiB),
]


# -- the ceiling: a bare grpcio server that only moves bytes ---------------------------------


def _echo_server() -> tuple[grpc.Server, int, dict[str, bytes]]:
    blobs: dict[str, bytes] = {}  # what Download streams, keyed by the request

    def upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        received = 0
        for chunk in requests:
            received += len(chunk)
        return str(received).encode()

    def download(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        data = memoryview(blobs[request.decode()])
        for start in range(0, len(data), CHUNK_BYTES):
            yield bytes(data[start : start + CHUNK_BYTES])

    handler = grpc.method_handlers_generic_handler(
        "echo.Echo",
        {
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
            "Download": grpc.unary_stream_rpc_method_handler(download),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, blobs


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


def bench_echo(data_by_size: dict[int, list[bytes]]) -> dict[tuple[str, int], float]:
    server, port, blobs = _echo_server()
    results: dict[tuple[str, int], float] = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS) as channel:
        up = channel.stream_unary("/echo.Echo/Upload")
        down = channel.unary_stream("/echo.Echo/Download")
        for size, samples in data_by_size.items():
            for i, data in enumerate(samples):
                blobs[f"{size}-{i}"] = data

            def upload_one(data: bytes) -> None:
                assert int(up(_pieces(data))) == len(data)

            def download_one(data: bytes, key: str) -> None:
                received = sum(len(chunk) for chunk in down(key.encode()))
                assert received == len(data)

            results[("upload", size)] = _throughput(
                [lambda d=d: upload_one(d) for d in samples], size
            )
            results[("download", size)] = _throughput(
                [lambda d=d, k=f"{size}-{i}": download_one(d, k) for i, d in enumerate(samples)],
                size,
            )
    server.stop(None).wait()
    return results


# -- micforge: the real server over real services --------------------------------------------


def bench_micforge(
    data_by_size: dict[int, list[bytes]], data_dir: Path
) -> dict[tuple[str, int], float]:
    config = Config.load({"data_dir": data_dir}, environ={})
    services = build_services(config)
    user = services.auth.create_user("bench@example.com")
    _, token = services.auth.create_token(user.id, "bench")
    services.auth.create_project("bench", user.id)
    server, port = build_grpc_server(config, services)
    server.start()
    metadata = [("authorization", f"Bearer {token}")]
    results: dict[tuple[str, int], float] = {}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS) as channel:
            stub = content_pb2_grpc.ContentServiceStub(channel)

            def put_requests(data: bytes) -> Iterator[content_pb2.PutBlobRequest]:
                # The CLI's way: announce the size, so the server hashes and
                # compresses in one pass as the bytes arrive.
                pieces = list(range(0, len(data), CHUNK_BYTES)) or [0]
                view = memoryview(data)
                for n, start in enumerate(pieces):
                    yield content_pb2.PutBlobRequest(
                        project="bench" if n == 0 else "",
                        expected_size=len(data) if n == 0 else None,
                        data=bytes(view[start : start + CHUNK_BYTES]),
                        last=n == len(pieces) - 1,
                    )

            hashes: dict[int, list[str]] = {}

            def upload_one(data: bytes, size: int) -> None:
                reply = stub.PutBlob(put_requests(data), metadata=metadata)
                assert reply.size == len(data) and reply.created
                hashes.setdefault(size, []).append(reply.hash)

            def download_one(hash_hex: str, size: int) -> None:
                request = content_pb2.GetBlobRequest(project="bench", hash=hash_hex)
                received = sum(len(c.data) for c in stub.GetBlob(request, metadata=metadata))
                assert received == size

            for size, samples in data_by_size.items():
                results[("upload", size)] = _throughput(
                    [lambda d=d, s=size: upload_one(d, s) for d in samples], size
                )
                results[("download", size)] = _throughput(
                    [lambda h=h, s=size: download_one(h, s) for h in hashes[size]], size
                )
    finally:
        server.stop(None).wait()
        services.close()
    return results


def _throughput(runs: list[Callable[[], None]], size_bytes: int) -> float:
    """Median MB/s (10^6 bytes per second) over the runs."""
    rates = []
    for run in runs:
        started = time.perf_counter()
        run()
        rates.append(size_bytes / (time.perf_counter() - started) / 1e6)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 256])
    parser.add_argument(
        "--repeat-small", type=int, default=10, help="samples for blobs under 16 MiB (median)"
    )
    args = parser.parse_args(argv)

    data_by_size: dict[int, list[bytes]] = {}
    for mib in args.sizes_mib:
        repeat = args.repeat_small if mib < 16 else 1
        # Distinct blobs per sample: a repeated upload would meet an existing blob.
        data_by_size[mib * MiB] = [os.urandom(mib * MiB) for _ in range(repeat)]

    ceiling = bench_echo(data_by_size)
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        ours = bench_micforge(data_by_size, Path(tmp))

    print(f"# gRPC blob throughput, MB/s (cpus={os.cpu_count()}, chunk={CHUNK_BYTES // 1024} KiB)")
    print(
        f"| {'direction':<9} | {'size':>8} | {'echo ceiling':>12} | {'micforge':>9} | {'share':>6} |"
    )
    print(f"| {'-' * 9} | {'-' * 8}:| {'-' * 12}:| {'-' * 9}:| {'-' * 6}:|")
    for (direction, size), ceiling_rate in ceiling.items():
        rate = ours[(direction, size)]
        share = rate / ceiling_rate
        label = f"{size // MiB} MiB"
        print(
            f"| {direction:<9} | {label:>8} | {ceiling_rate:>12.0f} | {rate:>9.0f} | {share:>6.0%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
