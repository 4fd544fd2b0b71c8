"""Hybrid logical clock: 64-bit timestamps of 48-bit milliseconds << 16 | 16-bit logical."""

from __future__ import annotations

import time

from micforge.core._ffi import InvalidArgument, InvalidHandle, check, ffi, lib

LOGICAL_BITS = 16
MS_MAX = (1 << 48) - 1
LOGICAL_MAX = (1 << LOGICAL_BITS) - 1


def hlc_pack(ms: int, logical: int) -> int:
    if not 0 <= ms <= MS_MAX or not 0 <= logical <= LOGICAL_MAX:
        raise InvalidArgument(
            f"hlc_pack: ms must be in 0..2^48-1 and logical in 0..65535, got {ms}, {logical}",
            lib.MIC_INVALID_ARGUMENT,
        )
    return (ms << LOGICAL_BITS) | logical


def hlc_unpack(value: int) -> tuple[int, int]:
    if not 0 <= value < 1 << 64:
        raise InvalidArgument(f"hlc_unpack: not a 64-bit HLC: {value}", lib.MIC_INVALID_ARGUMENT)
    return value >> LOGICAL_BITS, value & LOGICAL_MAX


def _wall_ms(wall_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if wall_ms is None else wall_ms


class Hlc:
    """One clock per process or agent; safe to share between threads (one atomic word)."""

    __slots__ = ("_handle",)

    def __init__(self) -> None:
        out = ffi.new("mic_hlc **")
        check(lib.mic_hlc_new(out), "Hlc")
        self._handle = ffi.gc(out[0], lib.mic_hlc_free)

    def _live(self) -> object:
        if self._handle is None:
            raise InvalidHandle("Hlc is closed", lib.MIC_INVALID_HANDLE)
        return self._handle

    def close(self) -> None:
        """Free the native clock now (idempotent); ffi.gc would otherwise do it later."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            ffi.release(handle)

    def __enter__(self) -> Hlc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self, wall_ms: int | None = None) -> int:
        """A timestamp later than every one this clock returned or received."""
        wall = _wall_ms(wall_ms)
        if not 0 <= wall <= MS_MAX:
            raise InvalidArgument(
                f"Hlc.now: wall_ms out of range: {wall}", lib.MIC_INVALID_ARGUMENT
            )
        out = ffi.new("uint64_t *")
        check(lib.mic_hlc_now(self._live(), wall, out), "Hlc.now")
        return int(out[0])

    def update(self, remote: int, wall_ms: int | None = None) -> int:
        """Merge a timestamp seen elsewhere; the result is later than it and than now()."""
        wall = _wall_ms(wall_ms)
        if not 0 <= wall <= MS_MAX:
            raise InvalidArgument(
                f"Hlc.update: wall_ms out of range: {wall}", lib.MIC_INVALID_ARGUMENT
            )
        if not 0 <= remote < 1 << 64:
            raise InvalidArgument(
                f"Hlc.update: not a 64-bit HLC: {remote}", lib.MIC_INVALID_ARGUMENT
            )
        out = ffi.new("uint64_t *")
        check(lib.mic_hlc_update(self._live(), remote, wall, out), "Hlc.update")
        return int(out[0])
