"""Validation and chip evaluation: the model over whole chips through the sliding-window path, one global
confusion matrix (all-reduced across processes)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from rsseg_cli.data.chipset import ChipDataset, EvalChips
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.precision import autocast
from rsseg_cli.engine.sliding import sliding_probs
from rsseg_cli.evaluation.confusion import ConfusionMatrix


@torch.no_grad()
def confusion_on_chips(
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
) -> ConfusionMatrix:
    chips = EvalChips(data, ids, norm)
    mine = list(range(rank, len(chips), world))
    loader = DataLoader(torch.utils.data.Subset(chips, mine), batch_size=1, num_workers=workers)
    cm = ConfusionMatrix(data.num_classes)
    was_training = model.training
    model.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            return model(x)

    for batch in loader:
        image = batch["image"].to(device)
        probs = sliding_probs(predict, image, data.num_classes, window)
        cm.update(probs.argmax(dim=1), batch["mask"].to(device))
        if progress is not None:
            progress.advance(1)
    model.train(was_training)
    cm.all_reduce()
    return cm
