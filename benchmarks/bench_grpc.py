#!/usr/bin/env python3
"""gRPC blob throughput of micforge next to the bare-grpcio ceiling on this machine.

One run: upload (PutBlob) and download (GetBlob) of a 1 MiB and a 256 MiB
blob through a real micforge gRPC server (local store in a temp dir, default
config: zstd level and 256 KiB chunks), and the same bytes through a bare
grpcio echo server on loopback that does nothing but move them: raw bytes
messages (no protobuf, no interceptors), the server discarding uploads and
streaming downloads from memory. That is the ceiling; the target is >= 50% of
it in both directions.

    python benchmarks/bench_grpc.py [--sizes-mib 1 256] [--repeat-small 10] [--repeat-large 3]

Each sample uploads fresh random bytes (incompressible: the worst case for
the encoding pass) and downloads them again, through every server in turn, so
all see the same background load; the table shows medians. One untimed round
comes first. Untimed, each server deletes what it stored once read, and the
page cache is synced before each upload, so that no server pays for another's
writeback (see _recycle_page_cache).

The process's allocator is set up as `micforge serve` sets up its own
(src/micforge/api/allocator.py: glibc keeps buffers up to 16 MiB on the heap);
the echo, in the same process, gets the same.

A third server, the same micforge over a LocalStore built with ``fsync=False``,
shows what durability costs: the echo keeps nothing, while micforge's upload
is not answered before the blob's file and directory entry are fsynced. It is
for reading the numbers only (a store that does not fsync loses acknowledged
blobs in a crash); the target is measured on the default, durable store.
A fourth, the durable echo, answers an upload only once its bytes are fsynced
into a file the way LocalStore does it (temp file, fsync, rename, directory
fsync): the fastest durable receiver, and the last column is micforge's
uploads as a share of it.

Results go to docs/benchmarks.md ("gRPC") by hand, with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
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

from micforge.api.allocator import tune_allocator  # noqa: E402
from micforge.api.grpc import build_grpc_server  # noqa: E402
from micforge.api.grpc.gen.micforge.v1 import content_pb2, content_pb2_grpc  # noqa: E402
from micforge.config import Config  # noqa: E402
from micforge.service import build_services  # noqa: E402
from micforge.storage import LocalStore, keys  # noqa: E402

MiB = 1024 * 1024
CHUNK_BYTES = 256 * 1024  # micforge's default grpc_chunk_bytes; the echo uses the same
_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * MiB),
    ("grpc.max_send_message_length", 8 * MiB),
]


# -- the ceiling: a bare grpcio server that only moves bytes ---------------------------------


class EchoBench:
    """Raw bytes messages, no protobuf, no interceptors: the server discards
    uploads and streams downloads from memory."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        handler = grpc.method_handlers_generic_handler(
            "echo.Echo",
            {
                "Upload": grpc.stream_unary_rpc_method_handler(self._upload),
                "Download": grpc.unary_stream_rpc_method_handler(self._download),
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_OPTIONS)
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS)
        self._up = self.channel.stream_unary("/echo.Echo/Upload")
        self._down = self.channel.unary_stream("/echo.Echo/Download")

    @staticmethod
    def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return str(sum(len(chunk) for chunk in requests)).encode()

    def _download(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from _pieces(self._blobs.pop(request.decode()))  # each blob is read once

    def upload(self, data: bytes) -> str:
        assert int(self._up(_pieces(data))) == len(data)
        key = str(len(self._blobs))
        self._blobs[key] = data
        return key

    def download(self, key: str) -> int:
        return sum(len(chunk) for chunk in self._down(key.encode()))

    def discard(self, key: str) -> None:
        """Nothing to delete: the echo keeps nothing."""

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()


class DurableEchoBench(EchoBench):
    """The echo, but an upload is answered only once its bytes are on disk the way
    LocalStore makes them durable: written to a temp file, fsynced, renamed into
    place, the directory fsynced. The fastest durable receiver: micforge's uploads
    are compared with it too, so that the cost of durability is not read as
    overhead of the rest of the path. Downloads are the echo's (from memory)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True)
        self._count = itertools.count()
        super().__init__()

    def _upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:  # type: ignore[override]
        name = str(next(self._count))
        temp = self._dir / f".tmp-{name}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        size = 0
        try:
            for chunk in requests:
                os.write(fd, chunk)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self._dir / name)
        dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return str(size).encode()

    def discard(self, key: str) -> None:
        """Delete the uploaded file (untimed; see _recycle_page_cache)."""
        for path in self._dir.iterdir():  # one upload at a time: its file
            path.unlink()


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


# -- micforge: the real server over real services --------------------------------------------


class MicforgeBench:
    """micforge's gRPC server over build_services (local store, SQLite auth) in data_dir."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        config = Config.load({"data_dir": data_dir}, environ={})
        # The default store (LocalStore, fsync on), or the same without fsync (see the
        # docstring); built here so that each blob can be deleted once read.
        self._store = LocalStore(data_dir / "store", fsync=fsync)
        self.services = build_services(config, store=self._store)
        user = self.services.auth.create_user("bench@example.com")
        _, token = self.services.auth.create_token(user.id, "bench")
        self.services.auth.create_project("bench", user.id)
        self.server, port = build_grpc_server(config, self.services)
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_OPTIONS)
        self.stub = content_pb2_grpc.ContentServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")]

    @staticmethod
    def _put_requests(data: bytes) -> Iterator[content_pb2.PutBlobRequest]:
        # The CLI's way: announce the size, so the server hashes and
        # compresses in one pass as the bytes arrive.
        starts = range(0, len(data), CHUNK_BYTES) or range(1)
        view = memoryview(data)
        for n, start in enumerate(starts):
            yield content_pb2.PutBlobRequest(
                project="bench" if n == 0 else "",
                expected_size=len(data) if n == 0 else None,
                data=bytes(view[start : start + CHUNK_BYTES]),
                last=n == len(starts) - 1,
            )

    def upload(self, data: bytes) -> str:
        reply = self.stub.PutBlob(self._put_requests(data), metadata=self.metadata)
        assert reply.size == len(data) and reply.created
        return reply.hash

    def download(self, hash_hex: str) -> int:
        request = content_pb2.GetBlobRequest(project="bench", hash=hash_hex)
        return sum(len(c.data) for c in self.stub.GetBlob(request, metadata=self.metadata))

    def discard(self, hash_hex: str) -> None:
        """Delete a blob once it has been read (untimed; see _recycle_page_cache)."""
        self._store.delete(keys.blob("bench", hash_hex))

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()
        self.services.close()
        self._store.close()


