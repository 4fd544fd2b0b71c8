"""glibc malloc settings for the server process (``micforge serve``).

A blob moves through the server as short-lived buffers of 128 KiB to a few MiB
(gRPC messages, chunks, frames). glibc serves allocations from 128 KiB up with
a fresh ``mmap`` and returns them to the kernel on free, adjusting that
threshold as it goes; every such buffer then costs page faults on fresh,
zeroed memory, which on a VM is slower than the copy itself. How a run of
allocations moved the threshold decided whether 1 MiB GetBlob calls ran at
~40% or ~60% of a bare grpcio stream (docs/benchmarks.md, "gRPC").

Fixed settings take that out of glibc's heuristics: buffers up to 16 MiB come
from the heap and are reused, and up to 64 MiB of free heap is kept before it
is returned to the kernel. Larger buffers (rare: a whole blob verified in
memory is at most 8 MiB) still get their own mapping.

Process-wide by nature, so it is done once by the process's entry point, never
by the app factories that tests build many of; it only ever affects speed. An
operator's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, or
``glibc.malloc.*`` in ``GLIBC_TUNABLES``, wins: then nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPERATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_allocator(environ: dict[str, str] | None = None) -> str:
    """Apply the settings above if this is glibc and the operator set none; returns
    what was done, for the startup log."""
    environ = dict(os.environ) if environ is None else environ
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "allocator: not glibc, left as it is"
    named = [name for name in _OPERATOR_VARIABLES if environ.get(name)]
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        named.append("GLIBC_TUNABLES")
    if named:
        return f"allocator: left to the operator's {', '.join(named)}"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    ):
        return "allocator: glibc refused the settings, left as it is"
    return (
        f"allocator: glibc mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, "
        f"trim threshold {TRIM_THRESHOLD_BYTES >> 20} MiB"
    )
