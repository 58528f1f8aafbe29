"""The label-aware split (the default) on scenes shaped like an analyst's: a few digitized polygons, a small
scene with a ragged nodata edge. Checks are made on the written chips, independently of the split code."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from scipy import ndimage

from rsseg_cli.config import load_config
from rsseg_cli.data.tiling import tile_scenes
from rsseg_cli.synthetic import generate_sample
from rsseg_cli.synthetic.analyst import digitize_polygons, ragged_edge
from tests.helpers import TINY_TRAIN


@pytest.fixture(scope="module")
def analyst(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("analyst")
    sample = generate_sample(d / "sample", height=400, width=480, seed=3)
    return {
        "scene": sample.scene,
        "classmap": sample.labels,
        "polygons": digitize_polygons(sample.labels, d / "polygons.gpkg", 34, seed=1),
        "four": digitize_polygons(sample.labels, d / "four.gpkg", 4, seed=1),
        "one": digitize_polygons(sample.labels, d / "one.gpkg", 1, seed=1, half_size=(12, 14)),
        "ragged": ragged_edge(sample.scene, d / "ragged.tif", seed=2),
    }


def tile(scene, labels, out, *sets: str, **kwargs):
    cfg = load_config(overrides=["tile.chip_size=64", *sets])
    tile_scenes([scene], [labels], out, cfg, **kwargs)
    return json.loads((out / "split_report.json").read_text()), pd.read_csv(out / "chips.csv")


def split_classes(out: Path, table: pd.DataFrame, num_classes: int) -> dict[str, set[int]]:
    """The classes each split's label files hold."""
    found: dict[str, set[int]] = defaultdict(set)
    for row in table[table.labeled].itertuples():
        with rasterio.open(out / row.label) as src:
            values = np.unique(src.read(1))
        found[row.split].update(int(v) for v in values if v < num_classes)
    return found


def assert_labels_apart(out: Path, table: pd.DataFrame, num_classes: int, width: int = 1) -> None:
    """No labeled pixel of one split within `width` px of a labeled pixel of another (scene-wide maps)."""
    meta_h = int(table["row"].max() + table["height"].max())
    meta_w = int(table["col"].max() + table["width"].max())
    maps = {s: np.zeros((meta_h, meta_w), bool) for s in ("train", "val", "test")}
    for row in table[table.labeled].itertuples():
        with rasterio.open(out / row.label) as src:
            labeled = src.read(1) < num_classes
        maps[row.split][row.row : row.row + row.height, row.col : row.col + row.width] |= labeled
    for a in maps:
        grown = ndimage.maximum_filter(maps[a], size=2 * width + 1)
        for b in maps:
            if a != b:
                assert not (grown & maps[b]).any(), f"{a} labels within {width} px of {b} labels"


def test_sparse_polygons_keep_their_pixels_and_every_split_its_classes(analyst, tmp_path):
    out = tmp_path / "d"
    report, table = tile(analyst["scene"], analyst["polygons"], out)
    pixels = report["labeled_pixels"]
    assert pixels["kept_share"] >= 0.85, pixels
    assert report["leakage_check"]["passed"] and report["trainable"]["passed"]
    names = pixels["classes"]
    polygons = gpd.read_file(analyst["polygons"])["class"].value_counts()
    found = split_classes(out, table, len(names))
    for k, name in enumerate(names):
        assert k in found["train"], f"{name} missing from train"
        if polygons[name] >= 2:
            assert k in found["val"], f"{name} has {polygons[name]} polygons but none in val"
    assert_labels_apart(out, table, len(names))
    # Kept pixels per class agree with the label files (core pixels are each counted once).
    assert sum(pixels["kept"]) <= sum(pixels["total"])
    # The old default (blocks of chips, chips near another split dropped) keeps less of these labels.
    old, _ = tile(analyst["scene"], analyst["polygons"], tmp_path / "b", "tile.split.method=blocks",
                  keep_incomplete=True)  # fmt: skip
    assert old["labeled_pixels"]["kept_share"] < pixels["kept_share"]


def test_small_scene_with_ragged_nodata_edge_keeps_labels_along_the_edge(analyst, tmp_path):
    out = tmp_path / "d"
    report, table = tile(analyst["ragged"], analyst["classmap"], out)
    pixels = report["labeled_pixels"]
    assert pixels["kept_share"] >= 0.85, pixels
    assert report["trainable"]["passed"]
    # Windows mostly off the footprint are kept when they hold labels, skipped when they do not.
    assert report["skipped_windows"].get("too many invalid pixels", 0) > 0
    assert (table[table.labeled]["valid_fraction"] < 0.5).any()
    assert_labels_apart(out, table, len(pixels["classes"]))
    found = split_classes(out, table, len(pixels["classes"]))
    assert found["val"] == found["train"]  # dense labels: every class in val too


