"""Evaluation protocols against hand computations: which windows run, at what size, and how they combine.

The fake model's logits encode where each window lies: the image holds each pixel's own row and column, so a
window's top-left pixel tells its origin and every output pixel of that window carries it. Averaging those
over the windows covering a pixel gives numbers written out by hand below.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsseg_cli.engine.protocols import PROTOCOLS, get_protocol, protocol_probs, slide_spans
from rsseg_cli.engine.sliding import sliding_probs
from rsseg_cli.evaluation.metrics import class_indices, compute_metrics, ignore_true_classes

CO2S_NO_RESIZE = PROTOCOLS["co2s"]  # LoveDA: no resize
CO2S_512 = replace(PROTOCOLS["co2s"], short_side=512)


def coordinates(h: int, w: int) -> torch.Tensor:
    """(1, 2, h, w): channel 0 the pixel's row, channel 1 its column."""
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    return torch.stack([rows, cols])[None]


class OriginModel:
    """Logits (origin row, origin col, 1): each window's top-left coordinates everywhere in the window."""

    def __init__(self):
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.extend([tuple(x.shape[-2:])] * x.shape[0])
        origin = x[:, :, :1, :1].expand(-1, -1, *x.shape[-2:])
        return torch.cat([origin, torch.ones_like(x[:, :1])], dim=1)


def expected_average(h: int, w: int, row_spans, col_spans) -> torch.Tensor:
    """Mean window origin per pixel over the windows covering it, by loops over the listed spans."""
    total = torch.zeros(2, h, w)
    count = torch.zeros(h, w)
    for r0, r1 in row_spans:
        for c0, c1 in col_spans:
            total[0, r0:r1, c0:c1] += r0
            total[1, r0:r1, c0:c1] += c0
            count[r0:r1, c0:c1] += 1
    return total / count


# ---- Co2S: mmseg slide -------------------------------------------------------------------------------


def test_co2s_stride_is_the_release_int_of_five_sixths():
    # experiments.py: int(crop * (1 - 1/6)): 426 for 512, 213 for WHDLD's 256.
    assert PROTOCOLS["co2s"].stride(512) == 426
    assert PROTOCOLS["co2s"].stride(256) == 213
    assert PROTOCOLS["co2s"].stride(8) == 6


def test_slide_spans_shift_the_last_window_inside():
    # h=10, crop 8, stride 6: ceil((10-8)/6)+1 = 2 windows at 0 and 6, the second shifted back to 2.
    assert slide_spans(10, 8, 6) == [(0, 8), (2, 10)]
    # 512 px shortened to crop 256 / stride 213 (WHDLD at 512): starts 0, 213, 426 -> 256.
    assert slide_spans(512, 256, 213) == [(0, 256), (213, 469), (256, 512)]
    assert slide_spans(8, 8, 6) == [(0, 8)]
    assert slide_spans(5, 8, 6) == [(0, 5)]  # shorter than the crop: one unpadded window


def test_co2s_averages_logits_over_windows_not_a_multiple_of_the_stride():
    model = OriginModel()
    image = coordinates(10, 13)
    got = protocol_probs(model, image, 3, 8, CO2S_NO_RESIZE, (10, 13))
    # rows: (0, 8), (2, 10); cols: ceil((13-8)/6)+1 = 2 windows at 0 and 6 -> shifted to 5.
    want = expected_average(10, 13, [(0, 8), (2, 10)], [(0, 8), (5, 13)])
    assert model.sizes == [(8, 8)] * 4
    torch.testing.assert_close(got[0, :2], want)
    torch.testing.assert_close(got[0, 2], torch.ones(10, 13))  # a constant logit stays that constant
    # One pixel by hand: (5, 6) lies in all four windows: rows (0 + 2) / 2, cols (0 + 5) / 2.
    assert got[0, 0, 5, 6].item() == 1.0 and got[0, 1, 5, 6].item() == 2.5


