"""The server process's malloc settings (micforge.api.allocator), each in a fresh process:
they are process-wide, so never applied to a test worker."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the settings are glibc's",
)

_PROBE = """
import ctypes, sys
from micforge.api.allocator import tune_allocator
print(tune_allocator())
# glibc serves a 4 MiB block from the heap (brk) once the mmap threshold is above it,
# else from its own mapping, whose address lies far from the heap's end.
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_long]
block = libc.malloc(4 << 20)
heap_end = libc.sbrk(0)
print("heap" if 0 <= heap_end - block <= 256 << 20 else "mmap")
"""


def _probe(**env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split("\n")[:2]


def test_the_server_process_keeps_blob_sized_buffers_on_the_heap() -> None:
    said, where = _probe()
    assert said == "allocator: glibc mmap threshold 16 MiB, trim threshold 64 MiB"
    assert where == "heap"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MALLOC_MMAP_THRESHOLD_", "131072"),
        ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072"),
    ],
)
def test_an_operator_setting_wins(name: str, value: str) -> None:
    said, where = _probe(**{name: value})
    assert said == f"allocator: left to the operator's {name}"
    assert where == "mmap"  # the operator's 128 KiB threshold is what applies


def test_unrelated_glibc_tunables_do_not_stop_it() -> None:
    said, _ = _probe(GLIBC_TUNABLES="glibc.cpu.x86_shstk=0")
    assert said.startswith("allocator: glibc mmap threshold")
