"""Which mean and std each backbone expects of its input, and the exact conversion from one to another.

Every backbone was pretrained on [0, 1] RGB images standardized with its own mean and std: ImageNet's for
DINOv2 and most DINOv3 models, OpenAI's for CLIP, SAT-493M's for the satellite DINOv3. The libraries say which
(timm's pretrained_cfg, open_clip's pretrained / preprocess config), offline, without loading any weights; a
preset may also carry its own (`BackbonePreset.stats`).

One data normalization feeds a whole model (see `data.normalize`). With `model.input_stats: auto` it follows
the model's main backbone, and any other backbone whose own statistics differ re-standardizes its input
exactly before its patch embedding (`Restandardize`): per channel x_b = (x_a * std_a + mean_a - mean_b) / std_b.
Bands that stand for no RGB channel use the mean of the three values on both sides (the data rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rsseg_cli.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from rsseg_cli.models.presets import get_preset

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std), red/green/blue


def _rgb(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def pretrained_stats(backbone: str) -> Stats:
    """The mean and std (RGB, [0, 1] units) a backbone preset or timm:/open_clip: model was pretrained with."""
    preset = get_preset(backbone)
    if preset.stats is not None:
        return _rgb(preset.stats[0]), _rgb(preset.stats[1])
    if preset.library == "timm":
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(preset.timm_name)
        except (RuntimeError, ValueError):  # a tag timm does not know: the architecture's default tag
            cfg = get_pretrained_cfg(preset.model)
        if cfg is None:  # not a timm architecture: timm's own default
            return IMAGENET_MEAN, IMAGENET_STD
        return _rgb(cfg.mean), _rgb(cfg.std)
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg: dict[str, Any] = open_clip.get_pretrained_cfg(preset.model, preset.tag) if preset.tag else {}
    if "mean" not in (cfg or {}):
        cfg = (open_clip.get_model_config(preset.model) or {}).get("preprocess_cfg") or {}
    # open_clip's own default when neither says: OpenAI's statistics.
    return _rgb(cfg.get("mean", OPENAI_DATASET_MEAN)), _rgb(cfg.get("std", OPENAI_DATASET_STD))


def band_stats(stats: Stats, band_map: Sequence[int | None]) -> tuple[list[float], list[float]]:
    """Per input band: the RGB channel's mean and std, or the mean of the three for other bands."""
    mean, std = stats
    other_mean, other_std = sum(mean) / 3, sum(std) / 3
    return (
        [mean[m] if m is not None else other_mean for m in band_map],
        [std[m] if m is not None else other_std for m in band_map],
    )


def restandardize_affine(
    source: Stats, target: Stats, band_map: Sequence[int | None]
) -> tuple[list[float], list[float]] | None:
    """(scale, shift) per band turning input standardized with `source` into input standardized with
    `target`: x_b = x_a * std_a / std_b + (mean_a - mean_b) / std_b; None when they are the same."""
    mean_a, std_a = band_stats(source, band_map)
    mean_b, std_b = band_stats(target, band_map)
    if mean_a == mean_b and std_a == std_b:
        return None
    scale = [sa / sb for sa, sb in zip(std_a, std_b)]
    shift = [(ma - mb) / sb for ma, mb, sb in zip(mean_a, mean_b, std_b)]
    return scale, shift


class Restandardize(nn.Module):
    """Per-channel affine map from the model's input statistics to a backbone's own; identity until `fit`.
    Its buffers are not persistent: they follow from the model spec and the backbone preset, so state_dicts
    (and checkpoints written before it existed) are unchanged."""

    scale: torch.Tensor | None
    shift: torch.Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", None, persistent=False)
        self.register_buffer("shift", None, persistent=False)

    def fit(self, source: Stats, target: Stats, band_map: Sequence[int | None], device=None) -> None:
        affine = restandardize_affine(source, target, band_map)
        if affine is None:
            self.scale = self.shift = None
            return
        shape = (1, len(band_map), 1, 1)
        self.scale = torch.tensor(affine[0], dtype=torch.float32, device=device).view(shape)
        self.shift = torch.tensor(affine[1], dtype=torch.float32, device=device).view(shape)

    @property
    def active(self) -> bool:
        return self.scale is not None

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        """Device moves apply; dtype casts (a bf16 teacher) do not: the conversion stays float32."""
        super()._apply(fn, recurse)
        if self.scale is not None and self.shift is not None:
            self.scale, self.shift = self.scale.float(), self.shift.float()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None or self.shift is None:
            return x
        return (x.float() * self.scale + self.shift).to(x.dtype)


def fit_backbones(module: nn.Module, stats: Stats) -> list[str]:
    """Make every `Backbone` inside `module` take input standardized with `stats` (converting to its own
    statistics where they differ). Returns the presets that convert."""
    from rsseg_cli.models.backbones import Backbone

    converting = []
    for sub in module.modules():
        if isinstance(sub, Backbone):
            sub.fit_input_stats(stats)
            if sub.restandardize.active:
                converting.append(sub.preset)
    return converting


def main_backbone(spec: Any) -> str:
    """The backbone whose statistics the data normalization follows: the spec's backbone, or for models
    with several students (Co2S) the CLIP one, whose features are read without the `Backbone` call."""
    if spec.backbone is not None:
        return str(spec.backbone)
    students = dict(spec.parts.get("students") or {})
    for name in ("clip", *students):
        if name in students and students[name].get("backbone"):
            return str(students[name]["backbone"])
    raise ValueError(f"the {spec.architecture} model names no backbone")
