"""Split methods: scenes, AOI polygons, overlapping scenes sharing blocks; the leakage rule."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
from rasterio.transform import from_origin
from shapely.geometry import box

from rsseg_cli.config import load_config
from rsseg_cli.data.tiling import tile_scenes
from rsseg_cli.errors import UserError

X0, Y0 = 500000.0, 5500000.0


def chips(out) -> pd.DataFrame:
    return pd.read_csv(out / "chips.csv", keep_default_na=False)


def test_split_by_scene_mapping_and_automatic(make_scene, tmp_path):
    scenes = [
        make_scene(128, 128, name=f"s{i}", transform=from_origin(X0 + 1000 * i, Y0, 1, 1)) for i in range(5)
    ]
    cfg = load_config(
        overrides=[
            "tile.chip_size=64",
            "tile.split.method=scene",
            "tile.split.scenes={s0: test}",
            "tile.split.fractions={train: 0.6, val: 0.2, test: 0.2}",
        ]
    )
    out = tmp_path / "data"
    tile_scenes([s.image for s in scenes], [s.labels for s in scenes], out, cfg)
    table = chips(out)
    per_scene = table.groupby("scene")["split"].agg(set)
    assert all(len(v) == 1 for v in per_scene)  # a scene is never split
    assert per_scene["s0"] == {"test"}
    assert {next(iter(v)) for v in per_scene} == {"train", "val", "test"}


def test_split_by_scene_unknown_name(make_scene, tmp_path):
    s = make_scene(64, 64)
    cfg = load_config(
        overrides=["tile.chip_size=32", "tile.split.method=scene", "tile.split.scenes={nope: val}"]
    )
    with pytest.raises(UserError, match="nope"):
        tile_scenes([s.image], [s.labels], tmp_path / "d", cfg)


def test_split_by_aoi(make_scene, tmp_path):
    s = make_scene(256, 256)
    # Left half train, right half val, in EPSG:4326 to exercise reprojection.
    aoi = gpd.GeoDataFrame(
        {"split": ["train", "val"]},
        geometry=[box(X0, Y0 - 256, X0 + 128, Y0), box(X0 + 128, Y0 - 256, X0 + 256, Y0)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")
    aoi.to_file(tmp_path / "aoi.gpkg")
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.split.method=aoi", f"tile.split.aoi={tmp_path / 'aoi.gpkg'}"]
    )
    out = tmp_path / "data"
    tile_scenes([s.image], [s.labels], out, cfg)
    table = chips(out)
    assert set(table[table.col < 128]["split"]) <= {"train"}
    assert set(table[table.col >= 128]["split"]) == {"val"}
    report = json.loads((out / "split_report.json").read_text())
    assert report["leakage_check"]["passed"]
    # Train chips touching the boundary were dropped for the gap, chips straddling nothing were kept.
    assert report["dropped"].get("buffer gap between splits", 0) > 0


def test_aoi_without_split_field(make_scene, tmp_path):
    s = make_scene(64, 64)
    gpd.GeoDataFrame({"x": [1]}, geometry=[box(X0, Y0 - 64, X0 + 64, Y0)], crs="EPSG:32633").to_file(
        tmp_path / "a.gpkg"
    )
    cfg = load_config(
        overrides=["tile.chip_size=32", "tile.split.method=aoi", f"tile.split.aoi={tmp_path / 'a.gpkg'}"]
    )
    with pytest.raises(UserError, match="'split' field"):
        tile_scenes([s.image], [s.labels], tmp_path / "d", cfg)


def test_overlapping_scenes_share_blocks(make_scene, tmp_path):
    """Two dates of the same place: a location gets the same split in both scenes."""
    a = make_scene(512, 512, name="date1")
    b = make_scene(512, 512, name="date2")
    cfg = load_config(overrides=["tile.chip_size=64", "tile.split.block_size=2"])
    out = tmp_path / "data"
    tile_scenes([a.image, b.image], [a.labels, b.labels], out, cfg)
    table = chips(out)
    one = table[table.scene == "date1"].set_index(["row", "col"])["split"]
    two = table[table.scene == "date2"].set_index(["row", "col"])["split"]
    both = one.index.intersection(two.index)
    assert len(both) > 10
    assert (one[both] == two[both]).all()
    assert set(one) == {"train", "val", "test"}
    report = json.loads((out / "split_report.json").read_text())
    assert report["leakage_check"]["passed"]


def test_scenes_in_different_crs_get_one_gpkg_layer_each(make_scene, tmp_path):
    import pyogrio

    a = make_scene(128, 128, name="utm33")
    b = make_scene(128, 128, name="utm32", crs="EPSG:32632")
    out = tmp_path / "data"
    tile_scenes([a.image, b.image], [a.labels, b.labels], out, load_config(overrides=["tile.chip_size=64"]))
    layers = dict(pyogrio.list_layers(out / "chips.gpkg"))
    assert set(layers) == {"chips_utm33", "chips_utm32"}
    assert gpd.read_file(out / "chips.gpkg", layer="chips_utm32").crs.to_epsg() == 32632


def test_aoi_chips_straddling_a_boundary_go_to_the_split_covering_most_of_them(make_scene, tmp_path):
    s = make_scene(256, 256)
    # Train left of x=100, val right of x=164: the chip at columns 64-128 is 56 % inside train, the one at
    # 128-192 only 44 % inside val.
    aoi = gpd.GeoDataFrame(
        {"split": ["train", "val"]},
        geometry=[box(X0, Y0 - 256, X0 + 100, Y0), box(X0 + 164, Y0 - 256, X0 + 256, Y0)],
        crs="EPSG:32633",
    )
    aoi.to_file(tmp_path / "aoi.gpkg")
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.split.method=aoi", f"tile.split.aoi={tmp_path / 'aoi.gpkg'}"]
    )
    out = tmp_path / "data"
    tile_scenes([s.image], [s.labels], out, cfg)
    table = chips(out)
    assert set(table[table.col == 64]["split"]) == {"train"} and len(table[table.col == 64]) == 4
    assert set(table[table.col == 192]["split"]) == {"val"}
    assert (table.col == 128).sum() == 0  # less than half inside any AOI
    assert json.loads((out / "split_report.json").read_text())["leakage_check"]["passed"]


def test_an_aoi_that_keeps_no_chip_is_a_clear_error(make_scene, tmp_path):
    s = make_scene(128, 128)
    small = gpd.GeoDataFrame(
        {"split": ["train"]}, geometry=[box(X0 + 5, Y0 - 20, X0 + 20, Y0 - 5)], crs="EPSG:32633"
    )
    small.to_file(tmp_path / "aoi.gpkg")
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.split.method=aoi", f"tile.split.aoi={tmp_path / 'aoi.gpkg'}"]
    )
    with pytest.raises(UserError, match=r"No chip was kept by the aoi split.*less than half inside"):
        tile_scenes([s.image], [s.labels], tmp_path / "data", cfg)
    assert not (tmp_path / "data").exists()
