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
from micforge.core.bloom import LANDING_BLOOM_BITS, LANDING_BLOOM_K, PATH_BYTES_MAX, Bloom
from micforge.core.hashing import BlobHasher, Hasher, blake3, blob_hash, path_hash
from micforge.core.hlc import Hlc, hlc_pack, hlc_unpack

__all__ = [
    "LANDING_BLOOM_BITS",
    "LANDING_BLOOM_K",
    "PATH_BYTES_MAX",
    "Bloom",
    "Hlc",
    "hlc_pack",
    "hlc_unpack",
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
