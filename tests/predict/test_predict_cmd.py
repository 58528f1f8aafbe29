"""`rsseg predict` end to end: COG outputs, georeferencing, nodata, dtypes, band checks, many scenes, TTA,
interruption. The model is a tiny random-init segmenter saved as `rsseg train` saves one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin

from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.checkpoint import Checkpoint
from tests.conftest import write_raster
from tests.predict.conftest import CLASSES, save_checkpoint

UTM = "EPSG:32633"
# A Lambert azimuthal equal-area CRS with no EPSG code.
CUSTOM_CRS = "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs"


def scene_data(h: int, w: int, bands: int = 3, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    base = np.stack([(np.sin(rows / (9 + b)) + np.cos(cols / (13 + b))) for b in range(bands)])
    data = 500 + 400 * base / 2 + rng.normal(0, 40, (bands, h, w))
    return np.clip(data, 1, 999).astype(dtype)


def reference_probs(checkpoint: Path, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The checkpoint's model applied directly to one whole (window-sized) image, normalized by hand."""
    ckpt = Checkpoint.read(checkpoint)
    model = ckpt.load_model("cpu")
    norm = ckpt.normalization
    low = np.array(norm["low"])[:, None, None]
    high = np.array(norm["high"])[:, None, None]
    unit = np.clip((data.astype(np.float64) - low) / (high - low), 0, 1)
    x = (unit - np.array(norm["mean"])[:, None, None]) / np.array(norm["std"])[:, None, None]
    x[:, ~valid] = 0.0
    with torch.no_grad():
        return model(torch.tensor(x[None], dtype=torch.float32)).softmax(dim=1)[0].numpy()


