"""Build hook: compiles libmic-core with the `ziglang` package while the package is built.

`pip install -e .` and `python -m build --wheel` both run build_py, which runs
`python -m ziglang build -Doptimize=ReleaseSafe` and copies the shared library
and its header into ``micforge/core/native-lib/``: in the source tree for an
editable install, in build_lib for a wheel (so the wheel carries them). The
binding (``micforge/core/_ffi.py``) loads them from beside itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 ships bdist_wheel; older ones take it from `wheel`
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    from wheel.bdist_wheel import bdist_wheel
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
# Not an identifier, so that setuptools does not take the directory for a package
# that package discovery missed (it is created during the build).
NATIVE_REL = Path("micforge") / "core" / "native-lib"
LIBRARY_NAMES = {"darwin": "libmic_core.dylib", "win32": "mic_core.dll"}


def library_name() -> str:
    return LIBRARY_NAMES.get(sys.platform, "libmic_core.so")


def build_native(destination: Path) -> None:
    """Run the Zig build and copy its outputs into ``destination``."""
    prefix = ROOT / "zig-out"
    command = [
        sys.executable,
        "-m",
        "ziglang",
        "build",
        "-Doptimize=ReleaseSafe",
        "--prefix",
        str(prefix),
    ]
    # The library is tuned for the CPU that builds it (SIMD width of the path
    # hashing and BLAKE3). For a wheel or image that runs on other machines, set
    # MICFORGE_ZIG_CPU at build time: "baseline", or e.g. "x86_64_v3" (AVX2).
    cpu = os.environ.get("MICFORGE_ZIG_CPU")
    if cpu:
        command.append(f"-Dcpu={cpu}")
    subprocess.run(command, cwd=ROOT, check=True)
    lib_dir = "bin" if sys.platform == "win32" else "lib"
    destination.mkdir(parents=True, exist_ok=True)
    _replace(prefix / lib_dir / library_name(), destination / library_name())
    _replace(ROOT / "zig" / "include" / "mic_core.h", destination / "mic_core.h")


def _replace(source: Path, target: Path) -> None:
    # Copy then rename: overwriting a loaded shared library in place would crash
    # every process that has it mapped (tests running while the package rebuilds).
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)


class BuildPyWithNative(build_py):
    def run(self) -> None:
        if self.editable_mode:
            # Editable installs import from src/, so the library goes there.
            build_native(ROOT / "src" / NATIVE_REL)
        super().run()
        if not self.editable_mode:
            build_native(Path(self.build_lib) / NATIVE_REL)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            native = Path(self.build_lib) / NATIVE_REL
            outputs += [str(native / library_name()), str(native / "mic_core.h")]
        return outputs


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: the wheel carries a native library (so it is tied to a
    platform) but no CPython extension (cffi ABI mode), so any Python 3 can load it."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BinaryDistribution(Distribution):
    """Makes the wheel install into platlib, where native libraries belong."""

    def has_ext_modules(self) -> bool:
        return True


setup(
    cmdclass={"build_py": BuildPyWithNative, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
