"""Small datasets: a crop larger than the chips (mostly padding) is reduced to the chip size, and a run of
many tiny epochs is not validated after every one of them."""

from __future__ import annotations

import logging

from rsseg_cli.config import load_config
from rsseg_cli.engine.run import _fit_crop, run_training
from tests.helpers import TINY_HEAD, TINY_TRAIN


def test_crop_larger_than_chips_is_reduced_with_a_warning(caplog):
    cfg = load_config(overrides=["train.crop=518"])
    with caplog.at_level(logging.WARNING, logger="rsseg"):
        fitted = _fit_crop(cfg, 128)
    assert fitted.train.crop == 128 and cfg.train.crop == 518
    assert "larger than the dataset's 128 px chips" in caplog.text


def test_crop_within_chips_is_kept(caplog):
    cfg = load_config(overrides=["train.crop=96"])
    with caplog.at_level(logging.WARNING, logger="rsseg"):
        assert _fit_crop(cfg, 128).train.crop == 96
    assert not caplog.text


def test_tiny_epochs_are_not_all_validated(dataset, tmp_path, monkeypatch, no_plots):
    from rsseg_cli.engine import trainer

    # The cap's rule, checked at a cap of 5 rather than the default 20: 15 one-step epochs, not 60, show it.
    cap = 5
    monkeypatch.setattr(trainer, "MAX_VALIDATIONS", cap)
    sets = [s for s in TINY_TRAIN if not s.startswith("train.eval_every")]
    steps = 3 * cap
    cfg = load_config(
        overrides=[
            *sets,
            *TINY_HEAD,
            "train.method=supervised",
            "train.supervised.epoch_samples=1",  # one pass over the labeled chips per epoch
            f"train.iterations={steps}",
            "train.labeled=2",
        ]
    )
    run = run_training(dataset, cfg, out=tmp_path / "run")
    validations = (run / "metrics.jsonl").read_text().splitlines()
    # Two labeled chips make an epoch of one step: validated every step, that would be 15 validations.
    assert 1 < len(validations) <= cap
