"""`rsseg stack`: single-band files -> one VRT scene that rasterio, `rsseg tile` and `rsseg predict` read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from rsseg_cli.geo.vrt import band_names_from_files, describe_band, vrt_xml
from tests.commands.helpers import assert_user_error
from tests.conftest import stripes, write_raster

H, W = 48, 64
PREFIX = "LC08_L1TP_190026_20200101_20200113_02_T1"


def bands(folder, names=("B2", "B3", "B4", "B5"), dtype="uint16", **kw):
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:H, 0:W]
    paths, data = [], []
    for i, name in enumerate(names):
        band = ((rows * 7 + cols * 3 + i * 1000) % 5000 + 1).astype(dtype)
        paths.append(write_raster(folder / f"{PREFIX}_{name}.tif", band, **kw))
        data.append(band)
    return paths, np.stack(data)


def test_four_bands_become_one_vrt_with_names_from_the_files(cli, tmp_path):
    paths, data = bands(tmp_path / "landsat", nodata=0)
    out = tmp_path / "landsat" / "scene.vrt"
    r = cli("stack", *paths, "--out", out)
    assert r.code == 0, r.err
    assert "4 bands: B2, B3, B4, B5" in " ".join(r.err.split())
    with rasterio.open(out) as vrt, rasterio.open(paths[0]) as first:
        assert vrt.driver == "VRT" and vrt.count == 4
        assert vrt.descriptions == ("B2", "B3", "B4", "B5")
        assert vrt.dtypes == ("uint16",) * 4 and vrt.nodatavals == (0.0,) * 4
        assert vrt.crs == first.crs and vrt.transform == first.transform
        np.testing.assert_array_equal(vrt.read(), data)
    assert 'relativeToVRT="1"' in out.read_text()
    assert not list(out.parent.glob(".*partial*"))


def test_names_option_and_moving_the_folder(cli, tmp_path):
    paths, data = bands(tmp_path / "a", dtype="float32")
    out = tmp_path / "a" / "scene.vrt"
    assert cli("stack", *paths, "--out", out, "--names", "blue,green,red,nir").code == 0
    moved = tmp_path / "b"
    shutil.move(tmp_path / "a", moved)
    with rasterio.open(moved / "scene.vrt") as vrt:
        assert vrt.descriptions == ("blue", "green", "red", "nir")
        assert vrt.nodatavals == (None,) * 4
        np.testing.assert_array_equal(vrt.read(), data)


def test_files_outside_the_vrt_folder_are_stored_absolute(cli, tmp_path):
    paths, data = bands(tmp_path / "in")
    out = tmp_path / "scenes" / "scene.vrt"
    assert cli("stack", *paths, "--out", out).code == 0
    assert 'relativeToVRT="0"' in out.read_text()
    with rasterio.open(out) as vrt:
        np.testing.assert_array_equal(vrt.read(), data)


def test_internal_masks_are_kept(cli, tmp_path):
    valid = np.ones((H, W), bool)
    valid[:10] = False
    paths, _ = bands(tmp_path, mask=valid)
    out = tmp_path / "scene.vrt"
    assert cli("stack", *paths, "--out", out).code == 0
    with rasterio.open(out) as vrt:
        for i in range(1, 5):
            np.testing.assert_array_equal(vrt.read_masks(i) > 0, valid)


def test_names_from_files():
    def names(*stems):
        return band_names_from_files([Path("x") / f"{s}.tif" for s in stems])

    assert names("LC08_X_20200101_B4", "LC08_X_20200101_B10") == ["B4", "B10"]
    assert names("scene_red_v1", "scene_green_v1") == ["red", "green"]
    assert names("band_4", "band_5") == ["band_4", "band_5"]  # '4' would read as a band position
    assert names("only") == ["only"]


@pytest.mark.parametrize(
    "other,needles",
    [
        (dict(crs="EPSG:32632"), ("their CRSs differ", "EPSG:32633 against EPSG:32632", "gdalwarp")),
        (dict(transform=from_origin(500010.0, 5500000.0, 1.0, 1.0)), ("their grids differ", "gdalwarp")),
        (dict(shape=(H, W + 1)), ("their sizes differ", "64 x 48 px against 65 x 48 px")),
    ],
    ids=["crs", "transform", "size"],
)
def test_other_grids_are_refused_naming_both_files(cli, tmp_path, other, needles):
    paths, _ = bands(tmp_path)
    shape = other.pop("shape", (H, W))
    odd = write_raster(tmp_path / "odd.tif", np.ones(shape, "uint16"), **other)
    out = tmp_path / "scene.vrt"
    assert_user_error(cli("stack", *paths, odd, "--out", out), str(paths[0]), str(odd), *needles)
    assert not out.exists()


def test_multi_band_file_is_refused(cli, tmp_path):
    paths, _ = bands(tmp_path)
    rgb = write_raster(tmp_path / "rgb.tif", np.ones((3, H, W), "uint16"))
    r = cli("stack", *paths, rgb, "--out", tmp_path / "s.vrt")
    assert_user_error(r, f"{rgb} has 3 bands", "single-band files", "gdal_translate -b")


def test_mixed_dtypes_are_explained(cli, tmp_path):
    paths, _ = bands(tmp_path)
    b10 = write_raster(tmp_path / f"{PREFIX}_B10.tif", np.ones((H, W), "float32"))
    r = cli("stack", *paths, b10, "--out", tmp_path / "s.vrt")
    assert_user_error(
        r,
        "band B10 is float32 while the others are uint16",
        "rsseg reads scenes of one pixel type",
        "gdal_translate -ot UInt16",
    )
    assert not (tmp_path / "s.vrt").exists()


def test_existing_output_needs_overwrite(cli, tmp_path):
    paths, _ = bands(tmp_path)
    out = tmp_path / "scene.vrt"
    out.write_text("old")
    assert_user_error(cli("stack", *paths, "--out", out), f"{out} exists", "--overwrite")
    assert out.read_text() == "old"
    assert cli("stack", *paths, "--out", out, "--overwrite").code == 0
    with rasterio.open(out) as vrt:
        assert vrt.count == 4


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--out", "scene.tif"), ("must be a .vrt",)),
        (("--out", "s.vrt", "--names", "a,b"), ("2 names for 4 files",)),
        (("--out", "s.vrt", "--names", "a,b,a,c"), ("names a band twice",)),
        (("--out", "s.vrt", "--names", "1,2,3,4"), ("'1' is a number", "B1")),
    ],
    ids=["suffix", "count", "twice", "digits"],
)
def test_bad_options_are_refused(cli, tmp_path, args, needles):
    paths, _ = bands(tmp_path)
    args = tuple(str(tmp_path / a) if a.endswith((".tif", ".vrt")) else a for a in args)
    assert_user_error(cli("stack", *paths, *args), *needles)


def test_tile_reads_a_stacked_scene_and_its_band_names(cli, tmp_path):
    paths, _ = bands(tmp_path / "scene", nodata=0)
    labels = write_raster(tmp_path / "labels.tif", stripes(H, W), nodata=255)
    scene = tmp_path / "scene" / "scene.vrt"
    assert cli("stack", *paths, "--out", scene, "--names", "blue,green,red,nir").code == 0
    out = tmp_path / "data"
    r = cli("tile", scene, "--labels", labels, "--out", out, "--chip-size", "16", "--bands", "nir,red,green")
    assert r.code == 0, r.err
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert [b["index"] for b in meta["bands"]] == [4, 3, 2]
    assert "nir" in str(meta["bands"][0])
    chips = sorted((out / "images").rglob("*.tif"))
    assert chips
    with rasterio.open(chips[0]) as chip:
        assert chip.count == 3 and chip.dtypes[0] == "uint16"


def test_tile_explains_a_vrt_of_mixed_pixel_types(cli, tmp_path):
    paths, _ = bands(tmp_path, names=("B2", "B3"))
    b10 = write_raster(tmp_path / f"{PREFIX}_B10.tif", np.ones((H, W), "float32"))
    files = [*paths, b10]
    scene = tmp_path / "mixed.vrt"  # GDAL allows this; `rsseg stack` would not write it
    scene.write_text(vrt_xml([describe_band(p) for p in files], ["B2", "B3", "B10"], scene))
    labels = write_raster(tmp_path / "labels.tif", stripes(H, W), nodata=255)
    r = cli("tile", scene, "--labels", labels, "--out", tmp_path / "data", "--chip-size", "16")
    assert_user_error(
        r,
        f"{scene} mixes pixel types",
        "band B10 is float32 while the others are uint16",
        "rsseg reads scenes of one pixel type",
        "gdal_translate -ot Float32",
    )
    assert "rsseg reads one of" not in r.err


def test_predict_reads_a_stacked_scene(cli, tmp_path):
    from tests.predict.conftest import save_checkpoint

    paths, _ = bands(tmp_path / "scene", names=("B2", "B3", "B4"), nodata=0)
    scene = tmp_path / "scene" / "scene.vrt"
    assert cli("stack", *paths, "--out", scene).code == 0
    checkpoint = save_checkpoint(tmp_path / "best.pt")
    r = cli("predict", scene, "--out", tmp_path / "mask.tif", "--checkpoint", checkpoint)
    assert r.code == 0, r.err
    with rasterio.open(tmp_path / "mask.tif") as mask, rasterio.open(paths[0]) as first:
        assert (mask.height, mask.width) == (H, W) and mask.transform == first.transform
