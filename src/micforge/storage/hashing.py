"""The content hash behind LocalStore etags: BLAKE3, hex.

libmic-core (``micforge.core``) is the project's BLAKE3. Until the native
library is built in an environment, the ``blake3`` PyPI package computes the
identical digest, so etags never depend on which one is loaded.
"""

from __future__ import annotations

from typing import Protocol


class _Hasher(Protocol):
    def update(self, data: bytes) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher() -> _Hasher:
    try:
        from micforge.core import Hasher  # type: ignore[attr-defined]

        return Hasher()
    except (ImportError, AttributeError, OSError):
        import blake3

        return blake3.blake3()


def blake3_hex(data: bytes) -> str:
    hasher = new_hasher()
    hasher.update(data)
    return hasher.hexdigest()
