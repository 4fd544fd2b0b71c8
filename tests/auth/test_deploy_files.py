"""litestream.yml must replicate the file micforge actually uses as its auth DB."""

from __future__ import annotations

from pathlib import Path

import yaml

from micforge.config import Config

LITESTREAM_YML = Path(__file__).resolve().parents[2] / "litestream.yml"


def test_litestream_replicates_the_default_auth_db_of_the_image() -> None:
    config = yaml.safe_load(LITESTREAM_YML.read_text())
    (db,) = config["dbs"]
    # The image sets MICFORGE_DATA_DIR=/data (docs/deploy.md).
    image_config = Config.load({}, {"MICFORGE_DATA_DIR": "/data"})
    assert image_config.auth_db_url == f"sqlite:///{db['path']}"
    (replica,) = db["replicas"]
    assert replica["type"] == "s3" and replica["bucket"] == "${LITESTREAM_BUCKET}"
    assert replica["path"] and "retention" in replica
