"""Vector labels (reprojection, class field, all-touched, ignore buffer) and raster labels on other grids."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from rsseg_cli.config import load_config
from rsseg_cli.data.tiling import tile_scenes
from tests.conftest import write_raster

X0, Y0 = 500000.0, 5500000.0
CLASSES = "classes=[{id: 0, name: water}, {id: 1, name: forest}, {id: 2, name: building}]"


@pytest.fixture
def scene(tmp_path):
    return write_raster(tmp_path / "scene.tif", np.full((2, 128, 128), 50, np.uint16))


def polygons(tmp_path, crs="EPSG:4326", field="landcover", values=("water", "building")):
    """Two rectangles given in scene pixels, written in `crs`."""
    rects = [box(X0 + 10, Y0 - 60, X0 + 60, Y0 - 10), box(X0 + 70.25, Y0 - 120.25, X0 + 100.25, Y0 - 70.25)]
    frame = gpd.GeoDataFrame({field: list(values)}, geometry=rects, crs="EPSG:32633").to_crs(crs)
    path = tmp_path / "labels.gpkg"
    frame.to_file(path)
    return path


def only_label(out):
    table = pd.read_csv(out / "chips.csv", keep_default_na=False)
    with rasterio.open(out / table.iloc[0].label) as lab:
        return lab.read(1)


def run(scene, labels, out, *sets):
    cfg = load_config(overrides=["tile.chip_size=128", "tile.split.fractions={train: 1.0}", CLASSES, *sets])
    return tile_scenes([scene], [labels], out, cfg)


def test_vector_labels_in_4326_over_utm_scene(scene, tmp_path):
    labels = polygons(tmp_path)
    run(scene, labels, tmp_path / "data", "tile.labels.field=landcover")
    mask = only_label(tmp_path / "data")
    # Rectangle 1 covers rows 10..59, cols 10..59 (pixel centres inside), class water (0).
    assert (mask[12:58, 12:58] == 0).all()
    assert (mask[75:115, 75:95] == 2).all()  # building
    # Outside every polygon: unlabeled (ignore) by default.
    assert (mask[:8, :] == 255).all() and (mask[:, 105:] == 255).all()
    inside = (mask == 0).sum()
    assert abs(inside - 50 * 50) <= 2 * 50  # reprojection moves edges by at most about a pixel


def test_background_class_and_field_by_id(scene, tmp_path):
    labels = polygons(tmp_path, field="class", values=("0", "2"))
    run(scene, labels, tmp_path / "data", "tile.labels.background=1")
    mask = only_label(tmp_path / "data")
    assert (mask[:8, :] == 1).all()  # background forest
    assert (mask[20:50, 20:50] == 0).all() and (mask[80:110, 75:95] == 2).all()


def test_all_touched_burns_more_pixels(scene, tmp_path):
    labels = polygons(tmp_path, crs="EPSG:32633")
    run(scene, labels, tmp_path / "a", "tile.labels.field=landcover")
    run(scene, labels, tmp_path / "b", "tile.labels.field=landcover", "tile.labels.all_touched=true")
    plain, touched = only_label(tmp_path / "a"), only_label(tmp_path / "b")
    # The second rectangle sits off the pixel grid: all-touched adds a one-pixel ring.
    assert (touched == 2).sum() > (plain == 2).sum()
    assert (plain == 2).sum() == 30 * 50
    assert (touched == 2).sum() == 31 * 51


def test_ignore_buffer_along_edges(scene, tmp_path):
    labels = polygons(tmp_path, crs="EPSG:32633")
    run(scene, labels, tmp_path / "data", "tile.labels.field=landcover", "tile.labels.ignore_buffer=2")
    mask = only_label(tmp_path / "data")
    assert (mask[10:12, 20:50] == 255).all()  # pixel centres within 2 px of the top edge
    assert (mask[15:55, 15:55] == 0).all()  # the interior keeps its class


def test_burn_order_keeps_small_polygons_visible(scene, tmp_path):
    big = box(X0, Y0 - 128, X0 + 128, Y0)
    small = box(X0 + 40, Y0 - 80, X0 + 80, Y0 - 40)
    frame = gpd.GeoDataFrame({"class": ["building", "forest"]}, geometry=[small, big], crs="EPSG:32633")
    frame.to_file(tmp_path / "nested.gpkg")
    run(scene, tmp_path / "nested.gpkg", tmp_path / "data")
    mask = only_label(tmp_path / "data")
    assert (mask[45:75, 45:75] == 2).all() and mask[5, 5] == 1


def test_raster_labels_on_other_grid_are_resampled_when_asked(tmp_path):
    scene = write_raster(tmp_path / "scene.tif", np.full((1, 128, 128), 9, np.uint16))
    coarse = np.zeros((64, 64), np.uint8)
    coarse[:, 32:] = 1
    labels = write_raster(
        tmp_path / "coarse.tif", coarse, transform=from_origin(X0, Y0, 2.0, 2.0), nodata=255
    )
    cfg = load_config(
        overrides=["tile.chip_size=128", "tile.split.fractions={train: 1.0}", "tile.labels.reproject=true"]
    )
    tile_scenes([scene], [labels], tmp_path / "data", cfg)
    mask = only_label(tmp_path / "data")
    assert (mask[:, :64] == 0).all() and (mask[:, 64:] == 1).all()


def test_ignore_values_become_ignore_index(tmp_path):
    scene = write_raster(tmp_path / "scene.tif", np.full((1, 64, 64), 9, np.uint16))
    lab = np.ones((64, 64), np.uint8)
    lab[:, :10] = 0  # LoveDA-style "no data" label
    lab[:, 40:] = 2
    labels = write_raster(tmp_path / "l.tif", lab)
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}", "tile.labels.ignore_values=[0]"]
    )
    tile_scenes([scene], [labels], tmp_path / "data", cfg)
    import yaml

    meta = yaml.safe_load((tmp_path / "data" / "dataset.yaml").read_text())
    assert [c["value"] for c in meta["classes"]] == [1, 2]  # ids 0, 1 from values 1, 2
    mask = only_label(tmp_path / "data")
    assert (mask[:, :10] == 255).all() and (mask[:, 10:40] == 0).all() and (mask[:, 40:] == 1).all()
