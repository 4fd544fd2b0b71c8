"""Frames of raw blocks: any zstd decoder reads them back, whatever the pieces fed."""

from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from micforge.service.rawframe import (
    BLOCK_HEADER_BYTES,
    BLOCK_MAX_BYTES,
    FRAME_HEADER_BYTES,
    RawFrameWriter,
    frame_bytes,
    raw_frame,
)

B = BLOCK_MAX_BYTES


class _Sink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _frame_of(data: bytes, pieces: list[int]) -> tuple[bytes, list[bytes]]:
    sink = _Sink()
    writer = RawFrameWriter(sink, len(data))
    start = 0
    for n in pieces:
        writer.write(data[start : start + n])
        start += n
    writer.write(data[start:])
    assert writer.remaining == 0
    return b"".join(sink.writes), sink.writes


def _blocks(frame: bytes) -> list[tuple[int, int, bool]]:
    """(type, size, last) of each block, parsed by hand from the frame."""
    out = []
    pos = FRAME_HEADER_BYTES
    while pos < len(frame):
        header = int.from_bytes(frame[pos : pos + BLOCK_HEADER_BYTES], "little")
        kind, size, last = (header >> 1) & 3, header >> 3, bool(header & 1)
        out.append((kind, size, last))
        pos += BLOCK_HEADER_BYTES + size
    assert pos == len(frame)
    return out


def _assert_reads_back(frame: bytes, data: bytes) -> None:
    params = zstandard.get_frame_parameters(frame)
    assert params.content_size == len(data)
    assert params.window_size == B
    assert not params.has_checksum and params.dict_id == 0
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    streaming = zstandard.ZstdDecompressor().decompressobj()
    assert streaming.decompress(frame) == data
    assert streaming.eof and streaming.unused_data == b""
    with zstandard.ZstdDecompressor().stream_reader(frame) as reader:
        assert reader.read() == data


# Byte-sized pieces only up to one block and a byte: over many blocks they are slow
# and cover nothing more.
@pytest.mark.parametrize(
    ("size", "piece"),
    [
        (size, piece)
        for size in [0, 1, B - 1, B, B + 1, 2 * B, 3 * B + 5]
        for piece in [1, 7, B - 1, B, B + 1, 256 * 1024, 10**9]
        if piece >= 100 or size <= B + 1
    ],
)
def test_every_size_and_piece_size_reads_back(size: int, piece: int) -> None:
    data = os.urandom(size)
    frame, _ = _frame_of(data, [piece] * (size // piece))
    _assert_reads_back(frame, data)
    assert len(frame) == frame_bytes(size)
    assert frame == raw_frame(data)
    blocks = _blocks(frame)
    # Raw blocks, all full but the last, and only the last marked last.
    assert all(kind == 0 for kind, _, _ in blocks)
    assert [size for _, size, _ in blocks[:-1]] == [B] * (len(blocks) - 1)
    assert [last for _, _, last in blocks] == [False] * (len(blocks) - 1) + [True]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 3 * B + 17),
    cuts=st.lists(st.integers(0, 3 * B + 17), max_size=12),
)
def test_any_split_gives_the_same_frame(size: int, cuts: list[int]) -> None:
    data = os.urandom(size)
    points = sorted({c for c in cuts if c <= size})
    pieces = [b - a for a, b in zip([0, *points], points, strict=False)]
    frame, writes = _frame_of(data, pieces)
    assert frame == raw_frame(data)
    _assert_reads_back(frame, data)
    # The sink sees the frame header, then each block's header and its whole content.
    assert len(writes[0]) == FRAME_HEADER_BYTES
    assert all(len(w) == BLOCK_HEADER_BYTES for w in writes[1::2])
    assert [len(w) for w in writes[2::2]] == [s for _, s, _ in _blocks(frame)]


def test_more_than_announced_is_refused_and_nothing_more_is_written() -> None:
    sink = _Sink()
    writer = RawFrameWriter(sink, 10)
    writer.write(b"12345")
    before = list(sink.writes)
    with pytest.raises(ValueError, match="left in the frame"):
        writer.write(b"123456")
    assert sink.writes == before and writer.remaining == 5
    with pytest.raises(ValueError, match="negative"):
        RawFrameWriter(_Sink(), -1)


def test_a_frame_cut_short_does_not_decode() -> None:
    # The reader relies on zstd to notice a truncated raw frame (then BLAKE3 would too).
    frame = raw_frame(os.urandom(B + 10))
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(frame[:-1])