def test_mask_is_a_cog_with_georeferencing_colormap_class_names_and_probs(tmp_path, cli, checkpoint):
    h, w = 700, 650  # larger than one 512 block both ways: tiles and overviews
    data = scene_data(h, w)
    transform = from_origin(500123.5, 5400321.25, 0.5, 0.5)
    scene = write_raster(tmp_path / "scene.tif", data, crs=UTM, transform=transform)
    r = cli(
        "predict", scene, "--out", tmp_path / "out" / "mask.tif", "--checkpoint", checkpoint,
        "--probs", tmp_path / "out" / "probs.tif", "--batch-size", "16",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "windows" in r.err and "MP/s" in r.err and "mask.tif" in r.err
    with rasterio.open(tmp_path / "out" / "mask.tif") as m:
        assert m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert m.profile["tiled"] and m.block_shapes[0] == (512, 512)
        assert m.overviews(1) == [2]
        assert m.compression.name == "deflate"
        assert m.crs == CRS.from_string(UTM) and m.transform == transform
        assert (m.height, m.width, m.count, m.dtypes[0], m.nodata) == (h, w, 1, "uint8", 255)
        assert json.loads(m.tags()["RSSEG_CLASSES"])[2]["name"] == "building"
        assert m.tags(1)["CLASS_1"] == "forest"
        assert m.colormap(1)[0][:3] == (0x1F, 0x77, 0xB4) and m.colormap(1)[255][3] == 0
        mask = m.read(1)
        overview = m.read(1, out_shape=(h // 2, w // 2))
    assert set(np.unique(mask)) <= {0, 1, 2}
    assert set(np.unique(overview)) <= {0, 1, 2}  # mode overviews never invent values
    with rasterio.open(tmp_path / "out" / "probs.tif") as p:
        assert p.descriptions == ("water", "forest", "building", "confidence")
        # p = value / 255 as GDAL's scale and offset (QGIS shows probabilities), not a custom tag
        assert p.scales == (1 / 255,) * 4 and p.offsets == (0.0,) * 4 and "scale" not in p.tags()
        assert p.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and p.overviews(1) == [2]
        probs = p.read()
    # uint8 probabilities sum to ~255, the confidence band is the largest, and the mask is the argmax.
    assert np.abs(probs[:3].astype(int).sum(0) - 255).max() <= 2
    assert np.array_equal(probs[3], probs[:3].max(0))
    agree = probs[:3].argmax(0) == mask
    ties = np.sort(probs[:3], axis=0)[-1] == np.sort(probs[:3], axis=0)[-2]
    assert (agree | ties).all()
    # the class names GIS software reads: GDAL category names and RAT in the mask's PAM sidecar
    from tests.geo.test_class_raster import parse_sidecar

    cats, _, rows = parse_sidecar((tmp_path / "out" / "mask.tif.aux.xml").read_text())
    assert cats == ["water", "forest", "building"] and [r[1] for r in rows] == cats
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "mask.qml",  # the QGIS styles (geo/qml.py)
        "mask.tif",
        "mask.tif.aux.xml",
        "probs.qml",
        "probs.tif",
    ]


def test_windows_without_overlap_equal_the_model_on_each_window(tmp_path, cli, checkpoint):
    """Reading, band order, normalization and placement: with no overlap every 32 px window of the mask is
    the model's own argmax of that window."""
    data = scene_data(64, 96)
    scene = write_raster(tmp_path / "scene.tif", data)
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--overlap-fraction", "0",
            "--probs", tmp_path / "p.tif")  # fmt: skip
    assert r.code == 0, r.err
    mask = rasterio.open(tmp_path / "m.tif").read(1)
    probs = rasterio.open(tmp_path / "p.tif").read()
    for r0 in (0, 32):
        for c0 in (0, 32, 64):
            ref = reference_probs(checkpoint, data[:, r0 : r0 + 32, c0 : c0 + 32], np.ones((32, 32), bool))
            got = probs[:3, r0 : r0 + 32, c0 : c0 + 32].astype(float) / 255
            assert np.abs(got - ref).max() <= 0.5 / 255 + 1e-4
            clear = np.sort(ref, 0)[-1] - np.sort(ref, 0)[-2] > 1e-3
            assert np.array_equal(mask[r0 : r0 + 32, c0 : c0 + 32][clear], ref.argmax(0)[clear])


@pytest.mark.parametrize(
    "h,w",
    [(20, 25), (32, 32), (33, 57), (100, 81), (47, 200)],
    ids=["smaller-than-window", "one-window", "one-pixel-strips", "odd", "wide"],
)
def test_any_scene_size(tmp_path, cli, checkpoint, h, w):
    scene = write_raster(tmp_path / "s.tif", scene_data(h, w))
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 0, r.err
    with rasterio.open(tmp_path / "m.tif") as m:
        mask = m.read(1)
        assert (m.height, m.width) == (h, w)
    assert set(np.unique(mask)) <= {0, 1, 2}  # every pixel predicted, none left as nodata


@pytest.mark.parametrize(
    "crs,transform",
    [
        ("EPSG:4326", from_origin(11.25, 48.5, 0.0001, 0.0001)),
        (CUSTOM_CRS, from_origin(4321000.0, 3210000.0, 10.0, 10.0)),
    ],
    ids=["geographic", "no-epsg"],
)
def test_crs_and_transform_are_kept_exactly(tmp_path, cli, checkpoint, crs, transform):
    scene = write_raster(tmp_path / "s.tif", scene_data(50, 70), crs=crs, transform=transform)
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 0, r.err
    with rasterio.open(scene) as s, rasterio.open(tmp_path / "m.tif") as m:
        assert m.crs == s.crs and m.crs.to_wkt() == s.crs.to_wkt()
        assert m.transform == s.transform


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_nodata_stays_nodata(tmp_path, cli, dtype):
    ck = save_checkpoint(tmp_path / "best.pt", dtype=dtype)
    data = scene_data(80, 90, dtype=dtype)
    invalid = np.zeros((80, 90), bool)
    invalid[:10, :] = True  # a swath along the top
    invalid[40:45, 50:60] = True  # a hole inside
    if dtype == "float32":
        data[:, invalid] = np.nan  # NaN is invalid even without a nodata value
        nodata = None
    else:
        data[:, invalid] = 0
        nodata = 0
    scene = write_raster(tmp_path / "s.tif", data, nodata=nodata)
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", ck, "--probs", tmp_path / "p.tif")
    assert r.code == 0, r.err
    mask = rasterio.open(tmp_path / "m.tif").read(1)
    assert (mask[invalid] == 255).all()
    assert (mask[~invalid] != 255).all()
    with rasterio.open(tmp_path / "p.tif") as p:
        assert (p.read_masks(1)[invalid] == 0).all() and (p.read_masks(1)[~invalid] == 255).all()


def test_all_nodata_scene_still_writes_a_mask(tmp_path, cli, checkpoint):
    scene = write_raster(tmp_path / "s.tif", np.zeros((3, 40, 40), np.uint16), nodata=0)
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 0, r.err
    assert (rasterio.open(tmp_path / "m.tif").read(1) == 255).all()
    assert "no valid pixel" in r.err


def test_band_subset_of_training_is_selected_again(tmp_path, cli):
    """Trained on bands 3 and 1 of 4-band scenes: prediction reads the same bands in the same order."""
    ck = save_checkpoint(tmp_path / "best.pt", bands=2, band_indexes=[3, 1])
    data = scene_data(32, 32, bands=4)
    scene = write_raster(tmp_path / "s.tif", data)
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", ck, "--probs", tmp_path / "p.tif")
    assert r.code == 0, r.err
    ref = reference_probs(ck, data[[2, 0]], np.ones((32, 32), bool))
    got = rasterio.open(tmp_path / "p.tif").read()[:3].astype(float) / 255
    assert np.abs(got - ref).max() <= 0.5 / 255 + 1e-4
    # --bands overrides the selection; here it picks other bands, so the probabilities change.
    r = cli("predict", scene, "--out", tmp_path / "m2.tif", "--checkpoint", ck, "--probs", tmp_path / "p2.tif",
            "--bands", "2,4")  # fmt: skip
    assert r.code == 0, r.err
    assert not np.array_equal(
        rasterio.open(tmp_path / "p2.tif").read(), rasterio.open(tmp_path / "p.tif").read()
    )


def test_several_scenes_and_globs_into_a_folder(tmp_path, cli, checkpoint):
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        write_raster(tmp_path / "in" / f"{name}.tif", scene_data(40, 40))
    r = cli("predict", str(tmp_path / "in" / "*.tif"), tmp_path / "in" / "a.tif", "--out", tmp_path / "preds",
            "--checkpoint", checkpoint, "--probs", tmp_path / "probs")  # fmt: skip
    assert r.code == 0, r.err
    masks = sorted(p.name for p in (tmp_path / "preds").iterdir())
    assert masks == [  # a once; a folder batch also gets its manifest, mosaic and footprints
        "a.qml", "a.tif", "a.tif.aux.xml", "b.qml", "b.tif", "b.tif.aux.xml", "c.qml", "c.tif", "c.tif.aux.xml",
        "footprints.gpkg", "mosaic.qml", "mosaic.vrt", "predict_manifest.jsonl",
    ]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "probs").iterdir()) == [
        "a_probs.qml",
        "a_probs.tif",
        "b_probs.qml",
        "b_probs.tif",
        "c_probs.qml",
        "c_probs.tif",
    ]
    r = cli(
        "predict", str(tmp_path / "in" / "*.tif"), "--out", tmp_path / "one.tif", "--checkpoint", checkpoint
    )
    assert r.code == 2 and "folder" in r.err
    r = cli("predict", str(tmp_path / "in" / "*.png"), "--out", tmp_path / "x", "--checkpoint", checkpoint)
    assert r.code == 2 and "No file matches" in r.err


