"""`rsseg tile` and `rsseg predict` on scenes as users have them: a Landsat-style clip with a zero collar and
no nodata tag (a warning naming the fix; with --nodata 0 the collar is nodata in statistics and masks), a
nodata value per band, and declarations that cannot fit the scene (exit 2)."""

from __future__ import annotations

import numpy as np
import rasterio
import yaml

from tests.commands.helpers import assert_user_error
from tests.conftest import write_raster
from tests.geo.scenes import footprint, landsat_clip, texture
from tests.predict.conftest import save_checkpoint


def _statistics(out) -> dict:
    return yaml.safe_load((out / "dataset.yaml").read_text())


def test_tile_warns_about_a_zero_collar_that_skews_the_statistics(cli, tmp_path):
    scene = landsat_clip(tmp_path / "LC08_clip.tif")
    r = cli("tile", scene, "--chip-size", "64", "--out", tmp_path / "d")
    assert r.code == 0, r.err
    text = " ".join(r.err.split())
    assert "LC08_clip.tif has no nodata value or mask" in text and "16.3 %" in text and "--nodata 0" in text
    assert _statistics(tmp_path / "d")["statistics"]["p2"] == [0.0] * 4  # what the warning is about


def test_tile_with_nodata_leaves_the_collar_out_of_statistics_and_chips(cli, tmp_path):
    scene = landsat_clip(tmp_path / "LC08_clip.tif")
    r = cli("tile", scene, "--chip-size", "64", "--nodata", "0", "--out", tmp_path / "d")
    assert r.code == 0, r.err
    assert "fill collar" not in r.err
    meta = _statistics(tmp_path / "d")
    assert min(meta["statistics"]["p2"]) >= 7000  # the texture's range, not the collar
    assert meta["statistics"]["valid_pixels"] == int(footprint(200, 240).sum())
    assert meta["scenes"]["LC08_clip"]["nodata"] == [0.0] * 4


def test_tile_per_band_nodata_and_wrong_count(cli, tmp_path):
    data = texture(64, 64, 4, "int16")
    data[3, :16] = -9999
    scene = write_raster(tmp_path / "s.tif", data)
    r = cli("tile", scene, "--chip-size", "32", "--nodata", "0,0,0,-9999", "--out", tmp_path / "d")
    assert r.code == 0, r.err
    meta = _statistics(tmp_path / "d")
    assert meta["scenes"]["s"]["nodata"] == [0.0, 0.0, 0.0, -9999.0]
    assert meta["statistics"]["valid_pixels"] == 64 * 48
    r = cli("tile", scene, "--chip-size", "32", "--nodata", "0,0,-9999", "--out", tmp_path / "e")
    assert_user_error(r, "gives 3 values but 4 bands", "--nodata 0,0,0,0")
    assert not (tmp_path / "e").exists()


def test_nodata_that_is_no_number_is_refused(cli, tmp_path):
    scene = landsat_clip(tmp_path / "clip.tif")
    assert_user_error(
        cli("tile", scene, "--nodata", "zero", "--out", tmp_path / "d"), "'zero'", "0,0,0,-9999"
    )


def test_predict_with_nodata_makes_the_collar_nodata_in_the_mask(cli, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "best.pt", bands=4, low=7000, high=20000)
    scene = landsat_clip(tmp_path / "LC08_clip.tif")
    inside = footprint(200, 240)
    r = cli("predict", scene, "--checkpoint", checkpoint, "--out", tmp_path / "a.tif", "--window", "64")
    assert r.code == 0, r.err
    assert "fill collar" in r.err and "--nodata 0" in r.err
    with rasterio.open(tmp_path / "a.tif") as src:
        assert (src.read(1) != 255).all()  # the collar was predicted as classes
    r = cli("predict", scene, "--checkpoint", checkpoint, "--out", tmp_path / "b.tif", "--window", "64",
            "--nodata", "0", "--quicklook", tmp_path / "b.png")  # fmt: skip
    assert r.code == 0, r.err
    assert "fill collar" not in r.err
    with rasterio.open(tmp_path / "b.tif") as src:
        mask = src.read(1)
    np.testing.assert_array_equal(mask == 255, ~inside)
    assert (tmp_path / "b.png").stat().st_size > 0


def test_predict_refuses_a_wrong_count_or_quicklook_band_before_any_work(cli, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "best.pt", bands=4)
    scene = landsat_clip(tmp_path / "clip.tif")
    out = tmp_path / "m.tif"
    r = cli("predict", scene, "--checkpoint", checkpoint, "--out", out, "--nodata", "0,0")
    assert_user_error(r, "gives 2 values but 4 bands", "--nodata 0,0,0,0")
    r = cli("predict", scene, "--checkpoint", checkpoint, "--out", out, "--nodata", "-1")
    assert_user_error(r, "nodata value -1", "uint16")
    r = cli("predict", scene, "--checkpoint", checkpoint, "--out", out, "--quicklook", tmp_path / "q.png",
            "--quicklook-bands", "5,3,2")  # fmt: skip
    assert_user_error(r, "Band 5 was selected", "--quicklook-bands")
    assert not out.exists()
