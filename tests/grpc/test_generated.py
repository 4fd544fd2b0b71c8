"""The committed generated code is what scripts/gen_proto.py produces from proto/ today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
