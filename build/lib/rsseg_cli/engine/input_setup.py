"""A run's input normalization: scaling (`model.input_scaling`) and statistics (`model.input_stats`), decided
once when training starts and recorded in every checkpoint (evaluation and prediction use the checkpoint's).

With `auto` the data follows the model's main backbone (the built model's resolved spec says which and with
what statistics); every other backbone, in the model or a method's frozen teachers, converts its input to its
own statistics. A configured value (`imagenet`, or explicit) feeds every backbone the same input as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from rsseg_cli.data.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalization, fixed_range

log = logging.getLogger("rsseg")


def check_scaling(cfg: Any, meta: dict) -> None:
    """Refuse a scaling the dataset cannot take (fixed on float data without bounds) before any model is
    built or downloaded."""
    if cfg.model.input_scaling == "fixed":
        fixed_range(meta.get("dtype"), cfg.model.input_range)


def run_normalization(
    cfg: Any, meta: dict, band_map: list[int | None], model: Any, method: Any
) -> Normalization:
    """The data normalization of a run whose model (and method) is built; in `auto` mode a method's frozen
    teachers are fitted to the model's input statistics here."""
    from rsseg_cli.models.input_stats import fit_backbones, main_backbone

    setting = cfg.model.input_stats
    if setting == "auto":
        stats = model.spec.input_stats.pair
        source = f"auto:{main_backbone(model.spec)}"
        converting = fit_backbones(model, stats)
        for teacher in getattr(method, "teachers", ()):
            converting += fit_backbones(teacher, stats)
        if converting:
            log.info(
                "input statistics of %s; %s re-standardize it to their own",
                main_backbone(model.spec),
                ", ".join(converting),
            )
    elif setting == "imagenet":
        stats, source = (IMAGENET_MEAN, IMAGENET_STD), "imagenet"
    else:
        stats, source = (setting.mean, setting.std), "configured"
    return Normalization.from_dataset(
        meta["statistics"],
        band_map,
        scaling=cfg.model.input_scaling,
        dtype=meta.get("dtype"),
        input_range=cfg.model.input_range,
        rgb_stats=stats,
        stats=source,
    )


def legacy_run_config(raw: dict) -> dict:
    """The saved configuration of a run begun before input statistics were configurable: it trained on
    ImageNet statistics for every backbone, and resumes so."""
    model = raw.get("model")
    if isinstance(model, dict) and "input_stats" not in model:
        return {**raw, "model": {**model, "input_stats": "imagenet"}}
    return raw