def test_co2s_image_smaller_than_and_equal_to_the_window():
    small, equal = OriginModel(), OriginModel()
    got = protocol_probs(small, coordinates(5, 7), 3, 8, CO2S_NO_RESIZE, (5, 7))
    assert small.sizes == [(5, 7)]  # the image itself, no padding
    assert torch.all(got[0, :2] == 0)
    protocol_probs(equal, coordinates(8, 8), 3, 8, CO2S_NO_RESIZE, (8, 8))
    assert equal.sizes == [(8, 8)]


def test_co2s_accumulates_log_probabilities_when_the_model_gives_probabilities():
    # p = softmax(z); the slide then averages log p: for (z0, z1) = (row origin, 0) per window.
    def predict(x):
        z = torch.cat([x[:, :1, :1, :1].expand(-1, 1, *x.shape[-2:]), torch.zeros_like(x[:, :1])], dim=1)
        return z.softmax(dim=1)

    got = protocol_probs(predict, coordinates(10, 8), 2, 8, CO2S_NO_RESIZE, (10, 8), probabilities=True)
    # rows 2..7 see windows at 0 and 2: mean of log softmax([0, 0])[0] and log softmax([2, 0])[0].
    expected = (np.log(0.5) + (2 - np.log(np.exp(2) + 1))) / 2
    assert got[0, 0, 4, 3].item() == pytest.approx(expected, rel=1e-5)


def test_co2s_resizes_the_short_side_to_512_without_a_long_side_cap_and_back_to_the_label():
    model = OriginModel()
    # 64 x 640: mmseg Resize(img_scale=(2048, 512), min_size=512) gives 512 x 5120 (the 2048 cap drops out).
    # The recipes give validation's short side (train.rescale.val_short_side: 512); the protocol keeps it uncapped.
    got = protocol_probs(model, torch.zeros(1, 2, 64, 640), 3, 1024, CO2S_512, (64, 640))
    # rows: 512 < 1024, one window of 512; cols: stride int(1024 x 5/6) = 853, ceil(4096 / 853) + 1 = 6.
    assert model.sizes == [(512, 1024)] * 6
    assert got.shape == (1, 3, 64, 640)


def test_co2s_scores_come_back_with_align_corners():
    # A logit that is the column index at 16 px, resized to 4 px with align_corners=True: 0, 5, 10, 15.
    def predict(x):
        return coordinates(*x.shape[-2:])[:, 1:].expand(x.shape[0], -1, -1, -1)

    proto = replace(PROTOCOLS["co2s"], short_side=16)
    got = protocol_probs(predict, torch.zeros(1, 3, 4, 4), 1, 16, proto, (4, 4))
    torch.testing.assert_close(got[0, 0, 0], torch.tensor([0.0, 5.0, 10.0, 15.0]))


# ---- UniMatch V2 / RS-MTDF: whole image at a multiple of 14 -------------------------------------------


def test_unimatch_runs_the_whole_image_at_the_nearest_multiple_of_14():
    seen = []

    def predict(x):
        seen.append(tuple(x.shape[-2:]))
        return x[:, 1:2]  # the column coordinate, as resized with align_corners=True

    image = coordinates(20, 30)
    got = protocol_probs(predict, image, 1, 8, "unimatch", (20, 30))
    assert seen == [(14, 28)]  # int(20/14 + 0.5) * 14, int(30/14 + 0.5) * 14, ignoring the window
    # align_corners=True both ways keeps a linear ramp exact: column c reads c again.
    torch.testing.assert_close(got[0, 0], image[0, 1], atol=1e-4, rtol=0)
    assert get_protocol("rs-mtdf").multiple_of == 14


def test_unimatch_image_already_a_multiple_is_not_resized():
    model = OriginModel()
    got = protocol_probs(model, coordinates(28, 14), 3, 8, "unimatch", (28, 14))
    assert model.sizes == [(28, 14)] and torch.all(got[0, :2] == 0)


