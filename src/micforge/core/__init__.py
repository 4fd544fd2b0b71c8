"""micforge.core: the cffi binding of libmic-core (zig/include/mic_core.h).

Pythonic types over the C ABI and nothing else; see docs/architecture.md.
"""

from micforge.core._ffi import (
    BufferTooSmall,
    CoreError,
    Corrupt,
    InvalidArgument,
    InvalidHandle,
    LimitExceeded,
    LoaderFailed,
    NotFoundNode,
    OutOfMemory,
    SizeMismatch,
    version,
)
from micforge.core.hashing import BlobHasher, Hasher, blake3, blob_hash, path_hash

__all__ = [
    "BlobHasher",
    "BufferTooSmall",
    "CoreError",
    "Corrupt",
    "Hasher",
    "InvalidArgument",
    "InvalidHandle",
    "LimitExceeded",
    "LoaderFailed",
    "NotFoundNode",
    "OutOfMemory",
    "SizeMismatch",
    "blake3",
    "blob_hash",
    "path_hash",
    "version",
]
