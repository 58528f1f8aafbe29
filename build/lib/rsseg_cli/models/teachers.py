"""Frozen foundation-model teachers for feature distillation (RS-MTDF).

A teacher is built once per process and lives beside the student, never inside it: not in the EMA copy, not
in checkpoints, not in the optimizer. It runs without gradients, in eval mode, and on GPUs with its weights
in the autocast precision (half the memory, and the matmuls autocast would run in that precision anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.models.backbones import Backbone, build_backbone


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    backbone: str
    weights: str
    resolution: int | None = None  # square input side; None: the student's input as it is
    norm: bool = True  # final LayerNorm on the tokens
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)


def rgb_selection(band_map: Sequence[int | None]) -> list[int] | None:
    """Indices of the red, green and blue bands when all three are present: a frozen RGB teacher then sees
    exactly the kind of image it was trained on, whatever other bands the student gets."""
    if all(c in band_map for c in (0, 1, 2)):
        return [list(band_map).index(c) for c in (0, 1, 2)]
    return None


def resize_square(x: torch.Tensor, side: int, align_corners: bool = True) -> torch.Tensor:
    """The image resized (bilinear) to side x side: the view a fixed-resolution teacher (CLIP at 224) gets,
    and the student's second pass that is distilled against it."""
    if tuple(x.shape[-2:]) == (side, side):
        return x
    # align_corners=True as in the released RS-MTDF code: the CLIP teacher's weights and the student's
    # second pass were trained on exactly this resampling (corner pixels map onto corner pixels).
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=align_corners)


class FrozenTeacher(nn.Module):
    """A frozen ViT returning its last block's patch tokens as a (B, dim, gh, gw) float32 map."""

    def __init__(self, name: str, backbone: Backbone, resolution: int | None, rgb: list[int] | None):
        super().__init__()
        self.name = name
        self.backbone = backbone.requires_grad_(False).eval()
        self.resolution = resolution
        self.rgb = rgb
        self.dim = backbone.embed_dim
        self.patch_size = backbone.patch_size
        self.eval()

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)  # dropout, drop-path and the like stay off whatever the caller asks

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rgb is not None:
            x = x[:, self.rgb]
        if self.resolution is not None:
            x = resize_square(x, self.resolution)
        return self.backbone(x)[-1].float()

    def grid(self, size: Sequence[int]) -> tuple[int, int]:
        """Its token grid for an input of `size` (before any resize of its own)."""
        h, w = (self.resolution, self.resolution) if self.resolution is not None else size
        p = self.patch_size
        return -(-int(h) // p), -(-int(w) // p)

    def to_precision(self, device: torch.device, precision: str) -> FrozenTeacher:
        """Move to the device; on GPUs store the weights in the autocast dtype (bf16/fp16)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        if device.type == "cuda" and dtype is not None:
            return self.to(device=device, dtype=dtype)
        return self.to(device=device)


def build_teacher(spec: TeacherSpec, in_chans: int, band_map: Sequence[int | None]) -> FrozenTeacher:
    """Load a teacher's pretrained weights (hub, local file or none). It gets the RGB bands when the data has
    them, else every band through the band adapter, like the student."""
    rgb = rgb_selection(band_map)
    bands, mapping = (3, [0, 1, 2]) if rgb is not None else (in_chans, list(band_map))
    backbone = build_backbone(
        spec.backbone,
        weights=spec.weights,
        in_chans=bands,
        band_map=mapping,
        taps=[-1],
        norm=spec.norm,
        **spec.backbone_kwargs,
    )
    return FrozenTeacher(spec.name, backbone, spec.resolution, rgb)
