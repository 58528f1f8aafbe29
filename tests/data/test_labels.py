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


def test_vector_labels_that_miss_the_scene_are_an_error_naming_both_extents(scene, tmp_path, cli):
    far = [box(X0 + 50000, Y0 - 500, X0 + 50500, Y0 - 100)]  # 50 km east of the 128 m scene
    gpd.GeoDataFrame({"class": ["water"]}, geometry=far, crs="EPSG:32633").to_crs("EPSG:4326").to_file(
        tmp_path / "far.gpkg"
    )
    r = cli(
        "tile", scene, "--labels", tmp_path / "far.gpkg", "--out", tmp_path / "data", "--chip-size", "128"
    )
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert "do not overlap" in text and "far.gpkg" in text and "Traceback" not in text
    assert "EPSG:4326" in text and "EPSG:32633" in text  # both CRSs
    assert "(500000, 5.49987e+06) - (500128, 5.5e+06)" in text  # the scene's extent
    assert "(550000" in text  # the labels' extent in the scene's CRS
    assert not (tmp_path / "data").exists()
    # Touching polygons are labels: one that overlaps by a few metres is enough.
    near = [box(X0 + 120, Y0 - 20, X0 + 500, Y0 - 10)]
    gpd.GeoDataFrame({"class": ["water"]}, geometry=near, crs="EPSG:32633").to_file(tmp_path / "near.gpkg")
    assert cli("tile", scene, "--labels", tmp_path / "near.gpkg", "--out", tmp_path / "d2",
               "--chip-size", "128", "--set", "tile.split.fractions={train: 1.0}").code == 0  # fmt: skip


def write_float_labels(path, classes, nodata_mask, **kw):
    data = classes.astype(np.float32)
    data[nodata_mask] = -99999.0
    return write_raster(path, data, nodata=-99999.0, **kw)


def test_float_label_raster_of_whole_numbers_is_read_as_integers(tmp_path, cli):
    scene = write_raster(tmp_path / "scene.tif", np.full((2, 128, 128), 50, np.uint16))
    classes = (np.mgrid[0:128, 0:128][1] // 43).astype(np.uint8)  # 0, 1, 2 in column bands
    hole = np.zeros((128, 128), bool)
    hole[:10, :10] = True
    labels = write_float_labels(tmp_path / "labels.tif", classes, hole)
    r = cli("tile", scene, "--labels", labels, "--out", tmp_path / "data", "--chip-size", "128",
            "--set", "tile.split.fractions={train: 1.0}", "--set", CLASSES)  # fmt: skip
    assert r.code == 0, r.err
    assert "read as integer" in " ".join(r.err.split())
    mask = only_label(tmp_path / "data")
    expected = classes.copy()
    expected[hole] = 255
    assert (mask == expected).all()


def test_float_label_raster_with_fractions_is_refused_listing_them(tmp_path, cli):
    scene = write_raster(tmp_path / "scene.tif", np.full((2, 128, 128), 50, np.uint16))
    classes = np.zeros((128, 128), np.float32)
    classes[5, 5], classes[6, 6], classes[100:, :] = 1.5, 2.25, 0.5
    labels = write_float_labels(tmp_path / "labels.tif", classes, np.zeros((128, 128), bool))
    r = cli("tile", scene, "--labels", labels, "--out", tmp_path / "data", "--chip-size", "128")
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert "not whole numbers" in text and "0.5, 1.5, 2.25" in text and "float32" in text
    assert f"{28 * 128 + 2:,} pixels" in text and "Traceback" not in text
    assert not (tmp_path / "data").exists()


def test_labels_in_an_equivalent_crs_on_the_same_grid_need_no_reprojection(tmp_path, cli):
    import pyproj

    scene = write_raster(tmp_path / "scene.tif", np.full((2, 128, 128), 50, np.uint16))
    doc = pyproj.CRS.from_epsg(32633).to_json_dict()
    doc.pop("id")
    no_code = pyproj.CRS.from_json_dict(doc).to_wkt()
    assert "32633" not in no_code
    classes = (np.mgrid[0:128, 0:128][0] // 43).astype(np.uint8)
    # The same grid written in another CRS spelling, with an origin off by a rounding error.
    tf = from_origin(X0 + 1e-7, Y0 - 1e-7, 1.0, 1.0)
    labels = write_raster(tmp_path / "labels.tif", classes, crs=no_code, transform=tf, nodata=255)
    r = cli("tile", scene, "--labels", labels, "--out", tmp_path / "data", "--chip-size", "128",
            "--set", "tile.split.fractions={train: 1.0}", "--set", CLASSES)  # fmt: skip
    assert r.code == 0, r.err
    assert (only_label(tmp_path / "data") == classes).all()
    # Half a pixel off is another grid.
    shifted = write_raster(
        tmp_path / "shifted.tif", classes, crs=no_code, transform=from_origin(X0 + 0.5, Y0, 1, 1)
    )
    r = cli("tile", scene, "--labels", shifted, "--out", tmp_path / "d2", "--chip-size", "128")
    assert r.code == 2 and "not on the grid" in r.err


def test_same_crs_compares_meaning_not_spelling():
    from rasterio.crs import CRS

    from rsseg_cli.geo.raster import same_crs

    utm = CRS.from_epsg(32633)
    assert same_crs(utm, CRS.from_proj4("+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs"))
    assert same_crs(CRS.from_epsg(4326), CRS.from_string("OGC:CRS84"))  # axis order aside
    assert not same_crs(utm, CRS.from_epsg(32634)) and not same_crs(utm, None) and same_crs(None, None)