def test_default_checkpoint_is_the_latest_runs_best(tmp_path, cli, monkeypatch):
    run = tmp_path / "runs" / "supervised-1of8-20260101-000000"
    save_checkpoint(run / "checkpoints" / "best.pt")
    os.symlink(run.name, tmp_path / "runs" / "latest")
    scene = write_raster(tmp_path / "s.tif", scene_data(40, 40))
    monkeypatch.chdir(tmp_path)
    r = cli("predict", "s.tif", "--out", "mask.tif")
    assert r.code == 0, r.err
    assert (tmp_path / "mask.tif").exists()
    monkeypatch.chdir(tmp_path / "runs")  # no runs/ below here
    r = cli("predict", scene, "--out", tmp_path / "m2.tif")
    assert r.code == 2 and "--checkpoint" in r.err


def test_tta_of_a_pointwise_model_changes_nothing():
    """Every TTA view is undone exactly: a per-pixel model gives the same probabilities with and without."""
    from rsseg_cli.predict.model import InferenceModel

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 1).eval()
    norm = Normalization((0.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3)
    im = InferenceModel(
        Path("x"), model, {"classes": [*CLASSES, {"id": 3, "name": "x"}]}, norm, torch.device("cpu"), "fp32"
    )
    x = torch.randn(2, 3, 16, 16)
    plain = im.predictor("none")(x)
    for mode in ("flip", "d4"):
        assert torch.allclose(im.predictor(mode)(x), plain, atol=1e-6)
    # ...while a model that is not equivariant is averaged over views (the result differs).
    skew = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    im.model = skew
    assert not torch.allclose(im.predictor("d4")(x), im.predictor("none")(x), atol=1e-4)


def test_tta_option_runs_end_to_end(tmp_path, cli, checkpoint):
    scene = write_raster(tmp_path / "s.tif", scene_data(40, 50))
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--tta", "flip")
    assert r.code == 0, r.err
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--tta", "spin")
    assert r.code == 2 and "--tta" in r.err


def test_bad_checkpoint_and_mismatched_scenes_are_clear_errors(tmp_path, cli, checkpoint):
    scene = write_raster(tmp_path / "s.tif", scene_data(40, 40))
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", tmp_path / "missing.pt")
    assert r.code == 2 and "does not exist" in r.err and "Traceback" not in r.err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", tmp_path / "junk.pt")
    assert r.code == 2 and "not a readable rsseg checkpoint" in r.err
    four = write_raster(tmp_path / "four.tif", scene_data(40, 40, bands=4))
    r = cli("predict", four, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 2 and "trained on 3 bands" in r.err and "--bands" in r.err
    floats = write_raster(tmp_path / "f.tif", scene_data(40, 40, dtype="float32"))
    r = cli("predict", floats, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 2 and "float32" in r.err and "uint16" in r.err
    r = cli("predict", tmp_path / "nope.tif", "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 2 and "does not exist" in r.err
    r = cli("predict", scene, "--out", scene, "--checkpoint", checkpoint)
    assert r.code == 2 and "input" in r.err
    r = cli("predict", scene, "--out", tmp_path / "m.png", "--checkpoint", checkpoint)
    assert r.code == 2 and ".tif" in r.err
    r = cli(
        "predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--overlap-fraction", "1"
    )
    assert r.code == 2 and "--overlap-fraction" in r.err
    # Nothing was written by any of the refused runs.
    assert not (tmp_path / "m.tif").exists() and not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_predict_leaves_no_output(tmp_path, sig):
    ck = save_checkpoint(tmp_path / "best.pt", crop=16)
    scene = write_raster(tmp_path / "big.tif", scene_data(1024, 1024))
    out = tmp_path / "out" / "mask.tif"
    cmd = [sys.executable, "-m", "rsseg_cli", "predict", str(scene), "--out", str(out), "--checkpoint", str(ck),
           "--probs", str(tmp_path / "out" / "probs.tif"), "--batch-size", "1", "--overlap-fraction", "0.5"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "out").glob(".*staging*")):
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the (many-second) prediction
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # the folder the run created is removed with its outputs


@pytest.mark.parametrize("with_probs", [False, True], ids=["confidence-staged", "with-probs"])
def test_vector_polygons_match_the_mask(tmp_path, cli, checkpoint, with_probs):
    import geopandas as gpd

    scene = write_raster(
        tmp_path / "s.tif", scene_data(90, 120), transform=from_origin(500000, 5500000, 2, 2)
    )
    args = ["predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--vector",
            tmp_path / "p.gpkg", "--sieve", "0"]  # fmt: skip
    if with_probs:
        args += ["--probs", tmp_path / "probs.tif"]
    r = cli(*args)
    assert r.code == 0, r.err
    polygons = gpd.read_file(tmp_path / "p.gpkg")
    mask = rasterio.open(tmp_path / "m.tif").read(1)
    assert polygons.crs == CRS.from_string(UTM)
    # Without sieving, the polygons of each class cover exactly its pixels (4 m² each).
    for cid, name in enumerate(c["name"] for c in CLASSES):
        mine = polygons[polygons.class_id == cid]
        assert (mine.class_name == name).all()
        assert mine.area_m2.sum() == pytest.approx(4.0 * (mask == cid).sum())
    assert polygons.mean_prob.between(1 / 3 - 0.01, 1).all()
    # The staging confidence raster used for mean_prob never survives.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_vector_geojson_is_wgs84_and_bad_class_selection_stops_before_inference(tmp_path, cli, checkpoint):
    import geopandas as gpd

    scene = write_raster(tmp_path / "s.tif", scene_data(40, 40))
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint, "--vector",
            tmp_path / "p.geojson")  # fmt: skip
    assert r.code == 0, r.err
    assert gpd.read_file(tmp_path / "p.geojson").crs.to_epsg() == 4326
    r = cli("predict", scene, "--out", tmp_path / "m2.tif", "--checkpoint", checkpoint, "--vector",
            tmp_path / "p2.gpkg", "--classes", "lava")  # fmt: skip
    assert r.code == 2 and "lava" in r.err and "predict scene" not in r.err
    assert not (tmp_path / "m2.tif").exists()


@pytest.mark.parametrize("which", ["mask", "probs", "vector", "quicklook"])
def test_an_existing_output_file_is_refused_before_any_work(tmp_path, cli, checkpoint, monkeypatch, which):
    """A single --out mask.tif (no manifest to tell a finished output from another file): refused up front
    without --overwrite, as the product says. (In an output folder existing outputs are skipped or redone:
    tests/predict/test_batch.py.)"""
    scene = write_raster(tmp_path / "a.tif", scene_data(40, 40))
    outputs = {
        "mask": tmp_path / "out" / "m.tif",
        "probs": tmp_path / "out" / "p.tif",
        "vector": tmp_path / "out" / "v.gpkg",
        "quicklook": tmp_path / "out" / "q.png",
    }
    args = ["--checkpoint", checkpoint, "--out", outputs["mask"], "--probs", outputs["probs"],
            "--vector", outputs["vector"], "--quicklook", outputs["quicklook"]]  # fmt: skip
    existing = outputs[which]
    existing.parent.mkdir()
    existing.write_bytes(b"an earlier result")

    import rsseg_cli.predict.run as run_module

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the outputs were checked")

    with monkeypatch.context() as m:
        m.setattr(run_module, "load_inference_model", no_model)
        r = cli("predict", scene, *args)
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert str(existing) in text and "--overwrite" in text and "Traceback" not in text
    assert existing.read_bytes() == b"an earlier result"
    assert not any(p.exists() for p in outputs.values() if p != existing)

    r = cli("predict", scene, *args, "--overwrite")
    assert r.code == 0, r.err
    assert existing.read_bytes() != b"an earlier result" and all(p.exists() for p in outputs.values())


@pytest.mark.parametrize("which", ["mask", "probs", "vector", "quicklook"])
def test_an_existing_output_in_a_folder_that_rsseg_did_not_finish_is_redone(tmp_path, cli, checkpoint, which):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        write_raster(tmp_path / "in" / f"{name}.tif", scene_data(40, 40))
    args = ["--out", tmp_path / "preds", "--checkpoint", checkpoint, "--probs", tmp_path / "probs",
            "--vector", tmp_path / "vec", "--quicklook", tmp_path / "ql"]  # fmt: skip
    existing = {
        "mask": tmp_path / "preds" / "b.tif",
        "probs": tmp_path / "probs" / "b_probs.tif",
        "vector": tmp_path / "vec" / "b.gpkg",
        "quicklook": tmp_path / "ql" / "b_quicklook.png",
    }[which]
    existing.parent.mkdir()
    existing.write_bytes(b"an earlier result")
    r = cli("predict", str(tmp_path / "in" / "*.tif"), *args)
    assert r.code == 0, r.err
    assert "b.tif: predicting again" in " ".join(r.err.split())  # said so
    assert existing.read_bytes() != b"an earlier result" and (tmp_path / "preds" / "a.tif").exists()
