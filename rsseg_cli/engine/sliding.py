"""Sliding-window inference with smooth blending, shared by validation and prediction.

Overlapping windows are blended with a Hann weight that does not taper where a window touches the image
border (there is no neighbour to blend with), and the sum is always divided by the accumulated weight, so a
model with a constant output reproduces that constant everywhere, corners included.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rsseg_cli.geo.grid import window_grid


def hann_profile(size: int, flat_start: bool, flat_end: bool, device=None) -> torch.Tensor:
    """1-D weight: sin^2 rising from the window edges, flat (1) on sides that touch the image border."""
    i = torch.arange(size, dtype=torch.float32, device=device)
    w = torch.sin(math.pi * (i + 0.5) / size) ** 2
    half = size // 2
    if flat_start:
        w[:half] = 1.0
    if flat_end:
        w[half:] = 1.0
    return w


def window_weight(top: bool, bottom: bool, left: bool, right: bool, size: int, device=None) -> torch.Tensor:
    rows = hann_profile(size, top, bottom, device)
    cols = hann_profile(size, left, right, device)
    return rows[:, None] * cols[None, :]


@torch.no_grad()
def sliding_probs(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    num_classes: int,
    window: int,
    overlap: float = 0.25,
    batch_size: int = 4,
    probabilities: bool = False,
) -> torch.Tensor:
    """Class probabilities (B, K, H, W) of `image` (B, C, H, W); `predict` maps a batch to logits, or to
    probabilities already (`probabilities`; blending is linear, so K may stack several predictions)."""
    b, _, h, w = image.shape

    def probs_of(x: torch.Tensor) -> torch.Tensor:
        out = predict(x).float()
        return out if probabilities else out.softmax(dim=1)

    if h <= window and w <= window:
        return probs_of(image)
    stride = max(1, int(window * (1 - overlap)))
    grid = window_grid(h, w, window, stride, "snap" if min(h, w) >= window else "pad")
    acc = torch.zeros(b, num_classes, h, w, device=image.device)
    norm = torch.zeros(1, 1, h, w, device=image.device)
    for start in range(0, len(grid), max(1, batch_size // b)):
        chunk = grid[start : start + max(1, batch_size // b)]
        crops = []
        for gw in chunk:
            crop = image[:, :, gw.row : gw.row + window, gw.col : gw.col + window]
            crops.append(crop)
        sizes = [(c.shape[-2], c.shape[-1]) for c in crops]
        padded = [
            torch.nn.functional.pad(c, (0, window - c.shape[-1], 0, window - c.shape[-2])) for c in crops
        ]
        probs = probs_of(torch.cat(padded)).split(b)
        for gw, (ch, cw), p in zip(chunk, sizes, probs):
            weight = window_weight(
                gw.row == 0, gw.row + window >= h, gw.col == 0, gw.col + window >= w, window, image.device
            )[:ch, :cw]
            acc[:, :, gw.row : gw.row + ch, gw.col : gw.col + cw] += p[:, :, :ch, :cw] * weight
            norm[:, :, gw.row : gw.row + ch, gw.col : gw.col + cw] += weight
    return acc / norm
