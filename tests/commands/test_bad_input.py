"""Bad input stops with a one-paragraph message that says how to fix it, exit code 2 and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from rasterio.transform import from_origin
from shapely.geometry import box

from tests.commands.helpers import assert_user_error
from tests.conftest import write_raster


def test_not_a_raster(cli, tmp_path):
    fake = tmp_path / "scene.tif"
    fake.write_text("this is not a GeoTIFF")
    assert_user_error(cli("tile", fake, "--out", tmp_path / "d"), "not a raster", "GeoTIFF")


def test_missing_file(cli, tmp_path):
    assert_user_error(cli("tile", tmp_path / "nope.tif", "--out", tmp_path / "d"), "does not exist")


def test_scene_without_crs_is_refused_unless_pixel_space(cli, tmp_path, make_scene):
    image = write_raster(tmp_path / "photo.tif", np.ones((3, 64, 64), np.uint8), crs=None)
    labels = write_raster(tmp_path / "photo_l.tif", np.zeros((64, 64), np.uint8), crs=None)
    assert_user_error(
        cli("tile", image, "--labels", labels, "--out", tmp_path / "d"),
        "no coordinate reference",
        "--pixel-space",
    )
    ok = cli("tile", image, "--labels", labels, "--out", tmp_path / "d", "--pixel-space", "--chip-size", "32")
    assert ok.code == 0, ok.err
    import rasterio

    chip = next((tmp_path / "d" / "images").rglob("*.tif"))
    with rasterio.open(chip) as src:
        assert src.crs is None


def test_labels_on_another_grid(cli, tmp_path, make_scene):
    scene = make_scene(64, 64)
    shifted = write_raster(
        tmp_path / "shifted.tif",
        np.zeros((64, 64), np.uint8),
        transform=from_origin(500010.0, 5500000.0, 1.0, 1.0),
    )
    r = cli("tile", scene.image, "--labels", shifted, "--out", tmp_path / "d", "--chip-size", "32")
    assert_user_error(r, "not on the grid", "tile.labels.reproject=true")
    smaller = write_raster(tmp_path / "small.tif", np.zeros((60, 64), np.uint8))
    assert_user_error(
        cli("tile", scene.image, "--labels", smaller, "--out", tmp_path / "d", "--chip-size", "32"),
        "not on the grid",
    )


def test_label_values_outside_class_table(cli, tmp_path, make_scene):
    scene = make_scene(64, 64, k=4)  # label values 0..3
    cfg = tmp_path / "c.yaml"
    cfg.write_text("classes:\n  - {id: 0, name: a}\n  - {id: 1, name: b}\n")
    r = cli(
        "tile",
        scene.image,
        "--labels",
        scene.labels,
        "--config",
        cfg,
        "--out",
        tmp_path / "d",
        "--chip-size",
        "32",
    )
    assert_user_error(r, "values 2", "3 (", "not in the class table", "ignore_values")
    assert not (tmp_path / "d").exists()


def test_vector_labels_without_class_field(cli, tmp_path, make_scene):
    scene = make_scene(64, 64)
    frame = gpd.GeoDataFrame(
        {"kind": ["x"]}, geometry=[box(500000, 5499950, 500030, 5500000)], crs="EPSG:32633"
    )
    frame.to_file(tmp_path / "l.gpkg")
    r = cli(
        "tile", scene.image, "--labels", tmp_path / "l.gpkg", "--out", tmp_path / "d", "--chip-size", "32"
    )
    assert_user_error(r, "no 'class' field", "--label-field", "kind")
    r = cli(
        "tile",
        scene.image,
        "--labels",
        tmp_path / "l.gpkg",
        "--label-field",
        "klass",
        "--out",
        tmp_path / "d",
        "--chip-size",
        "32",
    )
    assert_user_error(r, "no field 'klass'", "kind")


def test_vector_values_outside_class_table(cli, tmp_path, make_scene):
    scene = make_scene(64, 64)
    frame = gpd.GeoDataFrame(
        {"class": ["water", "lava"]}, geometry=[box(500000, 5499950, 500030, 5500000)] * 2, crs="EPSG:32633"
    )
    frame.to_file(tmp_path / "l.gpkg")
    r = cli(
        "tile",
        scene.image,
        "--labels",
        tmp_path / "l.gpkg",
        "--set",
        "classes=[{id: 0, name: water}]",
        "--out",
        tmp_path / "d",
        "--chip-size",
        "32",
    )
    assert_user_error(r, "lava", "not in the class table")


def test_chip_larger_than_scene(cli, tmp_path, make_scene):
    scene = make_scene(50, 300)
    r = cli("tile", scene.image, "--labels", scene.labels, "--out", tmp_path / "d", "--chip-size", "64")
    assert_user_error(r, "larger than the scene", "at most 50")


def test_output_exists(cli, tmp_path, make_scene):
    scene = make_scene(64, 64)
    args = ["tile", scene.image, "--labels", scene.labels, "--out", tmp_path / "d", "--chip-size", "32"]
    assert cli(*args).code == 0
    before = (tmp_path / "d" / "dataset.yaml").read_text()
    assert_user_error(cli(*args), "already holds a dataset", "--overwrite")
    assert (tmp_path / "d" / "dataset.yaml").read_text() == before
    again = cli(*args, "--overwrite", "--chip-size", "64")
    assert again.code == 0, again.err
    assert "chip_size: 64" in (tmp_path / "d" / "dataset.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".d.")] == []


def test_output_folder_that_is_not_a_dataset(cli, tmp_path, make_scene):
    scene = make_scene(64, 64)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious.txt").write_text("keep me")
    r = cli("tile", scene.image, "--labels", scene.labels, "--out", tmp_path / "d", "--overwrite")
    assert_user_error(r, "not an rsseg dataset")
    assert (tmp_path / "d" / "precious.txt").exists()


def test_scenes_with_different_bands(cli, tmp_path, make_scene):
    a = make_scene(64, 64, bands=3, name="a")
    b = make_scene(64, 64, bands=4, name="b")
    r = cli(
        "tile",
        a.image,
        b.image,
        "--labels",
        a.labels,
        "--labels",
        b.labels,
        "--out",
        tmp_path / "d",
        "--chip-size",
        "32",
    )
    assert_user_error(r, "same bands", "tile.bands")


def test_bad_band_selection(cli, tmp_path, make_scene):
    scene = make_scene(64, 64, bands=3)
    assert_user_error(cli("tile", scene.image, "--bands", "5", "--out", tmp_path / "d"), "bands 1..3")
    assert_user_error(
        cli("tile", scene.image, "--bands", "nir", "--out", tmp_path / "d"), "'nir'", "b1, b2, b3"
    )


def test_more_labels_than_scenes(cli, tmp_path, make_scene):
    s = make_scene(64, 64)
    r = cli("tile", s.image, "--labels", s.labels, "--labels", s.labels, "--out", tmp_path / "d")
    assert_user_error(r, "2 label files were given for 1 scenes")


def test_bad_config_through_cli(cli, tmp_path, make_scene):
    s = make_scene(64, 64)
    assert_user_error(cli("tile", s.image, "--set", "tile.chip_sise=3"), "unknown key 'tile.chip_sise'")
    assert_user_error(cli("tile", s.image, "--edge", "wrap"), "tile.edge")


def test_usage_error_exit_code(cli):
    r = cli("tile", "--no-such-flag")
    assert r.code == 2 and "Traceback" not in r.err


# --------------------------------------------------------------------------------------------------
# Interruption: nothing half-written, and leftovers of a killed run are cleaned by the next run


def _start_slow_tile(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    rng = np.random.default_rng(0)
    image = write_raster(tmp_path / "big.tif", rng.integers(1, 999, (2, 1024, 1024)).astype(np.uint16))
    labels = write_raster(tmp_path / "big_l.tif", rng.integers(0, 3, (1024, 1024)).astype(np.uint8))
    out = tmp_path / "data"
    cmd = [
        sys.executable,
        "-m",
        "rsseg_cli",
        "tile",
        str(image),
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--chip-size",
        "16",
        "--workers",
        "1",
        "--set",
        "tile.compress=deflate",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        partial = list(tmp_path.glob(".data.partial-*"))
        if partial and len(list(partial[0].rglob("*.tif"))) > 20:
            return proc, out
        time.sleep(0.05)
    proc.kill()
    pytest.fail("tiling did not start writing chips")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_tile_leaves_nothing(tmp_path, sig):
    proc, out = _start_slow_tile(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Interrupted" in err
    assert not out.exists()
    assert list(tmp_path.glob(".data.*")) == []


def test_killed_tile_leftovers_are_removed_by_next_run(tmp_path, cli):
    proc, out = _start_slow_tile(tmp_path)
    proc.kill()
    proc.wait()
    assert not out.exists() and list(tmp_path.glob(".data.partial-*"))
    s = write_raster(tmp_path / "small.tif", np.ones((1, 64, 64), np.uint16))
    r = cli("tile", s, "--out", out, "--chip-size", "32")
    assert r.code == 0, r.err
    assert list(tmp_path.glob(".data.partial-*")) == []
