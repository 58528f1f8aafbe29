"""Band order as users' files give it: `--bands red,green,blue` on a file whose colour interpretation is RGB
(without band descriptions), and the warning at training time when names do not say which band is which."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rasterio
import yaml
from rasterio.enums import ColorInterp

from rsseg_cli.config import load_config
from rsseg_cli.engine.run import _check_dataset
from tests.conftest import write_raster
from tests.geo.scenes import texture


def test_tile_selects_bands_by_colour_interpretation(cli, tmp_path):
    scene = write_raster(tmp_path / "bgr.tif", texture(64, 64, 3))
    with rasterio.open(scene, "r+") as dst:  # stored blue, green, red; no descriptions
        dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red]
    r = cli("tile", scene, "--bands", "red,green,blue", "--chip-size", "32", "--out", tmp_path / "d")
    assert r.code == 0, r.err
    meta = yaml.safe_load((tmp_path / "d" / "dataset.yaml").read_text())
    assert meta["bands"] == [
        {"index": 3, "name": "red"},
        {"index": 2, "name": "green"},
        {"index": 1, "name": "blue"},
    ]


@dataclass
class _Dataset:
    """What _check_dataset reads of a tiled dataset: classes, a labeled val split and the band names."""

    band_names: list[str]
    num_classes: int = 2
    root: Path = Path("data")
    val: list[str] = field(default_factory=lambda: ["chip"])

    def split(self, name: str, labeled: bool = False) -> list[str]:
        return self.val


@pytest.fixture
def warnings_of_rsseg():
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("rsseg")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_training_warns_when_the_first_three_bands_are_taken_as_rgb(warnings_of_rsseg):
    band_map = _check_dataset(_Dataset(["B4", "B3", "B2", "B8"]), load_config())
    assert band_map == [0, 1, 2, None]
    text = " ".join(warnings_of_rsseg[0].getMessage().split())
    assert "red=B4 (band 1), green=B3 (band 2), blue=B2 (band 3)" in text
    assert "--set model.band_map=[2,1,0,null]" in text and "band descriptions" in text


def test_no_warning_when_names_or_the_config_say_which_band_is_which(warnings_of_rsseg):
    assert _check_dataset(_Dataset(["blue", "green", "red", "nir"]), load_config()) == [2, 1, 0, None]
    cfg = load_config(overrides=["model.band_map=[2,1,0,null]"])
    assert _check_dataset(_Dataset(["B2", "B3", "B4", "B8"]), cfg) == [2, 1, 0, None]
    assert _check_dataset(_Dataset(["hh", "hv"]), load_config()) == [0, 1]  # SAR: no colours to name
    assert warnings_of_rsseg == []
