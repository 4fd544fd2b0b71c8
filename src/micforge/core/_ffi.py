"""The one binding module: loads libmic_core and turns status codes into exceptions.

The cdef is read from the same header C callers use (the part between the
MIC_CDEF markers), so the two cannot drift. The library and a copy of the
header live in ``native-lib/`` beside this file: the package build places them
there (``setup.py``), so nothing is looked up through environment variables.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cffi import FFI

NATIVE_DIR = Path(__file__).resolve().parent / "native-lib"
HEADER_NAME = "mic_core.h"
_CDEF_BEGIN = "/* MIC_CDEF_BEGIN */"
_CDEF_END = "/* MIC_CDEF_END */"


def _library_name() -> str:
    if sys.platform == "darwin":
        return "libmic_core.dylib"
    if sys.platform == "win32":
        return "mic_core.dll"
    return "libmic_core.so"


def _read_cdef(header: Path) -> str:
    text = header.read_text(encoding="utf-8")
    begin = text.find(_CDEF_BEGIN)
    end = text.find(_CDEF_END)
    if begin < 0 or end < begin:
        raise ImportError(f"{header} lacks the MIC_CDEF_BEGIN/END markers")
    return text[begin + len(_CDEF_BEGIN) : end]


def _load() -> tuple[FFI, object]:
    header = NATIVE_DIR / HEADER_NAME
    library = NATIVE_DIR / _library_name()
    if not header.exists() or not library.exists():
        raise ImportError(
            f"libmic-core is not built: expected {library} and {header}. "
            "Install the package (`pip install -e .`), which runs `python -m ziglang build`."
        )
    ffi = FFI()
    ffi.cdef(_read_cdef(header))
    return ffi, ffi.dlopen(str(library))


# The loaded library handle: immutable after import, shared by every thread.
ffi, lib = _load()


class CoreError(Exception):
    """A libmic-core call failed; ``status`` is its mic_status, ``name`` its MIC_* name."""

    status: int = -1
    name: str = "MIC_UNKNOWN_STATUS"

    def __init__(self, message: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
            self.name = ffi.string(lib.mic_status_str(status)).decode("ascii")
        super().__init__(f"{message} ({self.name})")
        self.message = message


class InvalidArgument(CoreError, ValueError):
    status = lib.MIC_INVALID_ARGUMENT
    name = "MIC_INVALID_ARGUMENT"


class Corrupt(CoreError, ValueError):
    status = lib.MIC_CORRUPT
    name = "MIC_CORRUPT"


class OutOfMemory(CoreError, MemoryError):
    status = lib.MIC_OUT_OF_MEMORY
    name = "MIC_OUT_OF_MEMORY"


class InvalidHandle(CoreError):
    status = lib.MIC_INVALID_HANDLE
    name = "MIC_INVALID_HANDLE"


class BufferTooSmall(CoreError):
    status = lib.MIC_BUFFER_TOO_SMALL
    name = "MIC_BUFFER_TOO_SMALL"


class LimitExceeded(CoreError, ValueError):
    status = lib.MIC_LIMIT_EXCEEDED
    name = "MIC_LIMIT_EXCEEDED"


class SizeMismatch(InvalidArgument):
    """Bytes fed to a BlobHasher differ from its announced size (an InvalidArgument)."""

    status = lib.MIC_SIZE_MISMATCH
    name = "MIC_SIZE_MISMATCH"


class NotFoundNode(CoreError):
    status = lib.MIC_NODE_NOT_FOUND
    name = "MIC_NODE_NOT_FOUND"


class LoaderFailed(CoreError):
    status = lib.MIC_LOADER_FAILED
    name = "MIC_LOADER_FAILED"


_ERRORS: dict[int, type[CoreError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        Corrupt,
        OutOfMemory,
        InvalidHandle,
        BufferTooSmall,
        LimitExceeded,
        SizeMismatch,
        NotFoundNode,
        LoaderFailed,
    )
}

# Default messages say what the status means to a caller of the Python API.
_MESSAGES: dict[int, str] = {
    lib.MIC_INVALID_ARGUMENT: "invalid argument",
    lib.MIC_CORRUPT: "input is corrupt or not in the expected format",
    lib.MIC_OUT_OF_MEMORY: "libmic-core ran out of memory",
    lib.MIC_INVALID_HANDLE: "the object was closed or is invalid",
    lib.MIC_BUFFER_TOO_SMALL: "output buffer too small",
    lib.MIC_LIMIT_EXCEEDED: "a size or count limit was exceeded",
    lib.MIC_SIZE_MISMATCH: "the number of bytes fed does not match the announced size",
    lib.MIC_NODE_NOT_FOUND: "a tree node was not found",
    lib.MIC_LOADER_FAILED: "the tree node loader failed",
}


def check(status: int, what: str = "") -> None:
    """Raise the CoreError subclass matching ``status`` unless it is MIC_OK."""
    if status == 0:
        return
    cls = _ERRORS.get(status, CoreError)
    message = _MESSAGES.get(status, f"unknown status {status}")
    raise cls(f"{what}: {message}" if what else message, status)


def version() -> str:
    out = ffi.new("const char **")
    check(lib.mic_version(out), "version")
    return ffi.string(out[0]).decode("ascii")


def take_bytes(out: object) -> bytes:
    """Copy a library-owned mic_bytes into Python and free it, exactly once."""
    try:
        return bytes(ffi.buffer(out.ptr, out.len)) if out.len else b""  # type: ignore[attr-defined]
    finally:
        lib.mic_bytes_free(out)
