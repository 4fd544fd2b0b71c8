"""The committed generated code is what scripts/gen_proto.py produces from proto/ today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen_proto_module():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date() -> None:
    stale = _gen_proto_module().stale_files()
    assert stale == [], f"run `python scripts/gen_proto.py`; stale: {stale}"


def test_generated_modules_import_by_package_path() -> None:
    from micforge.api.grpc.gen.micforge.v1 import content_pb2_grpc, sessions_pb2_grpc

    assert content_pb2_grpc.ContentServiceStub and sessions_pb2_grpc.SessionServiceStub
    # No top-level "micforge.v1" module was needed (it would shadow our package).
    assert "micforge.v1" not in sys.modules


def test_version_stamps_are_the_runtime_floors_that_pyproject_requires() -> None:
    """A newer grpcio-tools patch release stamps its own version; generation sets the
    stamps to the floors, which must be what pyproject.toml requires."""
    import tomllib

    gen = _gen_proto_module()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"grpcio>={gen.GRPC_FLOOR}" in dependencies
    assert f"protobuf>={gen.PROTOBUF_FLOOR}" in dependencies
    major, minor, patch = gen.PROTOBUF_FLOOR.split(".")
    grpc_major, grpc_minor, _ = gen.GRPC_FLOOR.split(".")
    # A later patch release of the tools: stamped down to the floors.
    pb2 = (
        f"# Protobuf Python Version: {major}.{minor}.9\n"
        "_runtime_version.ValidateProtobufRuntimeVersion(\n"
        f"    _runtime_version.Domain.PUBLIC,\n    {major},\n    {minor},\n    9,\n    '-rc1',\n"
    )
    assert gen._stamped("x_pb2.py", pb2) == (
        f"# Protobuf Python Version: {gen.PROTOBUF_FLOOR}\n"
        "_runtime_version.ValidateProtobufRuntimeVersion(\n"
        f"    _runtime_version.Domain.PUBLIC,\n    {major},\n    {minor},\n    {patch},\n    '',\n"
    )
    grpc_code = f"GRPC_GENERATED_VERSION = '{grpc_major}.{grpc_minor}.9'\n"
    assert (
        gen._stamped("x_pb2_grpc.py", grpc_code) == f"GRPC_GENERATED_VERSION = '{gen.GRPC_FLOOR}'\n"
    )
    # Another minor version, or a stamp not where protoc used to write it: refused.
    newer_minor = f"GRPC_GENERATED_VERSION = '{grpc_major}.{int(grpc_minor) + 1}.0'\n"
    with pytest.raises(SystemExit, match="raise it in pyproject.toml"):
        gen._stamped("x_pb2_grpc.py", newer_minor)
    with pytest.raises(SystemExit, match="expected 1"):
        gen._stamped("x_pb2_grpc.py", 'GRPC_GENERATED_VERSION = "1.85.1"\n')
    with pytest.raises(SystemExit, match="expected 1"):
        gen._stamped("x_pb2.py", pb2.replace("ValidateProtobufRuntimeVersion", "Validate"))
