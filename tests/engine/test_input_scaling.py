"""Input scaling (percentile / fixed) and statistics are decided when training, recorded in the checkpoint,
and used by evaluation and prediction; checkpoints of earlier formats keep their behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.normalize import IMAGENET_MEAN, Normalization
from rsseg_cli.engine.checkpoint import Checkpoint, upgrade
from rsseg_cli.errors import UserError
from tests.helpers import TINY_TRAIN

STATS = {"p2": [10.0, 20.0, 30.0, 5.0], "p98": [200.0, 210.0, 220.0, 100.0]}
BAND_MAP = [0, 1, 2, None]


def test_fixed_scaling_divides_by_the_dtype_range_before_standardizing():
    norm = Normalization.from_dataset(STATS, BAND_MAP, scaling="fixed", dtype="uint8")
    assert norm.low == (0.0,) * 4 and norm.high == (255.0,) * 4 and norm.scaling == "fixed"
    raw = np.array([0, 255, 51, 300], np.float32).reshape(4, 1, 1)
    unit = norm.stretch(raw).flatten().tolist()
    assert unit[0] == 0.0 and unit[1] == 1.0 and unit[2] == pytest.approx(0.2) and unit[3] == 1.0
    # The percentile stretch (the default) maps the dataset's 2..98 % instead.
    assert Normalization.from_dataset(STATS, BAND_MAP).stretch(raw).flatten()[0] == 0.0
    assert Normalization.from_dataset(STATS, BAND_MAP).low == (10.0, 20.0, 30.0, 5.0)
    # model_input (prediction) is the same stretch, then the standardization.
    pixel = np.full((4, 1, 1), 255, np.uint8)
    expected = [(1 - m) / s for m, s in zip(norm.mean, norm.std)]
    assert norm.model_input(pixel).flatten().tolist() == pytest.approx(expected)
    assert Normalization.from_dataset(STATS, BAND_MAP, scaling="fixed", dtype="uint16").high[0] == 65535
    assert Normalization.from_dataset(STATS, BAND_MAP, scaling="fixed", dtype="int16").high[0] == 32767


def test_fixed_scaling_of_float_data_needs_explicit_bounds():
    with pytest.raises(UserError, match=r"float32 pixels.*model\.input_range"):
        Normalization.from_dataset(STATS, BAND_MAP, scaling="fixed", dtype="float32")
    norm = Normalization.from_dataset(STATS, BAND_MAP, scaling="fixed", dtype="float32", input_range=[0, 2])
    assert norm.low == (0.0,) * 4 and norm.high == (2.0,) * 4
    with pytest.raises(UserError, match="input_range"):
        load_config(overrides=["model.input_range=[0,1]"])  # percentile has no bounds to give


def test_statistics_follow_the_setting_with_the_rgb_mean_for_other_bands():
    sat = ((0.43, 0.411, 0.296), (0.213, 0.156, 0.143))
    norm = Normalization.from_dataset(STATS, BAND_MAP, rgb_stats=sat, stats="auto:dinov3_l_sat")
    assert norm.mean[:3] == sat[0] and norm.std[:3] == sat[1]
    assert norm.mean[3] == pytest.approx(np.mean(sat[0])) and norm.std[3] == pytest.approx(np.mean(sat[1]))
    again = Normalization.from_dict(norm.to_dict())
    assert again == norm and again.stats == "auto:dinov3_l_sat"


def test_a_format_2_checkpoint_keeps_percentile_and_imagenet_statistics():
    old = {"low": [1.0], "high": [2.0], "mean": [0.485], "std": [0.229]}
    payload = upgrade({"format": 2, "normalization": old, "model": {"num_classes": 2, "in_chans": 1}})
    assert payload["normalization"] == {**old, "scaling": "percentile", "stats": "imagenet"}
    assert Normalization.from_dict(old) == Normalization.from_dict(payload["normalization"])
    assert "input_stats" not in payload["model"]  # null in the spec: no backbone converts its input


def test_training_records_fixed_scaling_and_prediction_uses_it(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training
    from rsseg_cli.predict.model import load_inference_model

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            "train.method=supervised",
            "train.iterations=1",
            "train.eval_every=1",
            "model.input_scaling=fixed",
            "model.input_stats=imagenet",
        ]
    )
    run = run_training(dataset, cfg, out=tmp_path / "run")
    ckpt = Checkpoint.read(run / "checkpoints" / "best.pt")
    top = float(np.iinfo(np.dtype(ckpt.dtype)).max)
    assert ckpt.normalization["scaling"] == "fixed" and ckpt.normalization["stats"] == "imagenet"
    assert ckpt.normalization["low"] == [0.0] * 4 and ckpt.normalization["high"] == [top] * 4
    assert ckpt.normalization["mean"][:3] == list(IMAGENET_MEAN) and ckpt.model["input_stats"] is None
    info = json.loads((run / "run.json").read_text())
    assert info["normalization"] == {"scaling": "fixed", "stats": "imagenet"}
    inference = load_inference_model(run / "checkpoints" / "best.pt", torch.device("cpu"), "fp32")
    assert inference.normalization == Normalization.from_dict(ckpt.normalization)
    window = np.full((4, 2, 2), top, np.dtype(ckpt.dtype))
    x = inference.prepare(window, np.ones((2, 2), bool))
    expected = [(1 - m) / s for m, s in zip(inference.normalization.mean, inference.normalization.std)]
    assert x[:, 0, 0].tolist() == pytest.approx(expected)


def test_auto_statistics_of_a_run_are_the_backbones_and_recorded(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            "model.backbone=clip_b16_timm",
            "train.method=supervised",
            "train.iterations=1",
            "train.eval_every=1",
        ]
    )
    run = run_training(dataset, cfg, out=tmp_path / "run")
    ckpt = Checkpoint.read(run / "checkpoints" / "best.pt")
    openai_mean = [0.48145466, 0.4578275, 0.40821073]
    assert (
        ckpt.normalization["scaling"] == "percentile" and ckpt.normalization["stats"] == "auto:clip_b16_timm"
    )
    assert ckpt.normalization["mean"][:3] == openai_mean and ckpt.model["input_stats"]["mean"] == openai_mean
