"""Reliability, options and leftovers: every bad option is refused before any work (exit 2, one message,
nothing written), a damaged checkpoint is a clear error, predict sweeps temporaries of killed runs and
holds its output folder against a concurrent run, and a scene evaluation with nothing to score fails."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import from_origin

import rsseg_cli.models  # noqa: F401  (timm needs rsseg's import order on CPU torch)
from rsseg_cli.engine.checkpoint import Checkpoint
from tests.commands.helpers import assert_user_error
from tests.conftest import UTM, write_raster
from tests.evaluation.test_scene_eval import write_mask
from tests.predict.conftest import CLASSES, save_checkpoint

TRANSFORM = from_origin(500000.0, 5500000.0, 10.0, 10.0)
MASK_OUTPUTS = ["m.qml", "m.tif", "m.tif.aux.xml"]  # with its QGIS style


def scene(path: Path, h: int = 48, w: int = 48) -> Path:
    rng = np.random.default_rng(0)
    return write_raster(path, rng.integers(1, 999, (3, h, w)).astype("uint16"), transform=TRANSFORM)


@pytest.fixture
def setup(tmp_path):
    return save_checkpoint(tmp_path / "best.pt"), scene(tmp_path / "s.tif"), tmp_path / "out"


def predict(cli, setup, *args):
    ckpt, s, out = setup
    return cli("predict", s, "--checkpoint", ckpt, "--out", out / "m.tif", *args)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------------------------------
# Point 4: options checked before any work


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--precision", "fp8"], ["--precision", "'auto', 'fp32', 'bf16' or 'fp16'", "fp8"]),
        (["--precision", "fp16", "--device", "cpu"], ["fp16 needs a CUDA GPU", "auto (fp32 on CPU"]),
        (["--device", "meta"], ["--device", "'meta' is not a device", "auto, cpu, cuda or cuda:N"]),
        (["--window", "4"], ["--window 4", "patch size (8 px)", "training crop (32 px)"]),
        (["--window", "100000"], ["--window 100000", "16384 px", "such as 1024"]),
        (["--window", "16000", "--batch-size", "1000"], ["--window 16000", "GiB", "smaller --batch-size"]),
        (["--set", "predict=5", "--window", "32"], ["'predict' is a section of keys", "window", "single value 5"]),
        (["--set", "predict.vector=3"], ["'predict.vector' is a section", "sieve"]),
    ],
    ids=["fp8", "fp16-cpu", "meta", "window-below-patch", "window-cap", "window-memory", "section-set",
         "subsection-set"],
)  # fmt: skip
def test_predict_options_are_refused_before_any_work(cli, setup, args, needles):
    assert_user_error(predict(cli, setup, *args), *needles)
    assert not setup[2].exists()


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_predict_device_mps_without_mps(cli, setup):
    assert_user_error(predict(cli, setup, "--device", "mps"), "--device mps", "no Apple MPS", "--device cpu")
    assert not setup[2].exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--precision", "fp8"], ["'evaluate.precision'", "'auto', 'fp32', 'bf16' or 'fp16'"]),
        (["--device", "meta"], ["'evaluate.device'", "'meta' is not a device"]),
    ],
    ids=["fp8", "meta"],
)
def test_evaluate_options_are_refused_before_any_work(cli, tmp_path, args, needles):
    out = tmp_path / "report"
    r = cli("evaluate", "--checkpoint", save_checkpoint(tmp_path / "best.pt"), "--out", out, *args)
    assert_user_error(r, *needles)
    assert listing(tmp_path) == ["best.pt"]


def test_train_section_replaced_by_a_value_is_refused(cli, dataset, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochs: 3\n")
    r = cli(
        "train",
        "--data",
        dataset,
        "-c",
        config,
        "--set",
        "train=5",
        "--labeled",
        "1/2",
        "--out",
        tmp_path / "r",
    )
    assert_user_error(r, "'train' is a section of keys", "--set gives it the single value 5", "labeled")
    assert listing(tmp_path) == ["c.yaml"]


def test_section_replaced_by_a_value_in_a_config_file_is_refused(cli, setup, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("predict: 7\n")
    assert_user_error(predict(cli, setup, "-c", config), "'predict' is a section", "c.yaml", "value 7")
    assert not setup[2].exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--precision", "fp16", "--device", "cpu"], ["fp16 needs a CUDA GPU", "auto (fp32 on CPU"]),
        (["--precision", "fp8"], ["'train.precision'", "'auto', 'fp32', 'bf16' or 'fp16'"]),
        (["--device", "meta"], ["'train.device'", "'meta' is not a device", "cuda:N"]),
    ],
    ids=["fp16-cpu", "fp8", "meta"],
)
def test_train_device_and_precision_are_refused_before_any_work(cli, dataset, tmp_path, args, needles):
    assert_user_error(cli("train", "--data", dataset, "--out", tmp_path / "r", *args), *needles)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("value", ["0", "00"])
def test_labeled_zero_says_what_labeled_accepts(cli, dataset, tmp_path, value):
    r = cli("train", "--data", dataset, "--labeled", value, "--out", tmp_path / "r")
    assert_user_error(
        r, "--labeled", "no labeled chip", "above 0 and at most 1", "1/8", "12.5%", "at least 1"
    )
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--crs", "EPSG:4326", "--resolution", "1"], ["--resolution 1", "+-90", "at most --resolution 0.03345"]),
        (["--resolution", "5000"], ["--resolution 5000", "4096 x 4096", "at most --resolution 37"]),
        (["--size", "64", "--crs", "EPSG:4326", "--resolution", "3"], ["at most --resolution 2.14"]),
    ],
    ids=["geographic", "utm", "small-size"],
)  # fmt: skip
def test_sample_resolution_off_the_globe_is_refused(cli, tmp_path, args, needles):
    assert_user_error(cli("sample", tmp_path / "sample", *args), *needles)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("key,value", [("num_classes", 5), ("head_features", 16)])
def test_checkpoint_weights_not_matching_its_model_spec(cli, setup, key, value):
    ckpt = Checkpoint.read(setup[0])
    ckpt.model[key] = value
    ckpt.save(setup[0])
    r = predict(cli, setup)
    assert_user_error(r, str(setup[0]), "weights do not match its own model description", "damaged")
    assert "size mismatch" in r.err and not setup[2].exists()


# ----------------------------------------------------------------------------------------------------
# Point 5: leftovers and concurrency


def test_predict_sweeps_temporaries_of_killed_runs(cli, setup):
    out = setup[2]
    out.mkdir()
    dead = dead_pid()
    stale = [f".m.tif.partial-{dead}", f".m.tif.aux.xml.partial-{dead}", f".p.gpkg.partial-{dead}",
             f".p.gpkg.partial-{dead}-journal", f".m.tif.staging.partial-{dead}.aux.xml",
             f".probs.tif.partial-{dead}"]  # fmt: skip
    for name in stale:
        (out / name).write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = [f".m.tif.partial-{live.pid}", ".notes.partial-draft", "mine.txt"]
        for name in kept:
            (out / name).write_bytes(b"keep")
        r = predict(cli, setup, "--vector", out / "p.gpkg")
        assert r.code == 0, r.err
    finally:
        live.kill()
        live.wait()
    assert listing(out) == sorted([*MASK_OUTPUTS, "p.gpkg", "p.qml", *kept])


def test_second_predict_into_a_held_folder_is_refused(cli, setup):
    out = setup[2]
    out.mkdir()
    with open(out / ".rsseg.lock", "w") as held:  # another predict holds the folder
        fcntl.flock(held, fcntl.LOCK_EX)
        r = predict(cli, setup)
    assert_user_error(r, "Another rsseg predict is writing into", str(out), "another --out folder")
    assert listing(out) == [".rsseg.lock"]
    (out / ".rsseg.lock").unlink()
    r = predict(cli, setup)  # once released, the folder is usable and the lock file is gone afterwards
    assert r.code == 0, r.err
    assert listing(out) == MASK_OUTPUTS


def test_concurrent_predict_processes(setup, tmp_path):
    """A second process predicting another scene into a folder that a running predict holds is refused."""
    ckpt, _, out = setup
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rsseg_cli.predict.guard import output_folders\n"
         "with output_folders([sys.argv[1]]):\n    print('held', flush=True); time.sleep(3600)", str(out)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        other = scene(tmp_path / "t.tif")
        cmd = [
            sys.executable,
            "-m",
            "rsseg_cli",
            "predict",
            other,
            "--checkpoint",
            ckpt,
            "--out",
            out / "t.tif",
        ]
        second = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stderr
    assert "Another rsseg predict is writing into" in " ".join(second.stderr.split())
    assert "Traceback" not in second.stderr
    assert listing(out) == [".rsseg.lock"]  # the killed holder's lock file; nothing of the refused run


def test_scene_evaluation_without_overlap_is_an_error(cli, tmp_path):
    mask = write_mask(tmp_path / "mask.tif", np.ones((40, 50), np.uint8), classes=CLASSES)
    far = from_origin(700000.0, 5500000.0, 10.0, 10.0)  # 200 km east
    labels = write_raster(tmp_path / "labels.tif", np.ones((40, 50), np.uint8), transform=far, nodata=255)
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--reproject-labels", "--out", tmp_path / "rep")
    assert_user_error(r, "No pixel has both a prediction", "undefined", "Prediction extent", "labels extent",
                      "700000", "500000")  # fmt: skip
    assert listing(tmp_path) == ["labels.tif", "mask.tif"]


def test_scene_evaluation_with_only_unlabeled_pixels_is_an_error(cli, tmp_path):
    mask = write_mask(tmp_path / "mask.tif", np.ones((40, 50), np.uint8), classes=CLASSES)
    labels = write_raster(tmp_path / "labels.tif", np.full((40, 50), 255, np.uint8), transform=from_origin(
        500000.0, 5500000.0, 10.0, 10.0), nodata=255, crs=UTM)  # fmt: skip
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--out", tmp_path / "rep")
    assert_user_error(r, "No pixel has both", "no labeled pixel")
    assert listing(tmp_path) == ["labels.tif", "mask.tif"]
