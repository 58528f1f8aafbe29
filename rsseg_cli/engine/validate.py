"""Validation and chip evaluation: the model over whole chips through the sliding-window path, one global
confusion matrix (all-reduced across processes). With `short_side` (train.rescale.val_short_side) each chip
is first resized to that short side, as mmseg's keep-ratio test Resize does, and its prediction resized back
to the label's size: the metric always compares with the chip's own label."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from rsseg_cli.data.augment import short_side_size
from rsseg_cli.data.chipset import ChipDataset, EvalChips
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.precision import autocast
from rsseg_cli.engine.sliding import sliding_probs
from rsseg_cli.evaluation.confusion import ConfusionMatrix


@torch.no_grad()
def confusions_on_chips(
    model: nn.Module,
    data: ChipDataset,
    ids: list[str],
    norm: Normalization,
    window: int,
    device: torch.device,
    precision: str,
    rank: int = 0,
    world: int = 1,
    workers: int = 0,
    progress=None,
    short_side: int | None = None,
    max_long: int = 2048,
) -> dict[str, ConfusionMatrix]:
    """One confusion matrix per prediction the model offers: {'model': cm} for a plain model; for a model
    with `variants` (Co2S: each student and the ensemble) one per variant, all from a single pass.

    `short_side`: predict each chip resized (bilinear) so its short side is this (long side capped at
    `max_long`), then resize the log-probabilities bilinearly back to the mask's size before the argmax (for a
    single window of a plain model the same argmax as resizing its logits, as mmseg does)."""
    chips = EvalChips(data, ids, norm)
    mine = list(range(rank, len(chips), world))
    loader = DataLoader(torch.utils.data.Subset(chips, mine), batch_size=1, num_workers=workers)
    variants = tuple(getattr(model, "variants", ())) or ("model",)
    k = data.num_classes
    cms = {v: ConfusionMatrix(k) for v in variants}
    was_training = model.training
    model.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            if variants == ("model",):
                return model(x).float().softmax(dim=1)
            probs = model.variant_probs(x)
            return torch.cat([probs[v] for v in variants], dim=1)

    for batch in loader:
        image = batch["image"].to(device)
        target = batch["mask"].to(device)
        if short_side is not None:
            size = short_side_size(*image.shape[-2:], short_side, max_long)
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        probs = sliding_probs(predict, image, k * len(variants), window, probabilities=True)
        if probs.shape[-2:] != target.shape[-2:]:
            # One window of a plain model: log p = logits - one constant per pixel, so the same argmax.
            logp = probs.clamp(min=1e-30).log()
            probs = F.interpolate(logp, size=target.shape[-2:], mode="bilinear", align_corners=False)
        for v, p in zip(variants, probs.split(k, dim=1)):
            cms[v].update(p.argmax(dim=1), target)
        if progress is not None:
            progress.advance(1)
    model.train(was_training)
    for cm in cms.values():
        cm.all_reduce()
    return cms
