"""The command line as users run it: help, version, sample, demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.crs import CRS

from rsseg_cli import __version__


def test_help_lists_commands(cli):
    r = cli("--help")
    assert r.code == 0
    for command in ("tile", "train", "evaluate", "predict", "vectorize", "sample", "demo"):
        assert command in r.out


@pytest.mark.parametrize("command", ["tile", "train", "evaluate", "predict", "vectorize", "sample", "demo"])
def test_help_texts_are_clean(cli, command):
    """No type tags on switches (`--all-touched <bool>`), no deprecated spellings, schema defaults shown."""
    r = cli(command, "--help")
    assert r.code == 0
    assert "<bool>" not in r.out and "--help " in r.out
    for old in ("--overlap ", "--bands <int>"):
        assert old not in r.out
    if command in ("predict", "evaluate", "vectorize", "tile"):
        assert "--config" in r.out and "--set" in r.out


# Every flag of rsseg 0.1, which users' scripts may hold.
FLAGS_0_1 = {
    "tile": "--labels -l --unlabeled --out -o --config -c --set -s --chip-size --stride --overlap --edge --bands "
    "--max-nodata --label-field --all-touched --no-all-touched --reproject-labels --no-reproject-labels "
    "--pixel-space --no-pixel-space --workers --seed --overwrite --no-overwrite",
    "train": "--data --labeled --method --out -o --config -c --set -s --split-file --resume --no-resume "
    "--stop-after --device --precision --seed",
    "evaluate": "--checkpoint --data --split --out -o --json --device --precision --pred --labels --label-field "
    "--reproject-labels --no-reproject-labels --all-touched --no-all-touched --student",
    "predict": "--out -o --checkpoint --vector --probs --quicklook --overlap --batch-size --tta --window --bands "
    "--compress --sieve --min-area --simplify --fill-holes --classes --pixel-space --no-pixel-space --student "
    "--device --precision",
    "sample": "--size --bands --dtype --crs --resolution --nodata --seed --name",
    "demo": "--out -o --size --steps --overwrite --no-overwrite",
    "vectorize": "--out -o --probs --classes --sieve --min-area --simplify --fill-holes --window",
}


@pytest.mark.parametrize("command", sorted(FLAGS_0_1))
def test_every_0_1_flag_still_exists(command):
    import typer

    from rsseg_cli.cli import app

    click_command = typer.main.get_command(app).commands[command]
    names = {n for p in click_command.params for n in (*p.opts, *getattr(p, "secondary_opts", ()))}
    assert set(FLAGS_0_1[command].split()) <= names


def test_switches_read_as_switches(cli):
    out = " ".join(cli("tile", "--help").out.split())
    for switch in ("--all-touched / --no-all-touched", "--reproject-labels / --no-reproject-labels",
                   "--pixel-space / --no-pixel-space"):  # fmt: skip
        assert switch in out
    assert "--json " in cli("evaluate", "--help").out


def test_internal_error_is_a_traceback_and_exit_1(cli, monkeypatch):
    def broken(options):
        raise RuntimeError("a bug")

    monkeypatch.setattr("rsseg_cli.commands.vectorize.run", broken)
    r = cli("vectorize", "m.tif")
    assert r.code == 1
    assert "Traceback" in r.err and "RuntimeError: a bug" in r.err and "Internal error" in r.err


def test_interrupt_exits_130(cli, monkeypatch):
    def interrupted(options):
        raise KeyboardInterrupt

    monkeypatch.setattr("rsseg_cli.commands.vectorize.run", interrupted)
    r = cli("vectorize", "m.tif")
    assert r.code == 130 and "Interrupted" in r.err and "Traceback" not in r.err


def test_version(cli):
    r = cli("--version")
    assert r.code == 0 and __version__ in r.out


def test_python_dash_m_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "rsseg_cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and __version__ in r.stdout


def test_sample_command_variants(cli, tmp_path):
    r = cli(
        "sample",
        tmp_path / "s",
        "--size",
        "100x130",
        "--dtype",
        "float32",
        "--band-count",
        "3",
        "--crs",
        "EPSG:4326",
    )
    assert r.code == 0, r.err
    with rasterio.open(tmp_path / "s" / "scene.tif") as src:
        assert (src.height, src.width, src.count, src.dtypes[0]) == (100, 130, 3, "float32")
        assert src.crs == CRS.from_epsg(4326)
    with rasterio.open(tmp_path / "s" / "scene_labels.tif") as lab:
        assert lab.nodata == 255


def test_sample_bad_arguments(cli, tmp_path):
    for args, needle in [
        (("--size", "abc"), "--size"),
        (("--dtype", "complex64"), "--dtype"),
        (("--crs", "EPSG:999999"), "--crs"),
    ]:
        r = cli("sample", tmp_path / "s", *args)
        assert r.code == 2 and needle in r.err and "Traceback" not in r.err


def test_sample_then_tile_in_empty_folder(cli, tmp_path, monkeypatch):
    """The README flow: `rsseg sample` then `rsseg tile scene.tif --labels labels.tif` with defaults."""
    monkeypatch.chdir(tmp_path)
    assert cli("sample", ".", "--size", "1024").code == 0
    r = cli("tile", "scene.tif", "--labels", "scene_labels.tif")
    assert r.code == 0, r.err
    meta = yaml.safe_load((tmp_path / "data" / "dataset.yaml").read_text())
    assert [c["name"] for c in meta["classes"]][:3] == ["water", "forest", "grassland"]
    assert meta["chip_size"] == 512 and sum(meta["splits"].values()) >= 1


def test_demo_runs_end_to_end(cli, tmp_path, monkeypatch):
    r = cli("demo", "--out", tmp_path / "demo", "--size", "512", "--steps", "2")
    assert r.code == 0, r.err
    data = tmp_path / "demo" / "data"
    meta = yaml.safe_load((data / "dataset.yaml").read_text())
    assert len(meta["classes"]) == 7 and meta["chip_size"] == 128
    # Its validation holds every class, so the demo's scores mean something.
    split = json.loads((data / "split_report.json").read_text())
    assert all(split["splits"]["val"]["class_pixels"]), split["splits"]["val"]
    run = tmp_path / "demo" / "runs" / "demo"
    assert (run / "checkpoints" / "best.pt").exists()
    assert (run / "eval" / "val" / "metrics.json").exists()
    pred = tmp_path / "demo" / "predictions"
    with rasterio.open(pred / "scene_mask.tif") as m:
        assert m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and (m.height, m.width) == (512, 512)
    assert len(gpd.read_file(pred / "scene_polygons.gpkg")) > 0
    assert (pred / "quicklook.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The map is scored against the scene's labels, and the quick-look says how good it is: 4 steps from
    # random weights is not a land-cover map, and its title must not let it pass for one.
    scene_metrics = json.loads((pred / "scene_vs_labels" / "metrics.json").read_text())
    err = " ".join(r.err.split())
    assert f"map vs labels: mIoU {100 * scene_metrics['mean_iou']:.0f} %" in err
    assert "2 steps from random weights" in err
    assert re.search(r"demo took \d+ s \(\d+ CPU s\): sample \d+ s, tile \d+ s, train \d+ s", err)
    # After the demo, predict works with defaults (runs/latest) from inside the demo folder.
    monkeypatch.chdir(tmp_path / "demo")
    r = cli("predict", "sample/scene.tif", "--out", "mask.tif")
    assert r.code == 0, r.err
    assert (tmp_path / "demo" / "mask.tif").exists()
    monkeypatch.chdir(tmp_path)
    again = cli("demo", "--out", tmp_path / "demo", "--size", "512", "--steps", "2")
    assert again.code == 2 and "--overwrite" in again.err
    assert cli("demo", "--out", tmp_path / "demo", "--size", "512", "--steps", "1", "--overwrite").code == 0


def test_per_band_nodata_through_a_vrt(tmp_path):
    """Per-band nodata (different values per band) marks a pixel invalid when any band is nodata."""
    from rsseg_cli.config import load_config
    from rsseg_cli.data.tiling import tile_scenes
    from tests.conftest import write_raster

    a = np.full((64, 64), 10, np.uint16)
    b = np.full((64, 64), 20, np.uint16)
    a[:8] = 1  # nodata of band 1
    b[:, :4] = 2  # nodata of band 2
    write_raster(tmp_path / "a.tif", a, nodata=1)
    write_raster(tmp_path / "b.tif", b, nodata=2)
    with rasterio.open(tmp_path / "a.tif") as src:
        geo = ", ".join(str(v) for v in src.transform.to_gdal())
        wkt = src.crs.to_wkt()
    bands = "".join(
        f"""<VRTRasterBand dataType="UInt16" band="{i}"><NoDataValue>{nd}</NoDataValue>
        <SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>
        </SimpleSource></VRTRasterBand>"""
        for i, (name, nd) in enumerate([("a.tif", 1), ("b.tif", 2)], start=1)
    )
    vrt = tmp_path / "stack.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>{wkt}</SRS><GeoTransform>{geo}</GeoTransform>'
        f"{bands}</VRTDataset>"
    )
    labels = write_raster(tmp_path / "l.tif", np.zeros((64, 64), np.uint8), nodata=255)
    out = tmp_path / "data"
    tile_scenes(
        [vrt],
        [labels],
        out,
        load_config(overrides=["tile.chip_size=64", "tile.split.fractions={train: 1.0}"]),
    )
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert meta["scenes"]["stack"]["nodata"] == [1.0, 2.0]
    chip = next((out / "images").rglob("*.tif"))
    with rasterio.open(chip) as src:
        valid = src.dataset_mask() > 0
    expected = np.ones((64, 64), bool)
    expected[:8] = False
    expected[:, :4] = False
    np.testing.assert_array_equal(valid, expected)
    assert meta["statistics"]["valid_pixels"] == expected.sum()
    assert meta["statistics"]["mean"] == [10.0, 20.0]
