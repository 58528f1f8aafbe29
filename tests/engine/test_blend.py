"""Blending shared by validation and streaming prediction: the stride rule, constants reproduced everywhere on
both paths, and the same probabilities from both paths for the same image, window and overlap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsseg_cli.engine.blend import BlendAccumulator, stride_for, window_starts, window_weight
from rsseg_cli.engine.sliding import sliding_probs
from rsseg_cli.predict.stream import StreamPredictor
from tests.predict.test_stream import constant_model, run

SIZES = [(64, 64), (50, 70), (100, 130), (97, 33), (129, 129), (20, 20), (33, 200)]
IDS = ["exact", "smaller", "odd", "thin", "last-strip-1px", "tiny", "wide"]


@pytest.mark.parametrize(
    ("window", "overlap", "stride"),
    [
        (64, 0.0, 64),
        (64, 0.25, 48),
        (64, 0.5, 32),
        (33, 0.25, 25),
        (100, 0.9, 10),
        (10, 0.99, 1),
        (1, 0.5, 1),
    ],
)
def test_stride_rule(window, overlap, stride):
    # round(): 33 * 0.75 = 24.75 -> 25 and 100 * (1 - 0.9) = 9.999... -> 10, where int() gave 24 and 9.
    assert stride_for(window, overlap) == stride


@pytest.mark.parametrize("overlap", [-0.1, 1.0, 1.5])
def test_stride_rule_refuses_overlaps_outside_0_1(overlap):
    with pytest.raises(ValueError, match="overlap"):
        stride_for(64, overlap)


@pytest.mark.parametrize(("h", "w"), SIZES, ids=IDS)
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.8])
def test_constant_model_reproduced_everywhere_in_memory(h, w, overlap):
    values = [0.2, 0.5, 0.3]
    image = torch.zeros(2, 1, h, w)
    out = sliding_probs(constant_model(3, values), image, 3, 32, overlap, batch_size=3, probabilities=True)
    assert out.shape == (2, 3, h, w)
    expected = torch.tensor(values).view(1, 3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)
    for corner in (out[..., 0, 0], out[..., 0, -1], out[..., -1, 0], out[..., -1, -1]):
        torch.testing.assert_close(corner, expected[..., 0, 0], rtol=1e-6, atol=0)


def _models():
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 4, 1)
    # A 3x3 convolution sees the zero padding at window edges: its output depends on where the windows are,
    # so equality below also shows that both paths place and weigh the windows alike.
    spatial = torch.nn.Conv2d(3, 4, 3, padding=1)
    return {"1x1": pointwise, "3x3": spatial}


@pytest.mark.parametrize("kind", ["1x1", "3x3"])
@pytest.mark.parametrize(
    ("h", "w", "window", "overlap", "band"),
    [(150, 170, 48, 0.25, 64), (97, 61, 32, 0.5, 40), (40, 130, 48, 0.25, 4096), (129, 129, 64, 0.0, 64)],
)
def test_validation_and_streaming_give_the_same_probabilities(kind, h, w, window, overlap, band):
    conv = _models()[kind]

    def model(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return conv(x).softmax(dim=1)

    image = np.random.default_rng(0).normal(size=(3, h, w)).astype(np.float32)
    validation = sliding_probs(model, torch.from_numpy(image)[None], 4, window, overlap, probabilities=True)
    pred = StreamPredictor(
        model, torch.from_numpy, 4, window=window, overlap=overlap, batch_size=5, band_width=band
    )
    streamed, _ = run(pred, image)
    np.testing.assert_allclose(streamed, validation[0].numpy(), rtol=1e-5, atol=1e-5)


def test_window_starts_cover_the_axis_and_stay_inside_when_they_can():
    assert window_starts(100, 32, 24) == [0, 24, 48, 68]  # snapped back inside
    assert window_starts(20, 32, 24) == [0]  # shorter than a window: padded
    assert window_starts(32, 32, 24) == [0]


def test_weight_is_flat_on_image_borders_only():
    interior = window_weight(10, 10, 16, 100, 100)
    corner = window_weight(0, 0, 16, 100, 100)
    assert interior[0, 0] < 0.05 and interior[8, 8] > 0.95
    assert corner[0, 0] == 1.0 and corner[-1, -1] < 0.05
    assert window_weight(84, 84, 16, 100, 100)[-1, -1] == 1.0


def test_accumulator_region_offset_and_advance():
    acc = BlendAccumulator(2, 4, 6, row0=10, col0=3, track_valid=True)
    probs = torch.stack([torch.full((5, 5), 0.25), torch.full((5, 5), 0.75)])
    valid = torch.ones(5, 5, dtype=torch.bool)
    acc.add(
        8, 1, probs, torch.full((5, 5), 2.0), valid
    )  # rows 8..12, cols 1..5: overlaps rows 10..12, cols 3..5
    assert acc.weight[:3, :3].eq(2.0).all() and acc.weight[3:].eq(0).all() and acc.weight[:, 3:].eq(0).all()
    out = acc.result(3, (3, 6))
    torch.testing.assert_close(out[:, :, :3], probs[:, :3, :3])
    assert acc.covered(3, (3, 6)).tolist() == [[True, True, True]] * 3
    acc.advance(2)
    assert acc.row0 == 12
    assert acc.weight[0, :3].eq(2.0).all() and acc.weight[1:].eq(0).all() and not acc.valid[1:].any()
    acc.add(100, 100, probs, torch.ones(5, 5))  # outside the region: nothing happens
    assert acc.weight.sum() == 6.0
