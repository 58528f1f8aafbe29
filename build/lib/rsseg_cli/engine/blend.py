"""Blending of overlapping sliding windows: one stride rule, window placement, weight and accumulator.

Validation (whole chips in memory, engine/sliding.py) and streaming prediction (scenes of any size,
predict/stream.py) both go through this module, so the same image, window and overlap give the same
probabilities either way.

- `stride_for(window, overlap)`: the step between windows.
- `window_starts(length, window, stride)`: where windows start along one axis (geo.grid places them; the edge
  policy is chosen here: windows snap back inside an axis at least one window long, and hang over, padded,
  an axis shorter than a window).
- `window_weight(...)`: a Hann (sin^2) weight that does not taper on sides where the window touches the image
  border, since no neighbour blends there.
- `BlendAccumulator`: the weighted sum and the summed weight over a region of the image; `result()` divides
  one by the other, so a model with a constant output reproduces that constant everywhere, corners included.
  The region is the whole image for validation; for the stream it is a strip one window high that slides
  down the scene (`advance`), so memory depends on the window and band width, never on the scene.

It imports only geo/ (predict/ builds on engine/, never the reverse).

Two array kinds, one code: torch tensors (validation on the model's device, the .pt stream on the CPU), or
numpy arrays with `device=NUMPY` (the .onnx stream, which runs where torch is not installed). They differ in
the last bits (torch's and numpy's sin and fused multiply-add round differently), so each path keeps its own
kind rather than one converting to the other: a .pt prediction stays what it was, an .onnx one is the same
with or without torch.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from rsseg_cli.geo.grid import EdgePolicy, axis_starts

if TYPE_CHECKING:
    import torch

NUMPY = "numpy"  # the `device` of numpy arrays


def stride_for(window: int, overlap: float) -> int:
    """Pixels between window starts for a fractional `overlap` in [0, 1).

    round(), not int(): the stride nearest the requested overlap. Truncation always rounds the stride down
    (more windows than asked for: window 33 at overlap 0.25 gives int(24.75) = 24, round 25), and it turns a
    float product that lands just below an integer into the integer below: window 100 at overlap 0.9 is
    100 * 0.09999999999999998, int() 9, round() 10. At least 1, so an overlap close to 1 still moves.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    return max(1, round(window * (1 - overlap)))


