"""From stored pixel values to what a foundation model expects, with the dataset's stored statistics only.

Two steps, the same in training and prediction (never per window):
1. a per-band linear map onto [0, 1] (clipped), the input *scaling*: `percentile` stretches the dataset's
   2nd..98th percentile, so that any sensor and dtype looks like an ordinary 8-bit photo (the default, for
   multi-sensor scenes); `fixed` divides by the dtype's range (0..255 for uint8: what both method papers do
   with 8-bit RGB), or by configured bounds. Colour augmentations are defined in this space;
2. the model's input standardization: a mean/std for the bands that stand for red, green and blue (the
   backbone's pretrained statistics, or ImageNet's as both papers use for DINOv2, DINOv3 and CLIP alike; see
   `models.input_stats`), and the mean of those values for any other band, so that extra bands enter the band
   adapter's mean filter on the same scale.
Both are decided when training and recorded in the checkpoint (with the scaling mode and the statistics'
source); evaluation and prediction use the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rsseg_cli.errors import UserError

if TYPE_CHECKING:  # imported by stretch/standardize only: prediction with an .onnx model runs without torch
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


SCALINGS = ("percentile", "fixed")


def fixed_range(dtype: str | None, bounds: Sequence[float] | None = None) -> tuple[float, float]:
    """`fixed` scaling's [low, high]: configured bounds, else 0..the integer dtype's maximum (uint8 255,
    uint16 65535, int16 32767: negative values clip to 0). Float data has no such range: it needs bounds."""
    if bounds is not None:
        return float(bounds[0]), float(bounds[1])
    kind = np.dtype(dtype).kind if dtype else None
    if kind not in ("u", "i"):
        raise UserError(
            f"model.input_scaling=fixed maps 0..the pixel type's maximum onto [0, 1], but the dataset holds "
            f"{dtype or 'untyped'} pixels, which have no such range. Give the bounds, e.g. --set "
            f"model.input_range=[0,1] (or [0,10000] for reflectance x 10000), or use "
            f"model.input_scaling=percentile."
        )
    return 0.0, float(np.iinfo(np.dtype(dtype)).max)


@dataclass(frozen=True)
class Normalization:
    low: tuple[float, ...]  # per band, the value mapped to 0 (2nd percentile, or the fixed low)
    high: tuple[float, ...]  # per band, the value mapped to 1 (98th percentile, or the fixed high)
    mean: tuple[float, ...]  # per band, model input mean (in [0, 1] units)
    std: tuple[float, ...]
    scaling: str = "percentile"  # how low/high were chosen (SCALINGS)
    stats: str = "imagenet"  # where mean/std come from: imagenet, configured, or auto:<backbone>

    @classmethod
    def from_dataset(
        cls,
        statistics: dict,
        band_map: Sequence[int | None],
        *,
        scaling: str = "percentile",
        dtype: str | None = None,
        input_range: Sequence[float] | None = None,
        rgb_stats: tuple[Sequence[float], Sequence[float]] = (IMAGENET_MEAN, IMAGENET_STD),
        stats: str = "imagenet",
    ) -> Normalization:
        if scaling == "percentile":
            low = [float(v) for v in statistics["p2"]]
            high = [float(v) for v in statistics["p98"]]
            # A constant band would divide by zero; give it a unit range instead.
            high = [h if h > lo else lo + 1.0 for lo, h in zip(low, high)]
        elif scaling == "fixed":
            lo, hi = fixed_range(dtype, input_range)
            low, high = [lo] * len(band_map), [hi] * len(band_map)
        else:
            raise UserError(f"Unknown input scaling {scaling!r}; use one of {', '.join(SCALINGS)}.")
        rgb_mean, rgb_std = [float(v) for v in rgb_stats[0]], [float(v) for v in rgb_stats[1]]
        other_mean, other_std = float(np.mean(rgb_mean)), float(np.mean(rgb_std))
        mean = [rgb_mean[m] if m is not None else other_mean for m in band_map]
        std = [rgb_std[m] if m is not None else other_std for m in band_map]
        return cls(tuple(low), tuple(high), tuple(mean), tuple(std), scaling, stats)

    def to_dict(self) -> dict:
        return {
            "low": list(self.low),
            "high": list(self.high),
            "mean": list(self.mean),
            "std": list(self.std),
            "scaling": self.scaling,
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        """A checkpoint's normalization; one without scaling and source is rsseg's first kind (percentile
        stretch, ImageNet statistics)."""
        return cls(
            tuple(d["low"]),
            tuple(d["high"]),
            tuple(d["mean"]),
            tuple(d["std"]),
            str(d.get("scaling", "percentile")),
            str(d.get("stats", "imagenet")),
        )

    def stretch(self, raw: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw (C, H, W) or (B, C, H, W) values -> float32 in [0, 1]."""
        import torch

        x = torch.as_tensor(np.asarray(raw, dtype=np.float32) if isinstance(raw, np.ndarray) else raw).float()
        shape = (-1, 1, 1) if x.dim() == 3 else (1, -1, 1, 1)
        low = torch.tensor(self.low, dtype=x.dtype, device=x.device).view(shape)
        high = torch.tensor(self.high, dtype=x.dtype, device=x.device).view(shape)
        return ((x - low) / (high - low)).clamp_(0.0, 1.0)

    def standardize(self, unit: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, C, H, W) or (C, H, W) -> model input."""
        import torch

        shape = (-1, 1, 1) if unit.dim() == 3 else (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=unit.dtype, device=unit.device).view(shape)
        std = torch.tensor(self.std, dtype=unit.dtype, device=unit.device).view(shape)
        return (unit - mean) / std

    def model_input(self, raw: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """stretch then standardize in one numpy pass over raw (C, H, W) values: for inference, where no
        augmentation sits between the two steps. Invalid pixels become the band mean (0 after
        standardization), so nodata does not push strong values into its neighbours' predictions.
        numpy rather than torch: prediction runs this in a loader thread, where torch ops would start a
        second OpenMP team competing with the model's for the same cores."""
        shape = (-1, 1, 1)
        low = np.asarray(self.low, np.float32).reshape(shape)
        high = np.asarray(self.high, np.float32).reshape(shape)
        x = raw.astype(np.float32)
        x -= low
        x /= high - low
        np.clip(x, 0.0, 1.0, out=x)
        x -= np.asarray(self.mean, np.float32).reshape(shape)
        x /= np.asarray(self.std, np.float32).reshape(shape)
        if valid is not None and not valid.all():
            x[:, ~valid] = 0.0
        return x


