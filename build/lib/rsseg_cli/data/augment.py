"""Augmentations on tensors, as the semi-supervised recipes define them (methods.md, shared building blocks).

Images are float tensors in [0, 1] (after the percentile stretch), any number of bands. Colour operations have
a defined meaning for N bands: brightness and contrast act on every band; saturation, hue and grayscale act on
the red/green/blue bands only (when the band map names them) and leave the other bands untouched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.config_rescale import RescaleConfig


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def short_side_size(h: int, w: int, short_side: int, max_long: int, ratio: float = 1.0) -> tuple[int, int]:
    """(height, width) of an h x w image under mmseg's keep-ratio Resize(img_scale=(max_long, short_side)) at
    `ratio`: factor min(int(max_long x ratio) / long side, int(short_side x ratio) / short side), sides rounded
    half up (mmcv's rescale_size)."""
    factor = min(int(max_long * ratio) / max(h, w), int(short_side * ratio) / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def rescaled_size(
    h: int, w: int, g: torch.Generator, rescale: RescaleConfig | None = None
) -> tuple[int, int]:
    """The size a weak view rescales an h x w chip to, one draw r ~ U(ratio_range) from `g` (train.rescale)."""
    rescale = rescale or RescaleConfig()
    ratio = _uniform(g, *rescale.ratio_range)
    if rescale.mode == "short_side":
        return short_side_size(h, w, rescale.short_side, rescale.max_long, ratio)
    return max(1, round(h * ratio)), max(1, round(w * ratio))


def weak_view(
    image: torch.Tensor,
    mask: torch.Tensor,
    ignore: torch.Tensor,
    crop: int,
    g: torch.Generator,
    rescale: RescaleConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random rescale (bilinear image, nearest mask; the rule of `rescale`, default a ratio U(0.5, 2) of the
    chip's size), pad to the crop (image 0, mask 255, ignore True), random crop, horizontal flip with p = 0.5.

    image (C, H, W) float, mask (H, W) int64 class ids with 255, ignore (H, W) bool (invalid pixels).
    """
    _, h, w = image.shape
    nh, nw = rescaled_size(h, w, g, rescale)
    image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    stacked = torch.stack([mask.float(), ignore.float()])[None]
    mask, ignore = F.interpolate(stacked, size=(nh, nw), mode="nearest")[0]
    mask, ignore = mask.long(), ignore > 0.5
    ph, pw = max(0, crop - nh), max(0, crop - nw)
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        mask = F.pad(mask, (0, pw, 0, ph), value=IGNORE_INDEX)
        ignore = F.pad(ignore, (0, pw, 0, ph), value=True)
    _, h, w = image.shape
    top = int(torch.randint(0, h - crop + 1, (), generator=g))
    left = int(torch.randint(0, w - crop + 1, (), generator=g))
    image = image[:, top : top + crop, left : left + crop]
    mask = mask[top : top + crop, left : left + crop]
    ignore = ignore[top : top + crop, left : left + crop]
    if _chance(g, 0.5):
        image, mask, ignore = image.flip(-1), mask.flip(-1), ignore.flip(-1)
    mask = mask.masked_fill(ignore, IGNORE_INDEX)
    return image.contiguous(), mask.contiguous(), ignore.contiguous()


# --------------------------------------------------------------------------------------------------
# Colour


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb
    maxc, _ = rgb.max(dim=0)
    minc, _ = rgb.min(dim=0)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-12), torch.zeros_like(maxc))
    safe = delta.clamp(min=1e-12)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc])


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = torch.stack(
        [torch.stack(c) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )  # (6, 3, H, W)
    return torch.gather(choices, 0, i[None, None].expand(1, 3, *i.shape))[0]


def colour_jitter(
    image: torch.Tensor,
    rgb: tuple[int, int, int] | None,
    g: torch.Generator,
    brightness: float = 0.5,
    contrast: float = 0.5,
    saturation: float = 0.5,
    hue: float = 0.25,
) -> torch.Tensor:
    """torchvision's ColorJitter, in random order, generalized to N bands (see the module docstring)."""
    out = image.clone()
    idx = list(rgb) if rgb is not None else None
    for op in torch.randperm(4, generator=g).tolist():
        if op == 0:
            out = (out * _uniform(g, 1 - brightness, 1 + brightness)).clamp_(0, 1)
        elif op == 1:
            factor = _uniform(g, 1 - contrast, 1 + contrast)
            grey = _luminance(out[idx]).mean() if idx is not None else out.mean()
            out = (factor * out + (1 - factor) * grey).clamp_(0, 1)
        elif op == 2 and idx is not None:
            factor = _uniform(g, 1 - saturation, 1 + saturation)
            sub = out[idx]
            out[idx] = (factor * sub + (1 - factor) * _luminance(sub)).clamp_(0, 1)
        elif op == 3 and idx is not None:
            shift = _uniform(g, -hue, hue)
            hsv = _rgb_to_hsv(out[idx])
            hsv[0] = (hsv[0] + shift) % 1.0
            out[idx] = _hsv_to_rgb(hsv)
    return out


def grayscale(image: torch.Tensor, rgb: tuple[int, int, int] | None) -> torch.Tensor:
    if rgb is None:
        return image
    out = image.clone()
    out[list(rgb)] = _luminance(image[list(rgb)]).expand(3, -1, -1)
    return out


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[0]
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


def strong_view(image: torch.Tensor, rgb: tuple[int, int, int] | None, g: torch.Generator) -> torch.Tensor:
    """Weak view + colour jitter (p 0.8), grayscale (p 0.2), Gaussian blur sigma U(0.1, 2) (p 0.5)."""
    out = image
    if _chance(g, 0.8):
        out = colour_jitter(out, rgb, g)
    if _chance(g, 0.2):
        out = grayscale(out, rgb)
    if _chance(g, 0.5):
        out = gaussian_blur(out, _uniform(g, 0.1, 2.0))
    return out


# --------------------------------------------------------------------------------------------------
# CutMix


def cutmix_box(
    size: int,
    g: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
) -> torch.Tensor:
    """A (size, size) bool box of area U(0.02, 0.4) of the crop and aspect ratio U(0.3, 1/0.3), with p = 0.5."""
    box = torch.zeros(size, size, dtype=torch.bool)
    if not _chance(g, p):
        return box
    target = _uniform(g, *area) * size * size
    for _ in range(100):  # rejection sampling as in UniMatch; a few draws suffice
        r = _uniform(g, *ratio)
        w, h = int(math.sqrt(target / r)), int(math.sqrt(target * r))
        x = int(torch.randint(0, size, (), generator=g))
        y = int(torch.randint(0, size, (), generator=g))
        if w > 0 and h > 0 and x + w <= size and y + h <= size:
            box[y : y + h, x : x + w] = True
            return box
    return box


def mix(target: torch.Tensor, source: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Paste `source` into `target` inside `box` (B, H, W); images (B, C, H, W) or maps (B, H, W)."""
    if target.dim() == 4:
        box = box[:, None]
    return torch.where(box, source, target)


def partner(x: torch.Tensor) -> torch.Tensor:
    """The other image of the batch each sample takes its CutMix patch from (a roll by one)."""
    return torch.roll(x, shifts=1, dims=0)
