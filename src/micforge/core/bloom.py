"""Bloom filters of paths (libmic-core), sized by items/fp-rate or explicit geometry.

Batch methods (``add_many``, ``may_contain_any``) pass all paths in one FFI call
as one NUL-separated buffer: a path never contains NUL, and per-path calls would
cost more than the hashing itself for blooms of thousands of paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from micforge.core._ffi import InvalidArgument, InvalidHandle, check, ffi, lib, take_bytes

LANDING_BLOOM_BITS: int = lib.MIC_LANDING_BLOOM_BITS
LANDING_BLOOM_K: int = lib.MIC_LANDING_BLOOM_K
PATH_BYTES_MAX: int = lib.MIC_PATH_BYTES_MAX
BLOOM_BITS_MAX: int = lib.MIC_BLOOM_BITS_MAX  # the format's ceiling: 2^32 bits, 512 MiB
# The largest filter `from_bytes` builds unless told otherwise: 2^27 bits, a 16 MiB
# allocation, 16x the landing geometry. A 17-byte sparse input can declare
# BLOOM_BITS_MAX bits, so bytes from outside must not pick the allocation size.
FROM_BYTES_MAX_BITS: int = 1 << 27


def _key(path: str) -> bytes:
    try:
        return path.encode("utf-8")
    except (UnicodeEncodeError, AttributeError) as exc:
        raise InvalidArgument(
            f"bloom key is not a UTF-8 encodable str: {exc}", lib.MIC_INVALID_ARGUMENT
        ) from None


def _key_list(paths: Sequence[str]) -> bytes:
    if isinstance(paths, str):
        raise InvalidArgument("expected a sequence of paths, got one str", lib.MIC_INVALID_ARGUMENT)
    try:
        return "\0".join(paths).encode("utf-8")
    except (UnicodeEncodeError, TypeError) as exc:
        raise InvalidArgument(
            f"bloom keys must be UTF-8 encodable str: {exc}", lib.MIC_INVALID_ARGUMENT
        ) from None


class Bloom:
    """A bloom filter owned by exactly one Python object; ``close()`` frees it now."""

    __slots__ = ("_handle", "bits", "k")

    def __init__(self, _handle: object) -> None:
        # Use the constructors below; this takes ownership of a mic_bloom*.
        self._handle = ffi.gc(_handle, lib.mic_bloom_free)
        bits = ffi.new("uint64_t *")
        k = ffi.new("uint32_t *")
        check(lib.mic_bloom_geometry(self._handle, bits, k), "Bloom")
        self.bits: int = bits[0]
        self.k: int = k[0]

    @classmethod
    def for_items(cls, expected_items: int, fp_rate: float) -> Bloom:
        if expected_items < 0:
            raise InvalidArgument("expected_items must be >= 0", lib.MIC_INVALID_ARGUMENT)
        out = ffi.new("mic_bloom **")
        check(lib.mic_bloom_new_for_items(expected_items, fp_rate, out), "Bloom.for_items")
        return cls(out[0])

    @classmethod
    def with_geometry(cls, bits: int, k: int) -> Bloom:
        if bits < 0 or k < 0:
            raise InvalidArgument("bits and k must be >= 0", lib.MIC_INVALID_ARGUMENT)
        out = ffi.new("mic_bloom **")
        check(lib.mic_bloom_new(bits, k, out), f"Bloom.with_geometry(bits={bits}, k={k})")
        return cls(out[0])

    @classmethod
    def landing(cls) -> Bloom:
        return cls.with_geometry(LANDING_BLOOM_BITS, LANDING_BLOOM_K)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bits: int = FROM_BYTES_MAX_BITS) -> Bloom:
        """The filter serialized in ``data`` (docs/formats.md, "Bloom filter").

        Raises ``Corrupt`` for malformed bytes and ``LimitExceeded`` for a well-formed
        filter of more than ``max_bits`` bits, before allocating anything; pass a
        larger ``max_bits`` (up to ``BLOOM_BITS_MAX``) for bigger filters you trust.
        """
        if not isinstance(max_bits, int) or max_bits < 0:
            raise InvalidArgument("max_bits must be an int >= 0", lib.MIC_INVALID_ARGUMENT)
        out = ffi.new("mic_bloom **")
        check(
            lib.mic_bloom_deserialize_at_most(
                ffi.from_buffer(data), len(data), min(max_bits, BLOOM_BITS_MAX), out
            ),
            "Bloom.from_bytes",
        )
        return cls(out[0])

    def _live(self) -> object:
        if self._handle is None:
            raise InvalidHandle("Bloom is closed", lib.MIC_INVALID_HANDLE)
        return self._handle

    def add(self, path: str) -> None:
        key = _key(path)
        check(lib.mic_bloom_add(self._live(), key, len(key)), "Bloom.add")

    def add_many(self, paths: Sequence[str]) -> None:
        """Add every path in one call; an invalid path rejects the batch and adds nothing."""
        if not paths:
            return
        keys = _key_list(paths)
        check(lib.mic_bloom_add_many(self._live(), keys, len(keys), len(paths)), "Bloom.add_many")

    def may_contain(self, path: str) -> bool:
        key = _key(path)
        out = ffi.new("bool *")
        check(lib.mic_bloom_may_contain(self._live(), key, len(key), out), "Bloom.may_contain")
        return bool(out[0])

    def may_contain_any(self, paths: Sequence[str]) -> bool:
        """True if any path may be in the filter (the conflict check), in one call."""
        if not paths:
            return False
        keys = _key_list(paths)
        out = ffi.new("bool *")
        check(
            lib.mic_bloom_may_contain_any(self._live(), keys, len(keys), len(paths), out),
            "Bloom.may_contain_any",
        )
        return bool(out[0])

    def intersects(self, other: Bloom) -> bool:
        """Could the two filters share an item? Both must have the same geometry."""
        out = ffi.new("bool *")
        check(lib.mic_bloom_intersects(self._live(), other._live(), out), "Bloom.intersects")
        return bool(out[0])

    def union_in_place(self, other: Bloom) -> None:
        check(lib.mic_bloom_union(self._live(), other._live()), "Bloom.union_in_place")

    def estimated_count(self) -> float:
        out = ffi.new("double *")
        check(lib.mic_bloom_estimated_count(self._live(), out), "Bloom.estimated_count")
        return float(out[0])

    def to_bytes(self) -> bytes:
        out = ffi.new("mic_bytes *")
        check(lib.mic_bloom_serialize(self._live(), out), "Bloom.to_bytes")
        return take_bytes(out)

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            ffi.release(handle)

    def __enter__(self) -> Bloom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"bits={self.bits}, k={self.k}"
        return f"Bloom({state})"