def band_map_by_name(band_names: Sequence[str]) -> list[int | None] | None:
    """The band map the names give (red/green/blue, r/g/b: band descriptions, or GDAL's colour
    interpretation of undescribed bands), or None when they do not name all three. "B4", "B3", "B2" name
    no colour: the same band number is red on one sensor and green on another."""
    names = [n.lower() for n in band_names]
    by_name: list[int | None] = [None] * len(names)
    for rgb, keys in enumerate((("red", "r"), ("green", "g"), ("blue", "b"))):
        for i, n in enumerate(names):
            if n in keys and by_name[i] is None:
                by_name[i] = rgb
                break
    return by_name if sorted(m for m in by_name if m is not None) == [0, 1, 2] else None


def default_band_map(band_names: Sequence[str]) -> list[int | None]:
    """Which input band inherits the pretrained red, green or blue filter: by band name where the names say
    so, else the first three bands in order."""
    by_name = band_map_by_name(band_names)
    return by_name if by_name is not None else [i if i < 3 else None for i in range(len(band_names))]


def rgb_bands(band_map: Sequence[int | None]) -> tuple[int, int, int] | None:
    """Input band indices of red, green and blue, when all three are present."""
    try:
        return tuple(list(band_map).index(c) for c in (0, 1, 2))  # type: ignore[return-value]
    except ValueError:
        return None
