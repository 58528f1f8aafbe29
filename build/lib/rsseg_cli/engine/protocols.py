"""Evaluation protocols: how a whole chip becomes one score map per pixel, as each paper's release does it.

A `Protocol` names the choices that move published numbers: an image resize before inference, where windows
go (blended windows, the zegclip/mmseg `slide` grid, or the whole image in one pass), the step between
windows, what is accumulated (probabilities or logits) and how the scores come back to the label's size.
It also says what the release does with the pixels of a class left out of the mean (`excluded_pixels`);
which classes are left out is the dataset's business (evaluation.metrics.compute_metrics(exclude=...)).

`protocol_probs` runs one. Releases read (commits of the snapshots this was written from):
- Co2S (XavierJiezou/Co2S @ 26bc087): experiments.py:80 (eval_mode 'zegclip_sliding_window'),
  experiments.py:261-264 (stride int(crop x (1 - 1/6))), third_party/unimatch/supervised.py:69-102 (the
  slide: windows shifted inside, logits summed / count, bilinear align_corners=True to the mask, argmax),
  third_party/unimatch/dataset/semi.py:54-58 (val image: mmseg Resize(img_scale=(2048, 512), min_size=512)).
- UniMatch V2 (LiheYoung/UniMatch-V2 @ f6afb4d): unimatch_v2.py:239-241 ('sliding_window' for Cityscapes
  only, 'original' with multiplier 14 otherwise), supervised.py:66-81 ('original'), and the same 'original'
  in remote-sensing/supervised.py:44-54 (its remote-sensing change-detection code).
- RS-MTDF (earth-insights/RS-MTDF @ 5ee7da7): fixmatch_distill_with_models.py:231-233 and
  eval/eval_deepglobe.py:62-63,85-95,119-126 ('original' x 14; the unknown class's pixels set to ignore).
- DWL (zhu-xlab/RS-DWL @ fe6504b): test.py:35-55 (one forward of the whole 512 px tile, the confusion matrix
  over every class, the ignore-index class deleted from the mean only), options/test_options.py:11-14.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from rsseg_cli.data.augment import short_side_size
from rsseg_cli.engine.sliding import sliding_probs

Placement = Literal["blend", "slide", "whole"]
EdgeRule = Literal["snap_or_pad", "shift_inside", "none"]
Accumulated = Literal["probabilities", "logits"]
ExcludedPixels = Literal["counted", "ignored"]


@dataclass(frozen=True)
class Protocol:
    """One release's evaluation recipe.

    - placement: 'blend' (rsseg: Hann-weighted windows of engine/blend.py), 'slide' (mmseg/zegclip `slide`:
      a regular grid, every window weighs 1) or 'whole' (the whole image in one forward pass).
    - stride_fraction, stride_rounding: the step between window starts as a fraction of the window,
      rounded ('round', rsseg) or truncated ('floor', the releases' int()).
    - edge: 'snap_or_pad' (rsseg: the last window snaps back inside an axis at least one window long; a
      shorter axis gets one window padded past the border), 'shift_inside' (mmseg slide: the last window
      ends at the border; an axis shorter than the window gets one window of the axis' own length, unpadded)
      or 'none' (whole image).
    - accumulate: what the windows add up ('probabilities' or 'logits'); the returned scores are those.
    - short_side, max_long: resize the image first so its short side is `short_side`, as mmseg's keep-ratio
      Resize (long side capped at `max_long`; None: no cap), bilinear.
    - multiple_of: resize the image (bilinear, align_corners=True) to the nearest multiple of this per side
      (UniMatch V2 / RS-MTDF: the ViT patch size 14).
    - align_corners: how the scores are resized to the label's size when their size differs.
    - excluded_pixels: 'counted' (the excluded class stays in the confusion matrix and only leaves the mean,
      DWL) or 'ignored' (ground-truth pixels of the excluded class are not scored at all, RS-MTDF).
    """

    name: str
    placement: Placement
    stride_fraction: float | None
    stride_rounding: Literal["round", "floor"]
    edge: EdgeRule
    accumulate: Accumulated
    short_side: int | None = None
    max_long: int | None = 2048
    multiple_of: int | None = None
    align_corners: bool = False
    excluded_pixels: ExcludedPixels = "counted"
    source: str = ""

    def stride(self, window: int) -> int:
        """Pixels between window starts for a window of `window` pixels."""
        if self.stride_fraction is None:
            raise ValueError(f"protocol {self.name!r} places no windows")
        step = window * self.stride_fraction
        return max(1, round(step) if self.stride_rounding == "round" else int(step))


PROTOCOLS: dict[str, Protocol] = {
    # Today's behaviour: sliding_probs at overlap 0.25 (stride round(0.75 x window)), Hann-blended
    # probabilities; the optional short-side resize comes from the caller (train.rescale.val_short_side);
    # scores back to the label as log-probabilities, bilinear, align_corners=False.
    "rsseg": Protocol(
        name="rsseg",
        placement="blend",
        stride_fraction=0.75,
        stride_rounding="round",
        edge="snap_or_pad",
        accumulate="probabilities",
        source="rsseg_cli/engine/sliding.py, engine/blend.py",
    ),
    # Co2S: experiments.py:261-264 stride int(crop x 5/6) (426 for crop 512, 213 for WHDLD's 256);
    # supervised.py:69-102 windows shifted inside, logits / count, resized to the mask with align_corners=True;
    # semi.py:56 val Resize(img_scale=(2048, 512), min_size=512): with min_size mmseg rescales the short side
    # to 512 whatever the long side (the 2048 cap drops out), up or down. LoveDA runs with img_scale=None
    # (experiments.py, exp 41): no resize there. Which applies is the dataset recipe's business
    # (train.rescale.val_short_side), so the caller passes it.
    "co2s": Protocol(
        name="co2s",
        placement="slide",
        stride_fraction=1 - 1 / 6,
        stride_rounding="floor",
        edge="shift_inside",
        accumulate="logits",
        short_side=None,  # the recipe's train.rescale.val_short_side: 512 for every Co2S dataset but LoveDA
        max_long=None,
        align_corners=True,
        source="XavierJiezou/Co2S experiments.py:261-264, third_party/unimatch/supervised.py:69-102, "
        "third_party/unimatch/dataset/semi.py:54-58",
    ),
    # UniMatch V2: 'original' for every dataset but Cityscapes (unimatch_v2.py:239): the whole image resized
    # to the nearest multiple of 14 (int(h / 14 + 0.5) x 14, bilinear, align_corners=True), logits resized
    # back the same way, argmax (supervised.py:66-81; remote-sensing/supervised.py:44-54 alike).
    "unimatch": Protocol(
        name="unimatch",
        placement="whole",
        stride_fraction=None,
        stride_rounding="floor",
        edge="none",
        accumulate="logits",
        multiple_of=14,
        align_corners=True,
        source="LiheYoung/UniMatch-V2 unimatch_v2.py:239-241, supervised.py:66-81",
    ),
    # DWL: test.py:35 one forward of the whole tile (512 px crops, no resize), test.py:41-55 the confusion
    # matrix over all classes, the ignore-index class (Potsdam clutter 5, DeepGlobe unknown 6) deleted from
    # the mean IoU / F1 only: its pixels stay counted (kappa and OA include them).
    "dwl": Protocol(
        name="dwl",
        placement="whole",
        stride_fraction=None,
        stride_rounding="floor",
        edge="none",
        accumulate="logits",
        excluded_pixels="counted",
        source="zhu-xlab/RS-DWL test.py:35-55, options/test_options.py:11-14",
    ),
    # RS-MTDF on the DWL splits: UniMatch V2's 'original' x 14 (fixmatch_distill_with_models.py:231-233),
    # and eval/eval_deepglobe.py:63 sets the excluded class's ground truth to 255 (ignored) before scoring.
    "rs-mtdf": Protocol(
        name="rs-mtdf",
        placement="whole",
        stride_fraction=None,
        stride_rounding="floor",
        edge="none",
        accumulate="logits",
        multiple_of=14,
        align_corners=True,
        excluded_pixels="ignored",
        source="earth-insights/RS-MTDF fixmatch_distill_with_models.py:231-233, eval/eval_deepglobe.py:62-126",
    ),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The Protocol itself, or the registered one of that name."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None


def slide_spans(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) of each window along one axis as mmseg's `slide` places them: ceil((L - W) / S) + 1
    windows at multiples of S, the last shifted back to end at the border; an axis shorter than the window
    gets one window spanning it (no padding)."""
    count = max(length - window + stride - 1, 0) // stride + 1
    spans = []
    for i in range(count):
        end = min(i * stride + window, length)
        spans.append((max(end - window, 0), end))
    return spans


def multiple_size(h: int, w: int, multiple: int) -> tuple[int, int]:
    """UniMatch V2's input size: each side rounded half up to a multiple of `multiple`."""
    return int(h / multiple + 0.5) * multiple, int(w / multiple + 0.5) * multiple


def _inference_input(image: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    h, w = image.shape[-2:]
    if protocol.short_side is not None:
        cap = protocol.max_long if protocol.max_long is not None else sys.maxsize
        size = short_side_size(h, w, protocol.short_side, cap)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    if protocol.multiple_of is not None:
        size = multiple_size(*image.shape[-2:], protocol.multiple_of)
        if size != tuple(image.shape[-2:]):
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=True)
    return image


def _slide(
    scores_of: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    num_classes: int,
    window: int,
    stride: int,
    batch_size: int,
) -> torch.Tensor:
    """Sum of the window scores / number of windows covering each pixel (every window weighs 1)."""
    b, _, h, w = image.shape
    windows = [(r, c) for r in slide_spans(h, window, stride) for c in slide_spans(w, window, stride)]
    total = image.new_zeros((b, num_classes, h, w), dtype=torch.float32)
    count = image.new_zeros((h, w), dtype=torch.float32)
    per_pass = max(1, batch_size // b)  # all windows share one size, so they batch together
    for start in range(0, len(windows), per_pass):
        chunk = windows[start : start + per_pass]
        crops = torch.cat([image[:, :, r0:r1, c0:c1] for (r0, r1), (c0, c1) in chunk])
        for ((r0, r1), (c0, c1)), s in zip(chunk, scores_of(crops).split(b)):
            total[:, :, r0:r1, c0:c1] += s
            count[r0:r1, c0:c1] += 1
    return total / count


@torch.no_grad()
def protocol_probs(
    predict: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    num_classes: int,
    window: int,
    protocol: str | Protocol,
    label_size: tuple[int, int] | torch.Size,
    probabilities: bool = False,
    batch_size: int = 4,
) -> torch.Tensor:
    """Scores (B, K, *label_size) of `image` (B, C, H, W) under `protocol`; their argmax is the prediction.

    `predict` maps a batch to logits, or to probabilities already (`probabilities`); K may stack several
    predictions (a model's variants) since every step is per channel. The scores are what the protocol
    accumulates: probabilities ('rsseg', and log-probabilities once resized to the label), logits averaged
    over windows ('co2s') or the whole image's logits ('unimatch', 'dwl'). A logits protocol given
    probabilities uses their log: log p = logits - one constant per pixel, so a single pass (whole image)
    has the same argmax; overlapping windows differ slightly, as the constant changes between windows.
    """
    proto = get_protocol(protocol)
    label_size = (int(label_size[0]), int(label_size[1]))
    x = _inference_input(image, proto)

    def scores_of(batch: torch.Tensor) -> torch.Tensor:
        out = predict(batch).float()
        if proto.accumulate == "logits":
            return out.clamp(min=1e-30).log() if probabilities else out
        return out if probabilities else out.softmax(dim=1)

    if proto.placement == "blend":
        overlap = 1 - proto.stride_fraction  # 0.25 for 0.75: exact in floating point
        scores = sliding_probs(predict, x, num_classes, window, overlap, batch_size, probabilities)
    elif proto.placement == "slide":
        scores = _slide(scores_of, x, num_classes, window, proto.stride(window), batch_size)
    else:
        scores = scores_of(x)
    if scores.shape[-2:] == label_size:
        return scores
    if proto.accumulate == "probabilities":
        # One window of a plain model: log p = logits - one constant per pixel, so the same argmax.
        scores = scores.clamp(min=1e-30).log()
    return F.interpolate(scores, size=label_size, mode="bilinear", align_corners=proto.align_corners)