def edge_policy(length: int, window: int) -> EdgePolicy:
    """Snap keeps every window inside an axis at least one window long; a shorter axis is padded (and the
    padding masked or cropped away)."""
    return "snap" if length >= window else "pad"


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window start offsets along one axis of `length` pixels, as both inference paths place them."""
    return axis_starts(length, window, stride, edge_policy(length, window))


def hann_profile(size: int, flat_start: bool, flat_end: bool, device=None) -> Any:
    """1-D weight: sin^2 rising from the window edges, flat (1) on sides that touch the image border."""
    if device == NUMPY:
        i = np.arange(size, dtype=np.float32)
        w = np.sin(np.float32(math.pi) * (i + np.float32(0.5)) / np.float32(size)) ** 2
    else:
        import torch

        i = torch.arange(size, dtype=torch.float32, device=device)
        w = torch.sin(math.pi * (i + 0.5) / size) ** 2
    half = size // 2
    if flat_start:
        w[:half] = 1.0
    if flat_end:
        w[half:] = 1.0
    return w


@functools.lru_cache(maxsize=36)  # 9 border cases per window size and device; read-only, never written to
def _weight(size: int, top: bool, bottom: bool, left: bool, right: bool, device: Any) -> Any:
    rows = hann_profile(size, top, bottom, device)
    cols = hann_profile(size, left, right, device)
    return rows[:, None] * cols[None, :]


def window_weight(
    row: int, col: int, window: int, height: int, width: int, device: torch.device | str | None = None
) -> Any:
    """The (window, window) blending weight of the window at (row, col) of a height x width image: flat on
    the sides where it touches the image border; a numpy array for device=NUMPY, else a tensor. Cached: do
    not modify the returned array."""
    if device != NUMPY:
        import torch

        device = torch.device(device if device is not None else "cpu")
    return _weight(window, row == 0, row + window >= height, col == 0, col + window >= width, device)


class BlendAccumulator:
    """Weighted sum and summed weight of window predictions over the image rows [row0, row0 + height) and
    columns [col0, col0 + width); `channels` is the leading shape of a prediction, e.g. (K,) or (B, K).

    `add` takes a window's prediction in image coordinates and keeps the part inside the region; `result`
    divides the sum by the weight. With `track_valid` a boolean validity plane travels along (pixels count as
    valid where a window said so and some weight arrived). `advance(n)` slides the region down by n rows:
    the top n rows leave, n empty rows enter at the bottom (the stream's strip).
    """

    def __init__(
        self,
        channels: int | tuple[int, ...],
        height: int,
        width: int,
        *,
        row0: int = 0,
        col0: int = 0,
        device: torch.device | str | None = None,
        track_valid: bool = False,
    ):
        lead = (channels,) if isinstance(channels, int) else tuple(channels)
        self.row0, self.col0 = row0, col0
        self.height, self.width = height, width
        self.numpy = device == NUMPY
        if self.numpy:
            zeros: Any = np.zeros
            f32, boolean = np.float32, np.bool_
        else:
            import torch

            zeros = functools.partial(torch.zeros, device=device)
            f32, boolean = torch.float32, torch.bool
        self.sum = zeros((*lead, height, width), dtype=f32)
        self.weight = zeros((height, width), dtype=f32)
        self.valid = zeros((height, width), dtype=boolean) if track_valid else None

    @property
    def nbytes(self) -> int:
        planes = [self.sum, self.weight] + ([self.valid] if self.valid is not None else [])
        return sum(t.nbytes if self.numpy else t.element_size() * t.nelement() for t in planes)

    def add(
        self,
        row: int,
        col: int,
        probs: Any,
        weight: Any,
        valid: Any = None,
    ) -> None:
        """Add `probs` (*channels, h, w) placed at image (row, col), times `weight` (>= h, >= w; its top-left
        part is used), and OR `valid` (h, w) into the validity plane. Parts outside the region are dropped."""
        h, w = probs.shape[-2:]
        r0, r1 = max(row, self.row0), min(row + h, self.row0 + self.height)
        c0, c1 = max(col, self.col0), min(col + w, self.col0 + self.width)
        if r1 <= r0 or c1 <= c0:
            return
        src = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        dst = (slice(r0 - self.row0, r1 - self.row0), slice(c0 - self.col0, c1 - self.col0))
        wt = weight[src]
        if self.numpy:
            self.sum[(..., *dst)] += probs[(..., *src)] * wt
        else:
            self.sum[(..., *dst)].addcmul_(probs[(..., *src)], wt)  # in place: no temporary window product
        self.weight[dst] += wt
        if valid is not None and self.valid is not None:
            self.valid[dst] |= valid[src]

    def _span(self, rows: int | None, cols: tuple[int, int] | None) -> tuple[slice, slice]:
        n = self.height if rows is None else rows
        c0, c1 = (self.col0, self.col0 + self.width) if cols is None else cols
        return slice(0, n), slice(c0 - self.col0, c1 - self.col0)

    def result(self, rows: int | None = None, cols: tuple[int, int] | None = None) -> Any:
        """Blended predictions: sum / weight over the first `rows` rows of the region (all by default) and the
        image columns [cols[0], cols[1]) (the whole region by default); 0 where no weight arrived."""
        rs, cs = self._span(rows, cols)
        weight = self.weight[rs, cs]
        return self.sum[..., rs, cs] / (np.maximum(weight, 1e-12) if self.numpy else weight.clamp_min(1e-12))

    def covered(self, rows: int | None = None, cols: tuple[int, int] | None = None) -> Any:
        """Where some weight arrived and, with `track_valid`, a window marked the pixel valid."""
        rs, cs = self._span(rows, cols)
        out = self.weight[rs, cs] > 0
        return out & self.valid[rs, cs] if self.valid is not None else out

    def advance(self, n: int) -> None:
        """Slide the region down by `n` rows: rows [row0, row0 + n) leave, n empty rows enter below."""
        n = max(0, min(n, self.height))
        if n == 0:
            return
        keep = self.height - n
        planes = [self.sum, self.weight] + ([self.valid] if self.valid is not None else [])
        for t in planes:
            if keep:
                # torch refuses overlapping in-place copies: the kept rows go through a temporary (as numpy's
                # overlapping assignment does internally).
                t[..., :keep, :] = t[..., n:, :] if self.numpy else t[..., n:, :].clone()
            t[..., keep:, :] = 0
        self.row0 += n
