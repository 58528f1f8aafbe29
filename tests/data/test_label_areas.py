"""The active-learning round's labels: `--label-areas` (squares labeled completely) and `--labels A+B` (one
scene's polygons from several files)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import LineString, box

from tests.conftest import write_raster

X0, Y0 = 500000.0, 5500000.0  # the scene's top-left corner (1 m pixels, EPSG:32633)
CLASSES = "classes=[{id: 0, name: water}, {id: 1, name: forest}, {id: 2, name: building}]"


def px_box(r0: int, c0: int, r1: int, c1: int):
    """Rows r0..r1-1 and columns c0..c1-1 of the scene as a polygon in its CRS."""
    return box(X0 + c0, Y0 - r1, X0 + c1, Y0 - r0)


def gpkg(path, geoms, classes=None, crs="EPSG:32633"):
    data = {"class": classes} if classes is not None else {"name": [f"a{i}" for i in range(len(geoms))]}
    gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:32633").to_crs(crs).to_file(path)
    return path


@pytest.fixture
def round_files(tmp_path):
    """A 256 px scene (16 chips of 64 px); round 1 digitized water in chip (0, 0), round 2 a building inside
    the square the analyst was asked to label, chip (2, 2)."""
    scene = write_raster(tmp_path / "scene.tif", np.full((2, 256, 256), 50, np.uint16))
    round1 = gpkg(tmp_path / "round1.gpkg", [px_box(10, 10, 40, 40)], ["water"])
    round2 = gpkg(tmp_path / "round2.gpkg", [px_box(140, 140, 170, 170)], ["building"])
    areas = gpkg(tmp_path / "areas.gpkg", [px_box(128, 128, 192, 192)])
    return scene, round1, round2, areas


def tile(cli, tmp_path, scene, labels, *extra):
    out = tmp_path / "data"
    args = ["tile", scene, "--labels", labels, "--out", out, "--chip-size", "64"]
    args += ["--set", "tile.split.fractions={train: 1.0}", "--set", CLASSES, "--keep-incomplete", *extra]
    return cli(*args), out


def chips(out) -> pd.DataFrame:
    return pd.read_csv(out / "chips.csv", keep_default_na=False).set_index(["row", "col"])


def mask(out, table, row, col):
    with rasterio.open(out / table.loc[(row, col), "label"]) as src:
        return src.read(1)


def test_areas_give_background_inside_and_polygons_count_outside(round_files, tmp_path, cli):
    scene, round1, round2, areas = round_files
    r, out = tile(
        cli,
        tmp_path,
        scene,
        f"{round1}+{round2}",
        "--label-areas",
        areas,
        "--set",
        "tile.labels.background=1",
    )
    assert r.code == 0, r.err
    table = chips(out)
    square = mask(out, table, 128, 128)
    assert (square[12:42, 12:42] == 2).all()  # round 2's building
    building = np.zeros((64, 64), bool)
    building[12:42, 12:42] = True
    assert (square[~building] == 1).all()  # the rest of the labeled square: background (forest)
    first = mask(out, table, 0, 0)  # outside every area: round 1's water only, no background
    assert (first[10:40, 10:40] == 0).all()
    assert (first[:8] == 255).all() and (first[:, 42:] == 255).all()
    # chips outside every area and polygon stay unlabeled (the pool for the semi-supervised loss)
    assert not table.loc[(0, 192), "labeled"] and not table.loc[(192, 0), "labeled"]
    assert table.loc[(128, 128), "labeled"] and table.loc[(0, 0), "labeled"]
    assert table["labeled"].sum() == 2


def test_areas_without_background_leave_uncovered_pixels_unlabeled(round_files, tmp_path, cli):
    scene, round1, round2, areas = round_files
    r, out = tile(cli, tmp_path, scene, f"{round1}+{round2}", "--label-areas", areas)
    assert r.code == 0, r.err
    square = mask(out, chips(out), 128, 128)
    assert (square[12:42, 12:42] == 2).all()
    assert (square[:10] == 255).all() and (square[:, 44:] == 255).all()


def test_areas_in_another_crs_are_reprojected(round_files, tmp_path, cli):
    scene, _, round2, _ = round_files
    areas = gpkg(tmp_path / "areas4326.gpkg", [px_box(128, 128, 192, 192)], crs="EPSG:4326")
    r, out = tile(cli, tmp_path, scene, round2, "--label-areas", areas, "--set", "tile.labels.background=1")
    assert r.code == 0, r.err
    square = mask(out, chips(out), 128, 128)
    assert (square[2:-2, 2:12] == 1).all() and (square[12:42, 12:42] == 2).all()


def test_two_label_files_merge_and_without_areas_nothing_changes(round_files, tmp_path, cli):
    scene, round1, round2, _ = round_files
    r, out = tile(cli, tmp_path, scene, f"{round1}+{round2}", "--set", "tile.labels.background=1")
    assert r.code == 0, r.err
    table = chips(out)
    assert (mask(out, table, 0, 0)[10:40, 10:40] == 0).all()
    assert (mask(out, table, 128, 128)[12:42, 12:42] == 2).all()
    # no areas: the background fills every pixel no polygon covers, as before
    assert table["labeled"].all() and (mask(out, table, 0, 192) == 1).all()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: gpkg(p / "lines.gpkg", [LineString([(X0, Y0), (X0 + 50, Y0 - 50)])]), "must be polygons"),
        (
            lambda p: gpkg(p / "far.gpkg", [box(X0 + 9e4, Y0 - 9e4, X0 + 9e4 + 64, Y0 - 9e4 + 64)]),
            "overlap none",
        ),
        (lambda p: p / "missing.gpkg", "do not exist"),
    ],
)
def test_bad_areas_files(round_files, tmp_path, cli, make, needle):
    scene, round1, _, _ = round_files
    r, out = tile(cli, tmp_path, scene, round1, "--label-areas", make(tmp_path))
    assert r.code == 2 and needle in r.err, r.err
    assert not (out / "chips.csv").exists()


def test_ambiguous_label_lists_are_refused(round_files, tmp_path, cli):
    scene, round1, _, _ = round_files
    raster = write_raster(tmp_path / "labels.tif", np.zeros((256, 256), np.uint8))
    r, _ = tile(cli, tmp_path, scene, f"{raster}+{round1}")
    assert r.code == 2 and "Raster labels stay one file per scene" in r.err, r.err
    r, _ = tile(cli, tmp_path, scene, raster, "--label-areas", tmp_path / "round1.gpkg")
    assert r.code == 2 and "applies to vector labels" in r.err, r.err
