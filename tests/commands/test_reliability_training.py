"""Reliability of training (issue "Reliability", point 3), driven through the real CLI: non-finite pixels never
reach the model, the divergence message says what the run folder holds, runs/latest moves only to a run with a
checkpoint and never replaces what is not rsseg's own link, --out folders that are not complete runs are
refused or restarted cleanly, and a resumed run logs the right steps and file."""

from __future__ import annotations

import json
import os
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from rsseg_cli.config import IGNORE_INDEX, load_config
from tests.commands.helpers import assert_user_error
from tests.conftest import stripes, write_raster
from tests.helpers import TINY_TRAIN

FAST = ["train.iterations=2", "train.eval_every=2"]  # two steps, one validation: the machine is slow
DIVERGE = ["train.lr=1e30", "train.head_lr_mult=1", "train.iterations=5", "train.eval_every=100"]


def _nan_scene(folder: Path, nodata: float | None) -> tuple[Path, Path]:
    """A float32 scene with NaN, +inf and -inf patches inside it (and a nodata border when one is declared)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:256, 0:256]
    data = np.stack([(rows * 7 + cols * 3 + b * 1000) % 5000 + 1 for b in range(3)]).astype("float32")
    data[:, 40:60, 40:60] = np.nan
    data[0, 100:110, 100:130] = np.inf
    data[1, 150:160, 10:20] = -np.inf
    data[2, 200, :] = np.nan
    data[0, :, 33::64] = np.nan  # a NaN column in every 64 px chip: every batch of every run meets NaN
    if nodata is not None:
        data[:, :8, :] = nodata
    image = write_raster(folder / "scene.tif", data, nodata=nodata)
    labels = write_raster(folder / "labels.tif", stripes(256, 256, 4), nodata=255)
    return image, labels


@pytest.fixture(scope="module", params=[None, -9999.0], ids=["no-nodata", "nodata"])
def nan_dataset(request, tmp_path_factory) -> Path:
    from rsseg_cli.data.tiling import tile_scenes

    root = tmp_path_factory.mktemp("nan")
    image, labels = _nan_scene(root / "scene", request.param)
    cfg = load_config(overrides=["tile.chip_size=64", "tile.split.block_size=2"])
    tile_scenes([image], [labels], root / "data", cfg)
    return root / "data"


def _train(cli, data: Path, out: Path | None, *extra: str):
    args = ["train", "--data", str(data), "--method", "supervised"]
    for s in [*TINY_TRAIN, *FAST]:
        args += ["--set", s]
    if out is not None:
        args += ["--out", str(out)]
    return cli(*args, *extra)  # after the defaults: its --set win


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


# --- (a) non-finite pixels ----------------------------------------------------------------------------------


def test_nan_scene_chips_enter_the_model_finite(nan_dataset):
    from rsseg_cli.data.chipset import ChipDataset, EvalChips, LabeledTrain, UnlabeledTrain
    from rsseg_cli.data.normalize import Normalization, default_band_map, rgb_bands

    data = ChipDataset.open(nan_dataset)
    band_map = default_band_map(data.band_names)
    norm = Normalization.from_dataset(data.meta["statistics"], band_map)
    labeled = data.chips[data.chips["labeled"].astype(bool)]["id"].tolist()
    sets = [
        LabeledTrain(data, labeled, norm, crop=48, seed=0),
        UnlabeledTrain(data, labeled, norm, crop=48, rgb=rgb_bands(band_map), seed=0),
        EvalChips(data, labeled, norm),
    ]
    for chips in sets:
        for epoch in range(2):
            chips.set_epoch(epoch)
            for i in range(len(chips)):
                for key, value in chips[i].items():
                    if value.is_floating_point():
                        assert torch.isfinite(value).all(), (type(chips).__name__, i, key)
    # The NaN patch of chip (0, 0) enters the model as the band mean: 0 after standardization, ignored.
    first = EvalChips(data, ["scene_r000000_c000000"], norm)[0]
    assert (first["image"][:, 45:55, 45:55] == 0).all() and (
        first["mask"][45:55, 45:55] == IGNORE_INDEX
    ).all()


def test_read_chip_without_a_mask_replaces_non_finite_pixels(tmp_path):
    """A chip whose NaN, inf and NaN labels no mask declares (a dataset written by hand or another tool)."""
    from rsseg_cli.data.chipset import read_chip
    from rsseg_cli.data.normalize import Normalization

    image = np.full((2, 16, 16), 5.0, np.float32)
    image[0, 2, 3], image[1, 4, 5], image[0, 6, 7] = np.nan, np.inf, -np.inf
    label = np.ones((16, 16), np.float32)
    label[8, 8] = np.nan
    write_raster(tmp_path / "i.tif", image)
    write_raster(tmp_path / "l.tif", label)
    norm = Normalization.from_dataset({"p2": [0.0, 0.0], "p98": [10.0, 10.0]}, [0, 1])
    row = namedtuple("Row", "image label")("i.tif", "l.tif")
    unit, invalid, mask = read_chip(tmp_path, row, norm)
    assert torch.isfinite(unit).all() and torch.isfinite(norm.standardize(unit)).all()
    assert invalid[2, 3] and invalid[4, 5] and invalid[6, 7] and invalid.sum() == 3
    assert (norm.standardize(unit)[:, invalid] == 0).all()
    assert mask[8, 8] == IGNORE_INDEX and mask[2, 3] == IGNORE_INDEX and mask[0, 0] == 1


def test_training_on_a_nan_scene_keeps_a_finite_loss(nan_dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _train(cli, nan_dataset, tmp_path / "run", "--labeled", "1/2", "--method", "unimatch-v2")
    assert r.code == 0, r.err
    losses = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(v) for rec in losses for v in rec.values())


# --- (b) the divergence message ------------------------------------------------------------------------------


def test_diverged_before_any_checkpoint_says_no_model(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _train(cli, dataset, tmp_path / "runs" / "bad", *[a for s in DIVERGE for a in ("--set", s)])
    assert r.code == 1 and "Traceback" not in r.err, r.err
    text = " ".join(r.err.split())
    assert "The loss became" in text and "No checkpoint was written" in text and "holds no model" in text
    assert "last good checkpoint" not in text
    assert not (tmp_path / "runs" / "bad" / "checkpoints" / "last.pt").exists()
    assert not os.path.lexists(tmp_path / "runs" / "latest")  # never moved to a run without a model


# --- (c) runs/latest ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "folder", "foreign-link"])
def test_latest_that_is_not_rssegs_link_is_left_alone(dataset, tmp_path, cli, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    runs.mkdir()
    latest = runs / "latest"
    if kind == "file":
        latest.write_text("my notes")
    elif kind == "folder":
        latest.mkdir()
        (latest / "keep.txt").write_text("mine")
    else:
        (tmp_path / "elsewhere").mkdir()
        latest.symlink_to(tmp_path / "elsewhere")
    before = (
        os.readlink(latest)
        if latest.is_symlink()
        else _tree(latest)
        if latest.is_dir()
        else latest.read_text()
    )
    r = _train(cli, dataset, runs / "mine", "--labeled", "1/4")
    assert r.code == 0, r.err
    assert (runs / "mine" / "checkpoints" / "best.pt").exists()
    after = (
        os.readlink(latest)
        if latest.is_symlink()
        else _tree(latest)
        if latest.is_dir()
        else latest.read_text()
    )
    assert after == before
    assert "is not rsseg's link" in " ".join(r.err.split())


def test_latest_moves_only_after_the_first_checkpoint(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    assert _train(cli, dataset, runs / "good", "--labeled", "1/4").code == 0
    assert os.readlink(runs / "latest") == "good"
    r = _train(cli, dataset, runs / "bad", *[a for s in DIVERGE for a in ("--set", s)])
    assert r.code == 1, r.err
    assert os.readlink(runs / "latest") == "good"  # a later default predict still finds a model
    assert [p.name for p in runs.iterdir() if p.name.startswith(".")] == []
    r = cli("evaluate", "--json")
    assert r.code == 0, r.err


# --- (d) --out folders that are not complete runs -----------------------------------------------------------


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_out_with_a_checkpoint_but_no_config(dataset, tmp_path, cli, monkeypatch, resume):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert _train(cli, dataset, run, "--labeled", "1/4", "--stop-after", "1").code == 0
    (run / "config.yaml").unlink()  # as a run killed at its start, or a folder copied in part
    before = _tree(run)
    r = _train(cli, dataset, run, "--labeled", "1/4", *(["--resume"] if resume else []))
    assert_user_error(r, str(run), "no config.yaml", "not a complete run")
    assert _tree(run) == before


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_out_that_is_a_foreign_folder(dataset, tmp_path, cli, monkeypatch, resume):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    r = _train(cli, dataset, out, "--labeled", "1/4", *(["--resume"] if resume else []))
    if resume:
        assert_user_error(r, "nothing to resume", "no rsseg run")
    else:
        assert_user_error(r, "not empty", "holiday.jpg", "new or empty folder")
    assert _tree(out) == {"holiday.jpg": b"jpeg"}
    assert not (tmp_path / "runs").exists()


def test_out_that_is_a_file(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").write_text("x")
    assert_user_error(_train(cli, dataset, tmp_path / "run", "--labeled", "1/4"), "is a file")
    assert (tmp_path / "run").read_text() == "x"


def test_run_stopped_before_its_first_checkpoint(dataset, tmp_path, cli, monkeypatch):
    """A run that diverged (or was killed) before its first checkpoint: --resume says so, a new train there
    starts afresh, with none of the old run's log lines."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert (
        _train(cli, dataset, run, "--labeled", "1/4", *[a for s in DIVERGE for a in ("--set", s)]).code == 1
    )
    assert (run / "config.yaml").exists() and not (run / "checkpoints" / "last.pt").exists()
    before = _tree(run)
    r = _train(cli, dataset, run, "--labeled", "1/4", "--resume")
    assert_user_error(r, "nothing to resume", "stopped before its first checkpoint", "without --resume")
    assert _tree(run) == before
    r = _train(cli, dataset, run, "--labeled", "1/4")
    assert r.code == 0, r.err
    assert "starting it afresh" in r.err
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert (run / "checkpoints" / "best.pt").exists()


# --- (e) resume: log line and train_log averages ------------------------------------------------------------


def test_resume_logs_the_right_step_file_and_averages(dataset, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    sets = ["--set", "train.iterations=6", "--set", "train.log_every=2", "--set", "train.eval_every=6"]
    r = _train(cli, dataset, run, "--labeled", "1/4", "--stop-after", "3", *sets)
    assert r.code == 0, r.err
    r = _train(cli, dataset, run, "--labeled", "1/4", "--resume", *sets)
    assert r.code == 0, r.err
    text = " ".join(r.err.split())
    assert f"resumed {run / 'checkpoints' / 'last.pt'} at step 3 of 6" in text
    records = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    # Step 4's average covers step 4 only (step 3 was trained before the resume) and says so.
    assert records[1]["from_step"] == 4
    assert "from_step" not in records[0] and "from_step" not in records[2]
