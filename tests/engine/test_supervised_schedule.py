"""The supervised baseline trains with the released supervised recipe (methods.md): a doubled labeled batch and
an epoch of max(labeled chips, 3000) samples, both configurable; train.iterations still sets the length."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.chipset import ChipDataset
from rsseg_cli.data.normalize import Normalization, default_band_map
from rsseg_cli.engine.run import run_training
from rsseg_cli.engine.sampler import EpochSampler
from rsseg_cli.engine.trainer import RunSpec, Trainer
from rsseg_cli.methods import configured_model
from tests.helpers import TINY_TRAIN

# TINY_TRAIN's batch (2) and length (iterations) are what these tests vary.
BASE = [s for s in TINY_TRAIN if not s.startswith(("train.iterations", "train.eval_every"))]
BATCH = 2


def _run_info(dataset: Path, out: Path, *sets: str) -> dict:
    # No validation: these tests read the schedule, and validating would double their time.
    cfg = load_config(overrides=[*BASE, "train.labeled=3", "train.validation=false", *sets])
    return json.loads((run_training(dataset, cfg, out=out) / "run.json").read_text())


def test_epoch_samples_repeat_a_small_dataset_evenly():
    sampler = EpochSampler(size=5, batch_size=4, seed=0, epoch_samples=30)
    assert sampler.batches_per_epoch == math.ceil(30 / 4)
    counts = Counter(i for _, i in sampler)
    assert sum(counts.values()) == 8 * 4
    # Whole permutations repeat: every chip is seen 6 or 7 times, none starved.
    assert set(counts) == set(range(5)) and max(counts.values()) - min(counts.values()) <= 1


def test_epoch_samples_below_the_dataset_keep_one_pass():
    assert EpochSampler(size=50, batch_size=4, seed=0, epoch_samples=30).batches_per_epoch == 50 // 4
    assert EpochSampler(size=5, batch_size=4, seed=0).batches_per_epoch == 1


def test_supervised_trainer_draws_the_doubled_batch_over_a_3000_sample_epoch(dataset, tmp_path):
    cfg = load_config(overrides=[*BASE, "train.method=supervised", "train.iterations=1"])
    data = ChipDataset.open(dataset)
    ids = data.split("train", labeled=True)["id"].tolist()[:3]
    band_map = default_band_map(data.band_names)
    norm = Normalization.from_dataset(data.meta["statistics"], band_map)
    method, model = configured_model(cfg, data.meta["classes"], len(data.band_names), band_map)
    spec = RunSpec(cfg, tmp_path, data, norm, band_map, ids, [], [], torch.device("cpu"), "fp32")
    trainer = Trainer(spec, model, method)
    assert trainer.steps_per_epoch == math.ceil(3000 / (2 * BATCH))
    trainer.labeled.start(0)
    batch = trainer.labeled.next()
    assert batch["image"].shape[0] == batch["mask"].shape[0] == 2 * BATCH


def test_supervised_run_records_the_recipe_schedule(dataset, tmp_path):
    steps_per_epoch = math.ceil(3000 / (2 * BATCH))
    info = _run_info(dataset, tmp_path / "run", "train.method=supervised", "train.epochs=0.004")
    assert info["labeled_batch"] == 2 * BATCH
    assert info["steps_per_epoch"] == steps_per_epoch
    assert info["total_steps"] == math.ceil(0.004 * steps_per_epoch)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "batch_multiplier: 2" in saved and "epoch_samples: 3000" in saved


def test_supervised_recipe_is_configurable_and_iterations_win(dataset, tmp_path):
    info = _run_info(
        dataset,
        tmp_path / "run",
        "train.method=supervised",
        "train.supervised.batch_multiplier=1",
        "train.supervised.epoch_samples=10",
        "train.iterations=2",
    )
    assert info["labeled_batch"] == BATCH
    assert info["steps_per_epoch"] == math.ceil(10 / BATCH)
    assert info["total_steps"] == 2
    records = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == [1, 2]


def test_semi_supervised_methods_keep_their_labeled_batch(dataset, tmp_path):
    info = _run_info(dataset, tmp_path / "run", "train.method=fixmatch", "train.iterations=1")
    assert info["labeled_batch"] == info["unlabeled_batch"] == BATCH
    assert info["steps_per_epoch"] == info["unlabeled_chips"] // BATCH


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_bad_recipe_settings_are_rejected(value):
    from rsseg_cli.errors import UserError

    with pytest.raises(UserError, match="epoch_samples"):
        load_config(overrides=[f"train.supervised.epoch_samples={value}"])
