"""The content hash behind LocalStore etags: BLAKE3 from libmic-core, as hex."""

from __future__ import annotations

from micforge.core import Hasher


def new_hasher() -> Hasher:
    """A streaming BLAKE3 hasher; ``hexdigest()`` is a LocalStore etag."""
    return Hasher()


def blake3_hex(data: bytes) -> str:
    with Hasher() as hasher:
        hasher.update(data)
        return hasher.hexdigest()
