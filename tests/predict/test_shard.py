"""Sharing prediction across processes: whole scenes largest first to the least loaded rank, a large scene's
column bands in contiguous runs, and a band run computed exactly as in the whole-scene stream."""

from __future__ import annotations

import numpy as np
import torch

from rsseg_cli.predict.shard import Part, assign
from rsseg_cli.predict.stream import StreamPredictor


def test_whole_scenes_go_largest_first_to_the_least_loaded_rank():
    costs = [5, 9, 1, 7, 3]
    parts = assign(costs, 2, [None] * 5)
    # By hand, loads (r0, r1): 9 (#1) -> r0 (9, 0); 7 (#3) -> r1 (9, 7); 5 (#0) -> r1 (9, 12); 3 (#4) -> r0
    # (12, 12); 1 (#2) -> a tie, the lowest rank: r0.
    assert parts == [[Part(1), Part(4), Part(2)], [Part(3), Part(0)]]
    assert sorted(p.index for ps in parts for p in ps) == list(range(5))


def test_a_split_scene_gives_each_rank_a_contiguous_run_of_its_bands_first():
    parts = assign([100, 10, 10], 3, [7, None, None])
    assert [ps[0] for ps in parts] == [Part(0, (0, 3)), Part(0, (3, 5)), Part(0, (5, 7))]
    # The small scenes then go where the least of the big one went (ranks 1 and 2: 2 bands each).
    assert parts[1][1:] == [Part(1)] and parts[2][1:] == [Part(2)]


def test_more_ranks_than_bands_leaves_the_extra_ranks_without_a_share():
    parts = assign([50], 4, [2])
    assert parts == [[Part(0, (0, 1))], [Part(0, (1, 2))], [], []]


def _stream(model, image: np.ndarray, bands=None) -> dict:
    pred = StreamPredictor(model, torch.from_numpy, 4, window=32, overlap=0.25, batch_size=3, band_width=48)
    c, h, w = image.shape
    out: dict = {}

    def read(r, col, size):
        data = np.zeros((c, size, size), image.dtype)
        valid = np.zeros((size, size), bool)
        hh, ww = min(size, h - r), min(size, w - col)
        data[:, :hh, :ww] = image[:, r : r + hh, col : col + ww]
        valid[:hh, :ww] = True
        return data, valid

    def sink(r0, r1, c0, c1, probs, valid):
        out[(r0, r1, c0, c1)] = probs.copy()

    plan = pred.run(read, h, w, sink, bands=bands)
    return out, plan


def test_band_runs_together_equal_the_whole_scene_bit_for_bit():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)  # looks across pixels: halo windows matter

    def model(x):
        with torch.no_grad():
            return conv(x).softmax(dim=1)

    image = np.random.default_rng(1).normal(size=(3, 90, 170)).astype(np.float32)
    whole, plan = _stream(model, image)
    assert plan.band_count() == 4
    first, _ = _stream(model, image, bands=(0, 2))
    second, _ = _stream(model, image, bands=(2, 4))
    assert set(first) | set(second) == set(whole) and not set(first) & set(second)
    for key, probs in {**first, **second}.items():
        np.testing.assert_array_equal(probs, whole[key])
    assert plan.windows_in((0, 2)) + plan.windows_in((2, 4)) == plan.windows_total
