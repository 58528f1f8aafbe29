"""The papers' recipes and their reproduction overlays (configs/published/) load, compose and train a few steps
with shrunk models on the sample dataset: nothing in them is a dead key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsseg_cli.config import load_config
from tests.methods.test_co2s import TINY_CO2S
from tests.methods.test_rs_mtdf import TINY_TEACHERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Shrunk: tiny models, no hub, 2 steps, and the recipes' 512 px rescale brought down to the tiny crop.
SHRINK = [
    "model.weights=none",
    "model.backbone_kwargs={depth: 2, embed_dim: 48, num_heads: 3, patch_size: 8, img_size: 64}",
    "train.crop=48",
    "train.batch_size=2",
    "train.batch_size_unlabeled=2",
    "train.workers=0",
    "train.iterations=2",
    "train.eval_every=2",
    "train.rescale.short_side=64",
    "train.rescale.max_long=128",
    "train.rescale.val_short_side=64",
]


def test_published_co2s_overlay_is_the_releases_setting():
    cfg = load_config([CONFIGS / "co2s" / "potsdam.yaml", CONFIGS / "published" / "co2s.yaml"])
    assert cfg.train.co2s.stability_weight == 0.0  # the release's detached loss trains nothing
    assert (cfg.predict.student, cfg.evaluate.student) == ("clip", "clip")
    assert cfg.train.precision == "fp32"
    assert (cfg.model.input_stats, cfg.model.input_scaling) == ("imagenet", "fixed")
    # The dataset recipe's own parts stay: classes, data pipeline, optimizer.
    assert cfg.classes[0].name == "impervious_surface" and cfg.train.rescale.mode == "short_side"
    assert cfg.train.lr == pytest.approx(1e-6) and cfg.train.co2s.text_queries == "single"
    improved = load_config(CONFIGS / "co2s" / "potsdam.yaml")
    assert improved.train.co2s.stability_weight == 0.5 and improved.model.input_stats == "auto"


@pytest.mark.parametrize(
    ("recipe", "overlay", "tiny"),
    [
        ("co2s/potsdam.yaml", "published/co2s.yaml", TINY_CO2S),
        ("co2s/loveda.yaml", None, TINY_CO2S),
        ("rs-mtdf/potsdam.yaml", "published/rs-mtdf.yaml", TINY_TEACHERS),
        ("rs-mtdf/deepglobe.yaml", None, TINY_TEACHERS),
    ],
)
def test_recipe_trains_a_few_steps(dataset, tmp_path, recipe, overlay, tiny):
    from rsseg_cli.engine.run import run_training

    files = [CONFIGS / recipe, *([CONFIGS / overlay] if overlay else [])]
    cfg = load_config(files, overrides=[*SHRINK, *tiny, "train.labeled=1/4"])
    out = run_training(dataset, cfg, out=tmp_path / "run")
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["method"] == cfg.train.method
    assert ckpt["normalization"]["scaling"] == "fixed"  # the recipes' 8-bit scaling, recorded
    info = json.loads((out / "run.json").read_text())
    assert info["total_steps"] == 2