# _recycle_page_cache: every server that writes deletes each blob once it has been
# downloaded. On this VM (virtio-balloon with free page reporting) memory left
# free for a couple of seconds goes back to the host, and the next page-cache
# write into it pays a host page fault per page: the first run after the machine
# sat idle measured every disk-writing server at about half speed (256 MiB
# uploads at 24-37% of the echo, against 51-62% in the runs right after). Freed
# at once, a blob's pages are reused by the next sample's writes instead. An
# unsynced blob deleted before writeback is also never written at all, rather
# than landing on whichever server fsyncs next.


def _timed_mb_per_s(size_bytes: int, run: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return size_bytes / (time.perf_counter() - started) / 1e6, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--repeat-small", type=int, default=10, help="samples under 16 MiB")
    parser.add_argument("--repeat-large", type=int, default=3, help="samples from 16 MiB")
    args = parser.parse_args(argv)

    print(f"# {tune_allocator()}")  # as `micforge serve` does for its process
    # (direction, size) -> {"echo": [MB/s...], "micforge": [...], "no fsync": [...], ...}
    rates: dict[tuple[str, int], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp, contextlib.ExitStack() as open_:
        # Each server is closed on the way out, also when a later one fails to start.
        echo = open_.enter_context(contextlib.closing(EchoBench()))
        durable_echo = open_.enter_context(
            contextlib.closing(DurableEchoBench(Path(tmp) / "durable-echo"))
        )
        ours = open_.enter_context(contextlib.closing(MicforgeBench(Path(tmp) / "durable")))
        unsynced = open_.enter_context(
            contextlib.closing(MicforgeBench(Path(tmp) / "no-fsync", fsync=False))
        )
        for mib in args.sizes_mib:
            size = mib * MiB
            repeat = args.repeat_small if mib < 16 else args.repeat_large
            # One untimed round first, for every server alike (first-touch costs:
            # fresh memory, the store's directories; see also _recycle_page_cache).
            for sample in range(-1, repeat):
                # Fresh bytes per sample (a repeated upload would meet an
                # existing blob); echo and micforge alternate so that both
                # see the same background load (this machine is shared).
                data = os.urandom(size)
                for name, bench in (
                    ("echo", echo),
                    ("micforge", ours),
                    ("no fsync", unsynced),
                    ("durable echo", durable_echo),
                ):
                    # Each server starts with nothing of the one before still on its way
                    # to disk (writeback, and the discards of deleted files on a `discard`
                    # mount), which otherwise lands on whichever server fsyncs next: once
                    # per sample, the durable echo paid for micforge's deleted blob.
                    os.sync()
                    up_rate, key = _timed_mb_per_s(size, lambda b=bench, d=data: b.upload(d))
                    down_rate, received = _timed_mb_per_s(
                        size, lambda b=bench, k=key: b.download(k)
                    )
                    assert received == size
                    bench.discard(key)
                    if sample < 0:
                        continue
                    rates.setdefault(("upload", size), {}).setdefault(name, []).append(up_rate)
                    rates.setdefault(("download", size), {}).setdefault(name, []).append(down_rate)

    print(
        f"# gRPC blob throughput, median MB/s (cpus={os.cpu_count()}, chunk={CHUNK_BYTES // 1024} KiB)"
    )
    print(
        f"| {'direction':<9} | {'size':>8} | {'samples':>7} | {'echo ceiling':>12} | {'micforge':>9} "
        f"| {'share':>6} | {'no fsync':>9} | {'share':>6} | {'durable echo':>12} | {'share':>6} |"
    )
    print(
        f"| {'-' * 9} | {'-' * 8}:| {'-' * 7}:| {'-' * 12}:| {'-' * 9}:| {'-' * 6}:"
        f"| {'-' * 9}:| {'-' * 6}:| {'-' * 12}:| {'-' * 6}:|"
    )
    for (direction, size), by_name in sorted(
        rates.items(), key=lambda kv: (kv[0][1], kv[0][0] != "upload")
    ):
        ceiling = statistics.median(by_name["echo"])
        rate = statistics.median(by_name["micforge"])
        unsynced_rate = statistics.median(by_name["no fsync"])
        label = f"{size // MiB} MiB"
        samples = len(by_name["echo"])
        durable = "-"
        durable_share = "-"
        if direction == "upload":  # the durable echo downloads from memory, as the echo
            durable_rate = statistics.median(by_name["durable echo"])
            durable, durable_share = f"{durable_rate:.0f}", f"{rate / durable_rate:.0%}"
        print(
            f"| {direction:<9} | {label:>8} | {samples:>7} | {ceiling:>12.0f} | {rate:>9.0f} "
            f"| {rate / ceiling:>6.0%} | {unsynced_rate:>9.0f} | {unsynced_rate / ceiling:>6.0%} "
            f"| {durable:>12} | {durable_share:>6} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
