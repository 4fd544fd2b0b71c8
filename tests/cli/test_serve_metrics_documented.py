"""docs/api.md lists every metric a `micforge serve` process exports at /metrics, and no other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from micforge.api.serve import Server
from micforge.config import Config

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(Config.load({"data_dir": str(tmp_path), "port": 0, "grpc_port": 0}, {}))
    server.start()
    yield server
    server.stop(grace_s=5)


def _documented() -> set[str]:
    section = API_MD.read_text().split("`GET /metrics`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(micforge_\w+)`", section, re.MULTILINE))


def test_the_metrics_table_is_what_metrics_exports(server: Server) -> None:
    text = requests.get(server.rest_url + "/metrics", timeout=30).text
    exported = set(re.findall(r"^# TYPE (micforge_\w+) ", text, re.MULTILINE))
    # prometheus_client adds a `_created` series per counter; the page says so once.
    exported = {name for name in exported if not name.endswith("_created")}
    assert _documented() == exported
