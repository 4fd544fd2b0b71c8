"""litestream.yml and the deployment recipe must fit the micforge they run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from micforge.cli.micforge import _config, build_parser
from micforge.config import Config

LITESTREAM_YML = Path(__file__).resolve().parents[2] / "litestream.yml"


def test_litestream_replicates_the_auth_db_of_the_deployment_recipe() -> None:
    config = yaml.safe_load(LITESTREAM_YML.read_text())
    (db,) = config["dbs"]
    # The recipe runs micforge with MICFORGE_DATA_DIR=/data (docs/deploy.md, "Litestream").
    recipe_config = Config.load({}, {"MICFORGE_DATA_DIR": "/data"})
    assert recipe_config.auth_db_url == f"sqlite:///{db['path']}"
    (replica,) = db["replicas"]
    assert replica["type"] == "s3" and replica["bucket"] == "${LITESTREAM_BUCKET}"
    assert replica["path"] and "retention" in replica


def test_the_recipe_serves_beyond_the_container_and_docs_agree_on_it() -> None:
    # The -exec command of the recipe, as litestream.yml and docs/deploy.md both show it.
    docs = (LITESTREAM_YML.parent / "docs" / "deploy.md").read_text()
    (from_yml,) = set(re.findall(r'-exec "([^"]+)"', LITESTREAM_YML.read_text()))
    (from_docs,) = set(re.findall(r'-exec "([^"]+)"', docs))
    assert from_yml == from_docs
    program, *argv = shlex.split(from_yml)
    assert program == "micforge"
    # A container's 127.0.0.1 is its own: the recipe must bind every interface.
    assert _config(build_parser().parse_args(argv), {}).host == "0.0.0.0"