def test_unimatch_with_probabilities_uses_log_probabilities():
    z = torch.randn(1, 4, 14, 14, generator=torch.Generator().manual_seed(0))
    got = protocol_probs(
        lambda x: z.softmax(dim=1), torch.zeros(1, 3, 14, 14), 4, 8, "unimatch", (14, 14), True
    )
    torch.testing.assert_close(got, z.log_softmax(dim=1))


# ---- DWL: whole tile, no resize ------------------------------------------------------------------------


def test_dwl_predicts_the_whole_tile_once_at_its_own_size():
    model = OriginModel()
    got = protocol_probs(model, coordinates(10, 13), 3, 8, "dwl", (10, 13))
    assert model.sizes == [(10, 13)]  # larger than the window: still one pass
    assert torch.all(got[0, :2] == 0) and torch.all(got[0, 2] == 1)


# ---- rsseg: today's behaviour --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(6, 6), (8, 8), (19, 23)])
def test_rsseg_is_sliding_probs_at_overlap_quarter(size):
    z = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))

    def predict(x):  # logits that depend on content, so windows differ
        return torch.cat([x, x[:, :1] * 0.5], dim=1)

    got = protocol_probs(predict, z, 4, 8, "rsseg", size)
    assert torch.equal(got, sliding_probs(predict, z, 4, 8, overlap=0.25))