def test_a_gap_keeps_labels_of_different_splits_that_far_apart(analyst, tmp_path):
    out = tmp_path / "d"
    report, table = tile(analyst["scene"], analyst["classmap"], out, "tile.split.gap=6")
    assert report["leakage_check"]["passed"]
    assert "6 px" in report["leakage_check"]["rule"]
    assert_labels_apart(out, table, len(report["labeled_pixels"]["classes"]), width=6)


def test_four_polygons_are_cut_so_val_gets_some_and_the_report_says_so(analyst, tmp_path, capsys):
    out = tmp_path / "d"
    report, table = tile(analyst["scene"], analyst["four"], out)
    assert report["trainable"]["passed"]
    assert table[table.split == "val"]["labeled"].any()
    assert report["method_details"]["classes_cut_across_splits"]  # val pieces of train polygons: said
    # Windows holding two splits' labels give one chip per split, sharing the image file.
    shared = table.groupby("image")["split"].nunique()
    assert (shared > 1).any()
    assert_labels_apart(out, table, len(report["labeled_pixels"]["classes"]))
    from rsseg_cli.data.summary import print_tile_summary
    from rsseg_cli.data.tiling import TileResult

    print_tile_summary(TileResult(out, len(table), {}, {}, 1, 1.0))
    assert "optimistic" in " ".join(capsys.readouterr().err.split())


def test_an_untrainable_split_is_refused_unless_kept(analyst, tmp_path, cli):
    """One polygon cannot give train and val the same class without cutting it below the smallest block."""
    args = ["tile", analyst["scene"], "--labels", analyst["one"], "--chip-size", "64",
            "--set", "tile.split.block_size=1"]  # fmt: skip
    # Cutting stops at 16 px: a 25 px polygon becomes pieces, so first show it works...
    assert cli(*args, "--out", tmp_path / "ok").code == 0
    # ... and that the blocks method (whole chips) cannot: refused with the fix, nothing written.
    r = cli(*args, "--out", tmp_path / "no", "--set", "tile.split.method=blocks")
    text = " ".join(r.err.split())
    assert r.code == 2 and "cannot be trained" in text and "--keep-incomplete" in text, text
    assert "Traceback" not in text and not (tmp_path / "no").exists()
    r = cli(*args, "--out", tmp_path / "kept", "--set", "tile.split.method=blocks", "--keep-incomplete")
    assert r.code == 0 and (tmp_path / "kept" / "dataset.yaml").exists()
    report = json.loads((tmp_path / "kept" / "split_report.json").read_text())
    assert not report["trainable"]["passed"] and report["trainable"]["problems"]


def test_train_without_val_keeps_the_last_model(analyst, tmp_path, cli):
    data = tmp_path / "d"
    assert cli("tile", analyst["scene"], "--labels", analyst["polygons"], "--chip-size", "64", "--out", data,
               "--set", "tile.split.fractions={train: 1.0}").code == 0  # fmt: skip
    sets = [a for s in TINY_TRAIN for a in ("--set", s)]
    r = cli("train", "--data", data, "--out", tmp_path / "run", *sets)
    assert r.code == 2 and "--no-val" in " ".join(r.err.split())
    r = cli("train", "--data", data, "--out", tmp_path / "run", "--no-val", *sets)
    assert r.code == 0, r.err
    assert "nothing was validated" in " ".join(r.err.split())
    from rsseg_cli.engine.checkpoint import Checkpoint

    best = Checkpoint.read(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best.best["validated"] is False and best.best["step"] == 4  # the last step's model


def test_overlapping_scenes_keep_one_place_in_one_split(analyst, tmp_path):
    """Two dates of one place: a place labeled in both goes to one split in both."""
    cfg = load_config(overrides=["tile.chip_size=64"])
    out = tmp_path / "d"
    tile_scenes([analyst["scene"], analyst["ragged"]], [analyst["polygons"], analyst["polygons"]], out, cfg)
    table = pd.read_csv(out / "chips.csv")
    labeled = table[table.labeled]
    names = json.loads((out / "split_report.json").read_text())["labeled_pixels"]["classes"]
    where: dict[str, dict[tuple[int, int], str]] = defaultdict(dict)
    for row in labeled.itertuples():
        with rasterio.open(out / row.label) as src:
            rows, cols = np.nonzero(src.read(1) < len(names))
        for r, c in zip((rows + row.row).tolist()[::7], (cols + row.col).tolist()[::7]):
            where[row.scene][(r, c)] = row.split
    a, b = where.values()
    common = set(a) & set(b)
    assert common and all(a[p] == b[p] for p in common)
