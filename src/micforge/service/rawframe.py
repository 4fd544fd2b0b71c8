"""Zstandard frames of raw blocks: how incompressible content is stored.

A zstd frame may carry its content as *raw* blocks, stored as they are behind a
3-byte block header (RFC 8878, 3.1.1). Every zstd decoder reads such a frame,
so a blob stored this way needs nothing new on the read side; but writing one is
a copy, where running the compressor over random bytes, media or archives costs
as much CPU as hashing them and saves nothing.

Frame layout written here::

    magic 28 B5 2F FD
    frame header descriptor 0xC0   8-byte content size; not single-segment;
                                   no checksum (blobs carry BLAKE3); no dictionary
    window descriptor 0x38         window 2^17 = 128 KiB, so blocks may be 128 KiB
    content size                   u64 LE
    blocks                         header u24 LE = size << 3 | type 0 (raw) << 1 | last,
                                   each 1..128 KiB (one empty last block for no content)
"""

from __future__ import annotations

from typing import Protocol

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_FRAME_HEADER_DESCRIPTOR = 0xC0  # FCS_flag 3 (8 bytes) | no single segment | no checksum, dict
_WINDOW_LOG = 17
_WINDOW_DESCRIPTOR = (_WINDOW_LOG - 10) << 3  # exponent 7, mantissa 0
BLOCK_MAX_BYTES = 1 << _WINDOW_LOG  # min(window size, 128 KiB)
FRAME_HEADER = ZSTD_MAGIC + bytes([_FRAME_HEADER_DESCRIPTOR, _WINDOW_DESCRIPTOR])
FRAME_HEADER_BYTES = len(FRAME_HEADER) + 8
BLOCK_HEADER_BYTES = 3


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> object: ...


def frame_bytes(size_bytes: int) -> int:
    """Size of the raw frame of ``size_bytes`` of content."""
    blocks = max(1, -(-size_bytes // BLOCK_MAX_BYTES))
    return FRAME_HEADER_BYTES + blocks * BLOCK_HEADER_BYTES + size_bytes


class RawFrameWriter:
    """Writes exactly ``size_bytes`` of content, fed in any pieces, to ``sink`` as one
    frame of raw blocks. Blocks are full (128 KiB) but the last, whatever the pieces.

    The sink gets the frame header, then per block its 3-byte header and its
    content: a ``memoryview`` of the piece fed (whole blocks of a large piece), or
    a ``bytearray`` this writer never touches again. Feeding more than
    ``size_bytes`` raises ValueError; the caller checks that ``finish`` is
    reached with all of it (``remaining == 0``).
    """

    def __init__(self, sink: Sink, size_bytes: int) -> None:
        if size_bytes < 0:
            raise ValueError("content size must not be negative")
        self._sink = sink
        self.remaining = size_bytes
        self._pending = bytearray()
        sink.write(FRAME_HEADER + size_bytes.to_bytes(8, "little"))
        if size_bytes == 0:
            self._emit(b"", last=True)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        if len(view) > self.remaining:
            raise ValueError(f"{len(view)} bytes given, {self.remaining} left in the frame")
        self.remaining -= len(view)
        if self._pending:
            take = min(len(view), BLOCK_MAX_BYTES - len(self._pending))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) == BLOCK_MAX_BYTES or not self.remaining:
                block, self._pending = self._pending, bytearray()
                self._emit(block, last=not self.remaining and not view)
        # Whole blocks straight from the piece; only the frame's last block is short.
        while len(view) >= BLOCK_MAX_BYTES or (view and not self.remaining):
            block, view = view[:BLOCK_MAX_BYTES], view[BLOCK_MAX_BYTES:]
            self._emit(block, last=not self.remaining and not view)
        if view:
            self._pending += view

    def _emit(self, block: bytearray | memoryview, *, last: bool) -> None:
        header = ((len(block) << 3) | int(last)).to_bytes(BLOCK_HEADER_BYTES, "little")
        # Two writes, not one joined copy: a block straight from a piece is a view of
        # the caller's bytes, which a store writer may keep as it is (LocalWriter does).
        self._sink.write(header)
        self._sink.write(block)


def raw_frame(data: bytes | memoryview) -> bytes:
    """``data`` as one frame of raw blocks."""
    parts: list[bytes | bytearray | memoryview] = []
    RawFrameWriter(_ListSink(parts), len(data)).write(data)
    return b"".join(parts)


class _ListSink:
    def __init__(self, parts: list[bytes | bytearray | memoryview]) -> None:
        self._parts = parts

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._parts.append(data)
