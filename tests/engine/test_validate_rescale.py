"""Chip validation at train.rescale.val_short_side: predict the resized chip, score at the label's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.chipset import ChipDataset, EvalChips
from rsseg_cli.data.normalize import Normalization, default_band_map
from rsseg_cli.engine.validate import confusions_on_chips
from rsseg_cli.evaluation.confusion import ConfusionMatrix


class Recorder(nn.Module):
    """A 3x3 convolution to class logits that records the input sizes it sees."""

    def __init__(self, bands: int, classes: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(bands, classes, 3, padding=1)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.extend([tuple(x.shape[-2:])] * x.shape[0])  # one entry per image or window
        return self.conv(x)


def _setup(dataset):
    data = ChipDataset.open(dataset)
    norm = Normalization.from_dataset(data.meta["statistics"], default_band_map(data.band_names))
    ids = data.split("val", labeled=True)["id"].tolist()[:3]
    return data, norm, ids, Recorder(len(data.band_names), data.num_classes)


def test_val_short_side_resizes_the_chip_and_scores_at_the_mask_size(dataset):
    data, norm, ids, model = _setup(dataset)
    cms = confusions_on_chips(model, data, ids, norm, 128, torch.device("cpu"), "fp32", short_side=128)
    assert model.sizes == [(128, 128)] * len(ids)  # 64 px chips predicted at short side 128, one window each
    chips = EvalChips(data, ids, norm)
    expected = ConfusionMatrix(data.num_classes)
    valid = 0
    with torch.no_grad():
        for i in range(len(chips)):
            item = chips[i]
            up = F.interpolate(item["image"][None], size=(128, 128), mode="bilinear", align_corners=False)
            logits = F.interpolate(model.conv(up), size=(64, 64), mode="bilinear", align_corners=False)
            expected.update(logits.argmax(dim=1), item["mask"][None])
            valid += int((item["mask"] != IGNORE_INDEX).sum())
    got, want = cms["model"].matrix, expected.matrix
    assert int(got.sum()) == valid  # every labeled pixel of the 64 px masks, once
    assert int(abs(got.astype(int) - want.astype(int)).sum()) <= 2 * max(
        1, valid // 1000
    )  # resized log p: the logits' argmax


def test_val_short_side_caps_the_long_side_and_slides_windows(dataset):
    data, norm, ids, model = _setup(dataset)
    # short side 256 of a square 64 px chip, but the long side is capped at 160: 160 x 160, windows of 96.
    cms = confusions_on_chips(
        model, data, ids[:1], norm, 96, torch.device("cpu"), "fp32", short_side=256, max_long=160
    )
    assert set(model.sizes) == {(96, 96)} and len(model.sizes) >= 4
    mask = EvalChips(data, ids[:1], norm)[0]["mask"]
    assert int(cms["model"].matrix.sum()) == int((mask != IGNORE_INDEX).sum())


def test_without_val_short_side_chips_are_predicted_at_their_own_size(dataset):
    data, norm, ids, model = _setup(dataset)
    cms = confusions_on_chips(model, data, ids, norm, 64, torch.device("cpu"), "fp32")
    assert model.sizes == [(64, 64)] * len(ids)
    masks = [EvalChips(data, ids, norm)[i]["mask"] for i in range(len(ids))]
    assert int(cms["model"].matrix.sum()) == sum(int((m != IGNORE_INDEX).sum()) for m in masks)
