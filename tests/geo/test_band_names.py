"""Band order from the file: band descriptions, else GDAL colour interpretation (red/green/blue), never a
guess by sensor; the model's red/green/blue filters and the quick-look follow the same names."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from rsseg_cli.data.normalize import band_map_by_name, default_band_map, rgb_bands
from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import describe_scene
from rsseg_cli.predict.quicklook import quicklook_bands
from tests.conftest import write_raster
from tests.geo.scenes import texture


def _interpreted(path, *colors: ColorInterp):
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = list(colors)
    return path


def test_bgr_descriptions_map_red_to_band_3(tmp_path):
    path = write_raster(
        tmp_path / "bgr.tif", texture(16, 16, 4), descriptions=["blue", "green", "red", "nir"]
    )
    scene = describe_scene(path)
    assert scene.band_names == ["blue", "green", "red", "nir"]
    band_map = default_band_map(scene.band_names)
    assert band_map == [2, 1, 0, None]
    assert [scene.band_indexes[i] for i in rgb_bands(band_map)] == [3, 2, 1]  # red is band 3
    assert quicklook_bands(scene, band_map) == [3, 2, 1]


def test_rgb_colour_interpretation_names_undescribed_bands(tmp_path):
    path = _interpreted(
        write_raster(tmp_path / "bgr.tif", texture(16, 16, 3)),
        ColorInterp.blue,
        ColorInterp.green,
        ColorInterp.red,
    )
    assert describe_scene(path).band_names == ["blue", "green", "red"]
    scene = describe_scene(path, ["red", "green", "blue"])
    assert scene.band_indexes == [3, 2, 1]
    assert default_band_map(scene.band_names) == [0, 1, 2]
    assert describe_scene(path, ["b1", "b3"]).band_indexes == [1, 3]  # the old names still select


def test_sensor_band_names_are_not_guessed_and_alpha_stays_out(tmp_path):
    path = write_raster(tmp_path / "l8.tif", texture(16, 16, 3), descriptions=["B4", "B3", "B2"])
    assert band_map_by_name(describe_scene(path).band_names) is None  # B4 is red on Landsat 8 only
    assert default_band_map(["B4", "B3", "B2"]) == [0, 1, 2]  # the documented fallback: the first three
    alpha = np.full((16, 16), 255, np.uint8)
    rgba = write_raster(tmp_path / "rgba.tif", texture(16, 16, 3).astype(np.uint8), alpha=alpha)
    _interpreted(rgba, ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
    assert describe_scene(rgba).band_names == ["red", "green", "blue"]


def test_a_description_wins_over_colour_interpretation(tmp_path):
    path = write_raster(tmp_path / "s.tif", texture(16, 16, 3), descriptions=["red", "", ""])
    _interpreted(path, ColorInterp.gray, ColorInterp.red, ColorInterp.blue)
    assert describe_scene(path).band_names == ["red", "b2", "blue"]  # not "red" twice


def test_quicklook_bands_explicit_choice(tmp_path):
    path = write_raster(tmp_path / "s.tif", texture(16, 16, 4), descriptions=["B2", "B3", "B4", "B8"])
    scene = describe_scene(path, [1, 2, 3])
    assert quicklook_bands(scene, [0, 1, 2], ["B4", "B3", "B2"]) == [3, 2, 1]
    assert quicklook_bands(scene, [0, 1, 2], [4]) == [4]  # any band of the scene, grey
    with pytest.raises(UserError, match="--quicklook-bands"):
        quicklook_bands(scene, [0, 1, 2], [4, 3])
    with pytest.raises(UserError, match=r"--quicklook-bands or predict\.quicklook_bands"):
        quicklook_bands(scene, [0, 1, 2], ["red", "green", "blue"])
