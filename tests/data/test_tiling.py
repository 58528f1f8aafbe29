"""`rsseg tile`: chips are georeferenced copies of their windows, the manifest describes them exactly."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsseg_cli.config import load_config, schema
from rsseg_cli.data.tiling import tile_scenes
from tests.conftest import write_raster

CUSTOM_CRS = "+proj=tmerc +lat_0=0 +lon_0=15.5 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"


def read_chips(out):
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    table = pd.read_csv(out / "chips.csv", keep_default_na=False)
    return meta, table


def tile(scene, out, *sets, labels=True, **kw):
    cfg = load_config(overrides=list(sets))
    return tile_scenes([scene.image], [scene.labels] if labels else [], out, cfg, **kw)


def test_chips_are_exact_georeferenced_windows(make_scene, tmp_path):
    scene = make_scene(300, 400, bands=3)
    out = tmp_path / "data"
    result = tile(scene, out, "tile.chip_size=64", "tile.max_nodata=1.0", "tile.split.fractions={train: 1.0}")
    meta, table = read_chips(out)
    assert result.chips == len(table) > 0
    assert meta["chip_size"] == 64 and meta["stride"] == 64 and meta["dtype"] == "uint16"
    assert [b["index"] for b in meta["bands"]] == [1, 2, 3]
    assert meta["scenes"]["scene"]["epsg"] == 32633
    with rasterio.open(scene.image) as src:
        scene_tf = src.transform
    for row in table.itertuples():
        with rasterio.open(out / row.image) as chip:
            window = Window(row.col, row.row, 64, 64)
            assert chip.transform == window_transform(window, scene_tf)
            assert chip.crs == CRS.from_epsg(32633)
            data = chip.read()
            valid = chip.dataset_mask() > 0
        h = min(64, 300 - row.row)
        w = min(64, 400 - row.col)
        np.testing.assert_array_equal(
            data[:, :h, :w], scene.data[:, row.row : row.row + h, row.col : row.col + w]
        )
        assert valid[:h, :w].all() and not valid[h:, :].any() and not valid[:, w:].any()
        assert math.isclose(row.valid_fraction, h * w / 64**2, rel_tol=1e-5)
        with rasterio.open(out / row.label) as lab:
            mask = lab.read(1)
            assert lab.nodata == 255 and lab.colormap(1)[0][:3] is not None
        np.testing.assert_array_equal(
            mask[:h, :w], scene.classes[row.row : row.row + h, row.col : row.col + w]
        )
        assert (mask[h:, :] == 255).all() and (mask[:, w:] == 255).all()
        counts = np.bincount(mask.ravel(), minlength=256)
        assert [getattr(row, f"px_{k}") for k in range(4)] == counts[:4].tolist()
        assert row.ignore_pixels == counts[255]


def test_manifest_gpkg_matches_csv_and_chip_bounds(make_scene, tmp_path):
    scene = make_scene(256, 256)
    out = tmp_path / "data"
    tile(scene, out, "tile.chip_size=64")
    gdf = gpd.read_file(out / "chips.gpkg", layer="chips")
    _, table = read_chips(out)
    assert gdf.crs.to_epsg() == 32633
    assert list(gdf["id"]) == list(table["id"])
    assert {"id", "scene", "split", "labeled", "valid_fraction", "px_0"} <= set(gdf.columns)
    for geom, image in zip(gdf.geometry, gdf["image"]):
        with rasterio.open(out / image) as chip:
            assert np.allclose(geom.bounds, tuple(chip.bounds))


def test_statistics_match_numpy_over_valid_pixels(make_scene, tmp_path):
    scene = make_scene(200, 260, bands=2, nodata=None)
    # Make a nodata region the statistics must leave out.
    data = scene.data.copy()
    data[:, :30, :40] = 0
    write_raster(scene.image, data, nodata=0)
    out = tmp_path / "data"
    tile(scene, out, "tile.chip_size=64", "tile.max_nodata=1.0")
    stats = yaml.safe_load((out / "dataset.yaml").read_text())["statistics"]
    valid = (data != 0).all(axis=0)
    pixels = data[:, valid].astype(np.float64)
    assert stats["valid_pixels"] == valid.sum()
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats["p2"], np.percentile(pixels, 2, axis=1, method="inverted_cdf"))
    np.testing.assert_allclose(stats["p98"], np.percentile(pixels, 98, axis=1, method="inverted_cdf"))


def test_statistics_do_not_double_count_overlap(make_scene, tmp_path):
    scene = make_scene(128, 128, bands=1)
    out = tmp_path / "data"
    tile(scene, out, "tile.chip_size=64", "tile.overlap=32", "tile.max_nodata=1.0")
    stats = yaml.safe_load((out / "dataset.yaml").read_text())["statistics"]
    assert stats["valid_pixels"] == 128 * 128
    assert stats["mean"][0] == pytest.approx(scene.data.mean(), rel=1e-6)


@pytest.mark.parametrize(
    ("edge", "expected_cols"),
    [("pad", [0, 64, 128]), ("snap", [0, 64, 106]), ("drop", [0, 64])],
)
def test_edge_policies(make_scene, tmp_path, edge, expected_cols):
    scene = make_scene(64, 170)
    out = tmp_path / "data"
    tile(
        scene,
        out,
        "tile.chip_size=64",
        f"tile.edge={edge}",
        "tile.max_nodata=1.0",
        "tile.split.fractions={train: 1.0}",
    )
    _, table = read_chips(out)
    assert sorted(table["col"]) == expected_cols
    if edge == "snap":
        with rasterio.open(out / table.sort_values("col")["image"].iloc[-1]) as chip:
            assert (chip.dataset_mask() > 0).all()
            np.testing.assert_array_equal(chip.read(), scene.data[:, :, 106:170])


def test_max_nodata_skips_mostly_empty_chips_unless_they_hold_labels(make_scene, tmp_path):
    scene = make_scene(64, 200)
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.max_nodata=0.5", "tile.split.fractions={train: 1.0}"]
    )
    # The last window holds 8 of 64 columns: 87.5 % padding. Unlabeled, it is skipped ...
    result = tile_scenes([], [], tmp_path / "u", cfg, unlabeled=[scene.image])
    assert result.dropped == {"too many invalid pixels": 1}
    assert sorted(read_chips(tmp_path / "u")[1]["col"]) == [0, 64, 128]
    # ... but its labels would be lost: labeled, it is kept.
    result = tile_scenes([scene.image], [scene.labels], tmp_path / "l", cfg)
    assert result.dropped == {}
    _, table = read_chips(tmp_path / "l")
    assert sorted(table["col"]) == [0, 64, 128, 192]
    assert table[table.col == 192].iloc[0]["labeled"]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_dtypes_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((3, 96, 96)) * 100 + 1).astype(dtype)
    nodata = {"uint8": 0, "int16": -32768, "float32": float("nan")}[dtype]
    data[:, :10, :] = nodata
    if dtype == "int16":
        data[:, 50:, :] -= 200  # negative values must survive
    image = write_raster(tmp_path / "s.tif", data, nodata=nodata)
    labels = write_raster(tmp_path / "l.tif", np.ones((96, 96), np.uint8), nodata=255)
    out = tmp_path / "data"
    cfg = load_config(
        overrides=["tile.chip_size=32", "tile.max_nodata=1.0", "tile.split.fractions={train: 1.0}"]
    )
    tile_scenes([image], [labels], out, cfg)
    meta, table = read_chips(out)
    assert meta["dtype"] == dtype
    first = table[(table.row == 0) & (table.col == 0)].iloc[0]
    with rasterio.open(out / first.image) as chip:
        assert chip.dtypes[0] == dtype
        np.testing.assert_array_equal(chip.read()[:, 10:, :], data[:, 10:32, :32])
        assert not (chip.dataset_mask()[:10] > 0).any()
    with rasterio.open(out / first.label) as lab:
        assert (lab.read(1)[:10] == 255).all() and (lab.read(1)[10:] == 0).all()  # value 1 -> class id 0
    assert math.isfinite(meta["statistics"]["mean"][0])


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        ("EPSG:4326", from_origin(15.0, 47.0, 1e-5, 1e-5)),
        (CUSTOM_CRS, from_origin(500000.0, 5200000.0, 2.0, 2.0)),
    ],
    ids=["geographic", "no-epsg"],
)
def test_crs_variants(make_scene, tmp_path, crs, transform):
    scene = make_scene(128, 128, crs=crs, transform=transform)
    out = tmp_path / "data"
    tile(scene, out, "tile.chip_size=64")
    meta, table = read_chips(out)
    expected = CRS.from_user_input(crs)
    assert CRS.from_wkt(meta["scenes"]["scene"]["crs"]) == expected
    for image in table["image"]:
        with rasterio.open(out / image) as chip:
            assert chip.crs == expected
    gdf = gpd.read_file(out / "chips.gpkg")
    assert CRS.from_wkt(gdf.crs.to_wkt()) == expected
    if crs == CUSTOM_CRS:
        assert meta["scenes"]["scene"]["epsg"] is None


def test_internal_mask_and_alpha_band_define_validity(tmp_path):
    data = np.full((3, 64, 128), 7, np.uint8)
    mask = np.ones((64, 128), bool)
    mask[:, :64] = False  # half the scene masked
    labels = write_raster(tmp_path / "l.tif", np.zeros((64, 128), np.uint8), nodata=255)
    for kind in ("mask", "alpha"):
        if kind == "mask":
            image = write_raster(tmp_path / f"{kind}.tif", data, mask=mask)
        else:
            image = write_raster(tmp_path / f"{kind}.tif", data, alpha=mask.astype(np.uint8) * 255)
        out = tmp_path / kind
        cfg = load_config(overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}"])
        result = tile_scenes([image], [labels], out, cfg)
        meta, table = read_chips(out)
        assert result.chips == 1 and table.iloc[0].col == 64  # the masked chip was skipped
        assert len(meta["bands"]) == 3  # the alpha band is a mask, not a band


def test_nonzero_nodata_value(tmp_path):
    data = np.full((2, 64, 64), 100, np.uint16)
    data[:, :, :16] = 65535
    image = write_raster(tmp_path / "s.tif", data, nodata=65535)
    labels = write_raster(tmp_path / "l.tif", np.zeros((64, 64), np.uint8), nodata=255)
    out = tmp_path / "data"
    tile_scenes(
        [image],
        [labels],
        out,
        load_config(overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}"]),
    )
    _, table = read_chips(out)
    with rasterio.open(out / table.iloc[0].image) as chip:
        valid = chip.dataset_mask() > 0
    assert not valid[:, :16].any() and valid[:, 16:].all()
    with rasterio.open(out / table.iloc[0].label) as lab:
        assert (lab.read(1)[:, :16] == 255).all()
    assert table.iloc[0].valid_fraction == pytest.approx(0.75)


@pytest.mark.parametrize("bands", [[3, 1], ["b3", "b1"]])
def test_band_selection_and_order(make_scene, tmp_path, bands):
    scene = make_scene(64, 64, bands=3)
    out = tmp_path / "data"
    cfg = load_config(
        overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}"], cli={"tile": {"bands": bands}}
    )
    tile_scenes([scene.image], [scene.labels], out, cfg)
    meta, table = read_chips(out)
    assert [b["index"] for b in meta["bands"]] == [3, 1]
    with rasterio.open(out / table.iloc[0].image) as chip:
        np.testing.assert_array_equal(chip.read(), scene.data[[2, 0]])


def test_unlabeled_scenes_give_unlabeled_training_chips(make_scene, tmp_path):
    a = make_scene(128, 128, name="a")
    b = make_scene(128, 128, name="b", transform=from_origin(600000.0, 5500000.0, 1.0, 1.0))
    out = tmp_path / "data"
    cfg = load_config(overrides=["tile.chip_size=64"])
    tile_scenes([a.image], [a.labels], out, cfg, unlabeled=[b.image])
    meta, table = read_chips(out)
    from_b = table[table.scene == "b"]
    assert len(from_b) == 4
    assert not from_b["labeled"].any() and (from_b["label"] == "").all()
    assert (from_b["split"] == "train").all()
    assert meta["scenes"]["b"]["labels"] is None


def test_same_seed_same_dataset_other_seed_other_split(tmp_path):
    from rsseg_cli.synthetic import generate_sample

    sample = generate_sample(tmp_path / "s", height=256, width=256, seed=3)
    tables = []
    for run, seed in enumerate([5, 5, 6]):
        out = tmp_path / f"d{run}"
        cfg = load_config(overrides=["tile.chip_size=32", "tile.split.block_size=1", f"seed={seed}"])
        tile_scenes([sample.scene], [sample.labels], out, cfg)
        tables.append(pd.read_csv(out / "chips.csv"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert not tables[0]["split"].equals(tables[2]["split"])


def test_block_splits_do_not_touch_and_are_stratified(tmp_path):
    from rsseg_cli.synthetic import generate_sample

    sample = generate_sample(tmp_path / "s", height=1024, width=1024, seed=0)
    out = tmp_path / "data"
    cfg = load_config(
        overrides=[
            "tile.chip_size=64",
            "tile.split.method=blocks",
            "tile.split.block_size=2",
            "tile.split.gap=8",
        ]
    )
    tile_scenes([sample.scene], [sample.labels], out, cfg)
    gdf = gpd.read_file(out / "chips.gpkg")
    report = json.loads((out / "split_report.json").read_text())
    assert report["leakage_check"]["passed"] and report["dropped_for_gap"] > 0
    # Independent check: every pair of chips from different splits is more than 8 px apart.
    for split in ("val", "test"):
        mine = gdf[gdf.split == split].geometry.union_all()
        others = gdf[gdf.split != split].geometry.union_all()
        assert mine.distance(others) > 8.0
    # Stratified: every class with at least 1 % of the labeled pixels appears in val and test.
    px = np.array([report["splits"][s]["class_pixels"] for s in ("train", "val", "test")], float)
    share = px.sum(axis=0) / px.sum()
    for k in np.flatnonzero(share >= 0.01):
        assert px[1, k] > 0 and px[2, k] > 0, f"class {k} missing from val or test"
    # Labeled chips split roughly 80/10/10.
    shares = [report["splits"][s]["labeled_share"] for s in ("train", "val", "test")]
    assert shares[0] > 0.6 and 0.04 < shares[1] < 0.2 and 0.04 < shares[2] < 0.2


def test_resolved_config_saved_beside_dataset(make_scene, tmp_path):
    scene = make_scene(128, 128)
    out = tmp_path / "data"
    cfg = load_config(overrides=["tile.chip_size=64", "tile.overlap=16"])
    tile_scenes([scene.image], [scene.labels], out, cfg)
    saved = schema().model_validate(yaml.safe_load((out / "config.yaml").read_text()))
    assert saved == cfg


def test_class_names_and_colours_recovered_from_label_tag(tmp_path):
    from rsseg_cli.synthetic import SAMPLE_CLASSES, generate_sample

    sample = generate_sample(tmp_path / "s", height=256, width=256)
    out = tmp_path / "data"
    tile_scenes([sample.scene], [sample.labels], out, load_config(overrides=["tile.chip_size=64"]))
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    by_id = {c["id"]: c for c in SAMPLE_CLASSES}
    for c in meta["classes"]:
        value = c["value"] if c["value"] is not None else c["id"]
        assert c["name"] == by_id[value]["name"]
        assert c["color"].lower() == by_id[value]["color"].lower()


def test_cli_tile_logs_plain_progress_and_summary(make_scene, tmp_path, cli, monkeypatch):
    scene = make_scene(128, 128)
    monkeypatch.chdir(tmp_path)
    result = cli("tile", scene.image, "--labels", scene.labels, "--chip-size", "64")
    assert result.code == 0, result.err
    assert (tmp_path / "data" / "dataset.yaml").exists()
    assert "tile: started" in result.err and "chips/s" in result.err
    assert "leakage check" in result.err
