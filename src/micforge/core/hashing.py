"""BLAKE3 hashing: one-shot, streaming, blob hashes and path hashes."""

from __future__ import annotations

from micforge.core._ffi import InvalidHandle, check, ffi, lib

HASH_BYTES = 32
PATH_HASH_BYTES = 16


def _borrow(data: bytes | bytearray | memoryview) -> object:
    # bytes go to C as they are; other buffers need from_buffer (which costs ~0.2 µs).
    return data if type(data) is bytes else ffi.from_buffer(data)


def blake3(data: bytes) -> bytes:
    out = bytearray(HASH_BYTES)  # cheaper than ffi.new + ffi.buffer for 32 bytes
    check(lib.mic_blake3(_borrow(data), len(data), ffi.from_buffer(out)), "blake3")
    return bytes(out)


def blob_hash(content: bytes) -> bytes:
    """BLAKE3("blob\\0" ‖ varint(len) ‖ content): the content address of a blob."""
    out = bytearray(HASH_BYTES)
    check(lib.mic_blob_hash(_borrow(content), len(content), ffi.from_buffer(out)), "blob_hash")
    return bytes(out)


def path_hash(path: str) -> bytes:
    """The 16-byte bloom key of a path: BLAKE3("path\\0" ‖ UTF-8 path)[:16]."""
    encoded = path.encode("utf-8")
    out = bytearray(PATH_HASH_BYTES)
    check(lib.mic_path_hash(encoded, len(encoded), ffi.from_buffer(out)), "path_hash")
    return bytes(out)


class Hasher:
    """Streaming BLAKE3. ``digest()`` does not end the stream; ``close()`` frees it."""

    def __init__(self) -> None:
        self._handle = self._new()

    def _new(self) -> object:
        out = ffi.new("mic_hasher **")
        check(lib.mic_hasher_new(out), "Hasher")
        return ffi.gc(out[0], lib.mic_hasher_free)

    def _live(self) -> object:
        if self._handle is None:
            raise InvalidHandle(f"{type(self).__name__} is closed", lib.MIC_INVALID_HANDLE)
        return self._handle

    def update(self, data: bytes) -> None:
        check(lib.mic_hasher_update(self._live(), _borrow(data), len(data)), "update")

    def digest(self) -> bytes:
        out = ffi.new("uint8_t[32]")
        check(lib.mic_hasher_final(self._live(), out), "digest")
        return ffi.buffer(out)[:]

    def hexdigest(self) -> str:
        return self.digest().hex()

    def close(self) -> None:
        """Free the native state now (idempotent); ffi.gc would otherwise do it later."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            ffi.release(handle)

    def __enter__(self) -> Hasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobHasher(Hasher):
    """Streaming blob hash of ``size_bytes`` of content, fed in any chunks.

    Feeding more than ``size_bytes``, or asking for the digest before exactly
    ``size_bytes`` were fed, raises ``SizeMismatch`` (an ``InvalidArgument``-like
    ValueError); the hasher is unchanged by a rejected update.
    """

    def __init__(self, size_bytes: int) -> None:
        if size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        self.size_bytes = size_bytes
        super().__init__()

    def _new(self) -> object:
        out = ffi.new("mic_hasher **")
        check(lib.mic_blob_hasher_new(self.size_bytes, out), "BlobHasher")
        return ffi.gc(out[0], lib.mic_hasher_free)
