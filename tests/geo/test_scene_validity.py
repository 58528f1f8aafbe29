"""Validity of scenes as users have them: a zero collar without a nodata tag (detected and warned about),
declared nodata (--nodata) replacing or adding to the file's, per-band values, and values refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsseg_cli.errors import UserError
from rsseg_cli.geo.collar import collar_of
from rsseg_cli.geo.raster import describe_scene, read_window
from tests.conftest import write_raster
from tests.geo.scenes import collar_share, footprint, landsat_clip, texture


@pytest.fixture
def rsseg_log():
    """Messages of the "rsseg" logger (which does not propagate once the CLI has set logging up)."""

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

        def text(self, level: int = logging.DEBUG) -> str:
            return "\n".join(r.getMessage() for r in self.records if r.levelno >= level)

    logger = logging.getLogger("rsseg")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _validity(scene) -> np.ndarray:
    with rasterio.open(scene.path) as src:
        _, valid = read_window(src, scene, Window(0, 0, scene.width, scene.height))
    return valid


def test_zero_collar_without_nodata_is_warned_about_with_value_share_and_fix(tmp_path, rsseg_log):
    path = landsat_clip(tmp_path / "LC08_clip.tif")
    scene = describe_scene(path)
    assert scene.mask_kind == "all_valid"  # nothing is masked on a guess
    text = " ".join(rsseg_log.text(logging.WARNING).split())
    assert str(path) in text and "constant 0 in every band" in text and "--nodata 0" in text
    share = float(text.split(" % of it")[0].rsplit(" ", 1)[1])
    assert share == pytest.approx(100 * collar_share(), abs=1.0)


def test_normal_scene_and_declared_nodata_give_no_collar_warning(tmp_path, rsseg_log):
    describe_scene(write_raster(tmp_path / "normal.tif", texture(200, 240, 4)))
    # Dark water or shadow touching the edge is no collar: it is not one value in every band.
    dark = texture(200, 240, 4)
    dark[:, :, :30] = np.arange(4, dtype=np.uint16)[:, None, None] + 1
    describe_scene(write_raster(tmp_path / "dark_edge.tif", dark))
    describe_scene(landsat_clip(tmp_path / "clip.tif"), nodata=[0.0])
    describe_scene(landsat_clip(tmp_path / "tagged.tif", nodata=0))
    assert rsseg_log.text(logging.WARNING) == ""


def test_collar_needs_an_extreme_value_on_the_border():
    data = texture(100, 100, 3)
    inner = np.zeros((100, 100), bool)
    inner[30:70, 30:70] = True
    hole = data.copy()
    hole[:, inner] = 0  # a zero block inside the scene touches no edge
    assert collar_of(hole) is None
    mid = data.copy()
    mid[:, ~footprint(100, 100)] = 12000  # a constant, but one in the middle of the values
    assert collar_of(mid) is None
    high = data.copy()
    high[:, ~footprint(100, 100)] = 65535  # uint16 fill at the top of the range
    found = collar_of(high)
    assert (
        found is not None
        and found.value == 65535
        and found.share == pytest.approx(1 - footprint(100, 100).mean(), abs=0.01)
    )


def test_declared_nodata_makes_the_collar_invalid_and_is_logged(tmp_path, rsseg_log):
    path = landsat_clip(tmp_path / "clip.tif")
    scene = describe_scene(path, nodata=[0.0])
    assert (scene.mask_kind, scene.nodata, scene.nodata_source) == ("nodata", [0.0] * 4, "declared")
    np.testing.assert_array_equal(_validity(scene), footprint(scene.height, scene.width))
    assert "nodata 0 (declared with --nodata; the file has no nodata value)" in rsseg_log.text()


def test_per_band_nodata_list(tmp_path):
    data = texture(64, 64, 4, "int16")
    data[3, :10] = -9999  # band 4's fill, the others hold data there
    data[:, :, :5] = 0  # a collar in every band
    scene = describe_scene(write_raster(tmp_path / "s.tif", data), nodata=[0, 0, 0, -9999])
    assert scene.nodata == [0.0, 0.0, 0.0, -9999.0]
    expected = np.ones((64, 64), bool)
    expected[:10] = expected[:, :5] = False
    np.testing.assert_array_equal(_validity(scene), expected)


def test_declared_nodata_replaces_the_files_tag(tmp_path, rsseg_log):
    data = texture(32, 32, 3)
    data[:, :4] = 0
    data[:, -4:] = 1
    scene = describe_scene(write_raster(tmp_path / "s.tif", data, nodata=1), nodata=[0])
    valid = _validity(scene)
    assert not valid[:4].any() and valid[-4:].all()  # 0 is nodata now, 1 (the file's tag) is data
    assert "instead of the file's nodata 1" in rsseg_log.text()


def test_declared_nodata_adds_to_the_files_mask(tmp_path):
    data = texture(32, 32, 3)
    data[:, :4] = 0
    mask = np.ones((32, 32), bool)
    mask[-4:] = False
    scene = describe_scene(write_raster(tmp_path / "s.tif", data, mask=mask), nodata=[0])
    assert scene.mask_kind == "mask"
    valid = _validity(scene)
    assert not valid[:4].any() and not valid[-4:].any() and valid[4:-4].all()


def test_float_scene_nodata_matches_the_stored_float32_value(tmp_path):
    data = texture(16, 16, 2, "float32") / 7
    data[:, :2] = np.float32(-0.1)
    scene = describe_scene(write_raster(tmp_path / "f.tif", data), nodata=[-0.1])
    assert not _validity(scene)[:2].any() and _validity(scene)[2:].all()


@pytest.mark.parametrize(
    ("values", "dtype", "needles"),
    [
        ([0, 0], "uint16", ["gives 2 values but 4 bands", "--nodata 0,0,0,0"]),
        ([-9999], "uint16", ["-9999", "uint16", "0..65535"]),
        ([0.5], "uint8", ["0.5", "uint8"]),
        ([1e39], "float32", ["float32"]),
    ],
)
def test_unusable_nodata_is_refused(tmp_path, values, dtype, needles):
    path = write_raster(tmp_path / "s.tif", (texture(16, 16, 4) % 200).astype(dtype))
    with pytest.raises(UserError) as err:
        describe_scene(path, nodata=values)
    text = " ".join(str(err.value).split())
    for needle in needles:
        assert needle in text