def test_rsseg_with_a_short_side_resizes_log_probabilities_back():
    z = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    proto = replace(PROTOCOLS["rsseg"], short_side=12)
    got = protocol_probs(lambda x: x, z, 3, 16, proto, (6, 6))
    up = F.interpolate(z, size=(12, 12), mode="bilinear", align_corners=False)
    want = F.interpolate(up.log_softmax(dim=1), size=(6, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_stacked_variants_are_combined_channel_by_channel():
    # K = 2 classes x 3 variants: each group of channels averages like a single model's.
    model = OriginModel()

    def stacked(x):
        out = model(x)[:, :2]
        return torch.cat([out, out + 1, out * 2], dim=1)

    got = protocol_probs(stacked, coordinates(10, 13), 6, 8, CO2S_NO_RESIZE, (10, 13))
    want = expected_average(10, 13, [(0, 8), (2, 10)], [(0, 8), (5, 13)])
    torch.testing.assert_close(got[0], torch.cat([want, want + 1, want * 2]))


def test_unknown_protocol_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="co2s"):
        get_protocol("mmseg")


# ---- exclusion in metrics ------------------------------------------------------------------------------

NAMES = ["road", "tree", "clutter"]
# Rows = truth, columns = prediction. N = 16; support 6, 6, 4; predicted 6, 6, 4; tp 4, 5, 2.
M = np.array([[4, 1, 1], [0, 5, 1], [2, 0, 2]], dtype=np.int64)
# road IoU 4 / (6 + 6 - 4) = 1/2, tree 5 / (6 + 6 - 5) = 5/7, clutter 2 / (4 + 4 - 2) = 1/3.
# F1: road 8/12 = 2/3, tree 10/12 = 5/6.


def test_excluded_class_leaves_the_means_but_its_pixels_stay_counted():
    got = compute_metrics(M, NAMES, exclude=["clutter"])
    assert got["mean_iou"] == pytest.approx((1 / 2 + 5 / 7) / 2)
    assert got["mean_f1"] == pytest.approx((2 / 3 + 5 / 6) / 2)
    assert got["fw_iou"] == pytest.approx((6 / 12) * (1 / 2) + (6 / 12) * (5 / 7))
    assert got["overall_accuracy"] == pytest.approx(11 / 16)  # clutter pixels included, as DWL's
    assert got["per_class"][2]["iou"] == pytest.approx(1 / 3)  # still reported
    assert got["excluded_classes"] == ["clutter"]
    assert "excluded: clutter" in got["mean_iou_note"]


def test_no_exclusion_keeps_the_output_unchanged():
    assert compute_metrics(M, NAMES, exclude=[]) == compute_metrics(M, NAMES)
    assert "excluded_classes" not in compute_metrics(M, NAMES)
    assert compute_metrics(M, NAMES)["mean_iou"] == pytest.approx((1 / 2 + 5 / 7 + 1 / 3) / 3)


def test_ignoring_the_excluded_truth_drops_its_row_only():
    ignored = ignore_true_classes(M, class_indices(NAMES, ["clutter"]))
    assert ignored.tolist() == [[4, 1, 1], [0, 5, 1], [0, 0, 0]]
    assert M[2].sum() == 4  # the input is not modified
    got = compute_metrics(ignored, NAMES, exclude=["clutter"])
    # road: support 6, predicted 4, tp 4 -> 4/6; tree: support 6, predicted 6, tp 5 -> 5/7. Predictions of
    # clutter on road and tree pixels stay misses of those classes.
    assert got["mean_iou"] == pytest.approx((4 / 6 + 5 / 7) / 2)
    assert got["overall_accuracy"] == pytest.approx(9 / 12)


def test_unknown_excluded_name_is_an_error():
    with pytest.raises(ValueError, match="unknown"):
        compute_metrics(M, NAMES, exclude=["unknown"])


# ---- through validation --------------------------------------------------------------------------------


def test_validation_runs_the_chosen_protocol(dataset):
    from torch import nn

    from rsseg_cli.config import IGNORE_INDEX
    from rsseg_cli.data.chipset import ChipDataset, EvalChips
    from rsseg_cli.data.normalize import Normalization, default_band_map
    from rsseg_cli.engine.validate import confusions_on_chips
    from rsseg_cli.evaluation.confusion import ConfusionMatrix

    data = ChipDataset.open(dataset)
    norm = Normalization.from_dataset(data.meta["statistics"], default_band_map(data.band_names))
    ids = data.split("val", labeled=True)["id"].tolist()[:2]
    torch.manual_seed(0)
    conv = nn.Conv2d(len(data.band_names), data.num_classes, 3, padding=1)
    sizes: list[tuple[int, int]] = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            sizes.extend([tuple(x.shape[-2:])] * x.shape[0])
            return self.conv(x)

    cpu = torch.device("cpu")
    cms = confusions_on_chips(Recorder(), data, ids, norm, 48, cpu, "fp32", protocol=CO2S_NO_RESIZE)
    # 64 px chips, crop 48, stride int(48 x 5/6) = 40: rows and cols (0, 48), (16, 64): 4 windows a chip.
    assert sizes == [(48, 48)] * 4 * len(ids)
    expected = ConfusionMatrix(data.num_classes)
    with torch.no_grad():
        for i in range(len(ids)):
            item = EvalChips(data, ids, norm)[i]
            total = torch.zeros(data.num_classes, 64, 64)
            count = torch.zeros(64, 64)
            for r in (0, 16):
                for c in (0, 16):
                    total[:, r : r + 48, c : c + 48] += conv(item["image"][None, :, r : r + 48, c : c + 48])[
                        0
                    ]
                    count[r : r + 48, c : c + 48] += 1
            expected.update((total / count).argmax(dim=0)[None], item["mask"][None])
    assert np.array_equal(cms["model"].matrix, expected.matrix)
    mask_pixels = sum(
        int((EvalChips(data, ids, norm)[i]["mask"] != IGNORE_INDEX).sum()) for i in range(len(ids))
    )
    assert int(cms["model"].matrix.sum()) == mask_pixels

    sizes.clear()
    default = confusions_on_chips(Recorder(), data, ids, norm, 48, cpu, "fp32")
    assert np.array_equal(
        default["model"].matrix,
        confusions_on_chips(Recorder(), data, ids, norm, 48, cpu, "fp32", protocol="rsseg")["model"].matrix,
    )
