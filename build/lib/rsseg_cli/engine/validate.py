"""Validation and chip evaluation: the model over whole chips through the sliding-window path, one global
confusion matrix (all-reduced across processes). With `short_side` (train.rescale.val_short_side) each chip
is first resized to that short side, as mmseg's keep-ratio test Resize does, and its prediction resized back
to the label's size: the metric always compares with the chip's own label. `protocol` picks how a chip is
run (engine/protocols.py: rsseg's blended windows, or a paper release's recipe)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from rsseg_cli.data.chipset import ChipDataset, EvalChips
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.precision import autocast
from rsseg_cli.engine.protocols import Protocol, get_protocol, protocol_probs
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
    protocol: str | Protocol = "rsseg",
) -> dict[str, ConfusionMatrix]:
    """One confusion matrix per prediction the model offers: {'model': cm} for a plain model; for a model
    with `variants` (Co2S: each student and the ensemble) one per variant, all from a single pass.

    `short_side`: predict each chip resized (bilinear) so its short side is this (long side capped at
    `max_long`), then resize the log-probabilities bilinearly back to the mask's size before the argmax (for a
    single window of a plain model the same argmax as resizing its logits, as mmseg does). Given, it
    replaces the protocol's own resize (Co2S: short side 512).

    `protocol`: a name of engine.protocols.PROTOCOLS or a Protocol. Protocols that accumulate logits
    get a plain model's logits; a model with variants offers probabilities only, whose log is used."""
    chips = EvalChips(data, ids, norm)
    mine = list(range(rank, len(chips), world))
    loader = DataLoader(torch.utils.data.Subset(chips, mine), batch_size=1, num_workers=workers)
    variants = tuple(getattr(model, "variants", ())) or ("model",)
    k = data.num_classes
    cms = {v: ConfusionMatrix(k) for v in variants}
    was_training = model.training
    model.eval()
    proto = get_protocol(protocol)
    if short_side is not None:  # uncapped protocols stay uncapped (Co2S: mmseg's min_size drops the cap)
        proto = replace(proto, short_side=short_side, max_long=max_long if proto.max_long else None)
    plain_logits = proto.accumulate == "logits" and variants == ("model",)

    def predict(x: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            if variants == ("model",):
                logits = model(x).float()
                return logits if plain_logits else logits.softmax(dim=1)
            probs = model.variant_probs(x)
            return torch.cat([probs[v] for v in variants], dim=1)

    for batch in loader:
        image = batch["image"].to(device)
        target = batch["mask"].to(device)
        probs = protocol_probs(
            predict,
            image,
            k * len(variants),
            window,
            proto,
            target.shape[-2:],
            probabilities=not plain_logits,
        )
        for v, p in zip(variants, probs.split(k, dim=1)):
            cms[v].update(p.argmax(dim=1), target)
        if progress is not None:
            progress.advance(1)
    model.train(was_training)
    for cm in cms.values():
        cm.all_reduce()
    return cms
