"""Sliding-window inference over whole images held in memory (validation and chip evaluation).

Window placement, stride, blending weight and accumulator are those of predict/blend.py, which streaming
prediction uses too: the same image, window and overlap give the same probabilities on either path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from rsseg_cli.engine.blend import BlendAccumulator, stride_for, window_starts, window_weight


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
    stride = stride_for(window, overlap)
    windows = [(r, c) for r in window_starts(h, window, stride) for c in window_starts(w, window, stride)]
    acc = BlendAccumulator((b, num_classes), h, w, device=image.device)
    per_pass = max(1, batch_size // b)
    for start in range(0, len(windows), per_pass):
        chunk = windows[start : start + per_pass]
        crops = [image[:, :, r : r + window, c : c + window] for r, c in chunk]
        # A window longer than its axis hangs over the edge: pad it to full size (add() drops the overhang).
        crops = [F.pad(x, (0, window - x.shape[-1], 0, window - x.shape[-2])) for x in crops]
        for (r, c), p in zip(chunk, probs_of(torch.cat(crops)).split(b)):
            acc.add(r, c, p, window_weight(r, c, window, h, w, image.device))
    return acc.result()
