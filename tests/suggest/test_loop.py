"""The active-learning loop end to end, through the CLI, as the README walks it:
digitized polygons -> tile -> train -> suggest -> the analyst labels the squares (here: the class map,
vectorized inside each square) -> tile again with old + new polygons and the squares as label areas ->
train --init-from -> suggest again, away from everything labeled so far."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from shapely.geometry import shape

from rsseg_cli.synthetic import generate_sample
from rsseg_cli.synthetic.analyst import digitize_polygons
from rsseg_cli.synthetic.classes import SAMPLE_CLASSES
from tests.helpers import TINY_TRAIN

CHIP = 32


def oracle_polygons(classmap, squares: gpd.GeoDataFrame, out):
    """What an analyst digitizes in QGIS: every square covered by class polygons (field `class`: names)."""
    names = {c["id"]: c["name"] for c in SAMPLE_CLASSES}
    with rasterio.open(classmap) as src:
        rows = []
        for geom in squares.geometry:
            window = rasterio.windows.from_bounds(*geom.bounds, transform=src.transform).round_offsets()
            window = rasterio.windows.Window(window.col_off, window.row_off, CHIP, CHIP)
            values = src.read(1, window=window)
            for poly, value in rasterio.features.shapes(values, transform=src.window_transform(window)):
                if value != 255:
                    rows.append({"class": names[int(value)], "geometry": shape(poly)})
        frame = gpd.GeoDataFrame(rows, crs=src.crs)
    frame.to_file(out)
    return out


def test_the_loop(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sample = generate_sample(tmp_path / "sample", height=256, width=256, seed=3)
    first = digitize_polygons(sample.labels, tmp_path / "labels.gpkg", 14, seed=1)
    classes = tmp_path / "classes.yaml"
    classes.write_text(
        json.dumps({"classes": [{k: c[k] for k in ("id", "name", "color")} for c in SAMPLE_CLASSES]})
    )
    common = ["--chip-size", CHIP, "--config", classes, "--label-field", "class", "--set", "tile.split.method=scene",
              "--keep-incomplete"]  # fmt: skip
    train = [x for s in [*TINY_TRAIN, "train.crop=32", "train.iterations=6"] for x in ("--set", s)]

    assert cli("tile", sample.scene, "--labels", first, "--out", "data1", *common).code == 0
    r = cli("train", "--data", "data1", "--out", "run1", "--method", "supervised", "--no-val", *train)
    assert r.code == 0, r.out + r.err
    r = cli("suggest", sample.scene, "--checkpoint", "run1/checkpoints/best.pt", "--exclude", "data1",
            "--budget", "3", "--out", "round1.gpkg")  # fmt: skip
    assert r.code == 0, r.out + r.err
    squares = gpd.read_file(tmp_path / "round1.gpkg", layer="suggestions")
    assert len(squares) == 3
    chips1 = pd.read_csv(tmp_path / "data1/chips.csv")
    labeled1 = chips1[chips1["labeled"]]
    for s in squares.itertuples():  # never a chip already labeled
        assert not ((labeled1["row"] == s.row) & (labeled1["col"] == s.col)).any()

    new = oracle_polygons(sample.labels, squares, tmp_path / "round1_labels.gpkg")
    r = cli("tile", sample.scene, "--labels", f"{first}+{new}", "--label-areas", "round1.gpkg", "--out", "data2",
            *common)  # fmt: skip
    assert r.code == 0, r.out + r.err
    chips2 = pd.read_csv(tmp_path / "data2/chips.csv")
    for s in squares.itertuples():  # each square is one chip now, labeled all over
        chip = chips2[(chips2["row"] == s.row) & (chips2["col"] == s.col)].iloc[0]
        assert chip["labeled"] and chip["ignore_pixels"] == 0
    assert chips2["labeled"].sum() >= labeled1.shape[0] + 3  # the earlier labels still count

    r = cli("train", "--data", "data2", "--out", "run2", "--method", "supervised", "--no-val",
            "--init-from", "run1/checkpoints/best.pt", *train)  # fmt: skip
    assert r.code == 0, r.out + r.err
    assert json.loads((tmp_path / "run2/run.json").read_text())["init_from"].endswith("best.pt")

    r = cli("suggest", sample.scene, "--checkpoint", "run2/checkpoints/best.pt", "--exclude", "data2",
            "--budget", "3", "--out", "round2.gpkg", "--no-quicklook")  # fmt: skip
    assert r.code == 0, r.out + r.err
    again = gpd.read_file(tmp_path / "round2.gpkg", layer="suggestions")
    union = shapely.union_all(list(squares.geometry))
    assert all(g.intersection(union).area == 0 for g in again.geometry)
    assert np.isfinite(again["score"]).all()
