"""RS-MTDF's student: a Segmenter whose 4th DPT input fuses the student's own last block with features it
has learned to translate into each teacher's space.

Per teacher branch, a translator MLP maps the student's last-block tokens into the teacher's feature space
(at the teacher's resolution: a second student pass on the image resized to it when it has one). These
translated features are what distillation compares with the teacher, and, projected back to the student's
width and resized to its grid, what the fusion adds:
    fused = student_weight * last + sum_k weight_k * project_k(resize(translate_k(...)))
Fusion happens in every forward (training, pseudo-labelling, inference), and it needs no teacher: a
checkpoint of this model predicts on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rsseg_cli.models.backbones import Backbone
from rsseg_cli.models.dpt import DPTHead
from rsseg_cli.models.segmenter import Segmenter, encoder_and_head
from rsseg_cli.models.spec import ModelSpec, WeightsArg
from rsseg_cli.models.teachers import resize_square


@dataclass(frozen=True)
class Branch:
    """One teacher as the student sees it: its feature width and input side, and its fusion weight."""

    name: str
    dim: int
    resolution: int | None = None
    weight: float = 0.1  # 0: distilled, not fused


def channels_last_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a token-wise layer (Linear, MLP) to every position of a (B, C, h, w) map."""
    return layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Translator(nn.Sequential):
    """Linear(student -> hidden), ReLU, Linear(hidden -> teacher), as in RS-MTDF."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class FusionSegmenter(Segmenter):
    def __init__(
        self,
        backbone: Backbone,
        head: DPTHead,
        branches: Sequence[Branch],
        student_weight: float = 0.8,
        hidden: int = 1024,
        fuse: bool = True,
        spec: ModelSpec | None = None,
        align_corners: bool = True,
    ):
        super().__init__(backbone, head, spec)  # type: ignore[arg-type]
        self.align_corners = align_corners
        if not branches:
            raise ValueError("a fusion segmenter needs at least one teacher branch")
        self.branches = list(branches)
        self.student_weight = student_weight
        self.fuse_enabled = fuse
        width = backbone.embed_dim
        self.translators = nn.ModuleDict({b.name: Translator(width, hidden, b.dim) for b in self.branches})
        # A branch with fusion weight 0 (or fusion off) has no projection: a parameter outside every forward
        # would get no gradient, which DDP rejects.
        self.projections = nn.ModuleDict({b.name: nn.Linear(b.dim, width) for b in self._fused_branches()})

    def _fused_branches(self) -> list[Branch]:
        return [b for b in self.branches if self.fuse_enabled and b.weight != 0]

    def translate(self, x: torch.Tensor, features: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per branch, the student's last-block tokens translated into the teacher's space, on the student's
        grid at the teacher's resolution; one extra student pass per distinct resolution."""
        last: dict[int | None, torch.Tensor] = {None: features[-1]}
        out = {}
        for b in self.branches:
            if b.resolution not in last:
                last[b.resolution] = self.encode(resize_square(x, b.resolution, self.align_corners))[-1]
            out[b.name] = channels_last_linear(self.translators[b.name], last[b.resolution])
        return out

    def fuse(
        self, features: Sequence[torch.Tensor], translated: dict[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        """The four levels with the last replaced by the weighted fusion (levels 1-3 stay raw)."""
        branches = self._fused_branches()
        if not branches:
            return list(features)
        last = features[-1]
        fused = self.student_weight * last
        for b in branches:
            t = translated[b.name]
            if t.shape[-2:] != last.shape[-2:]:
                # align_corners=True as in the released code (the 16x16 CLIP-side map onto the token grid):
                # the trained projections expect this resampling.
                t = F.interpolate(t, size=last.shape[-2:], mode="bilinear", align_corners=self.align_corners)
            fused = fused + b.weight * channels_last_linear(self.projections[b.name], t)
        return [*features[:-1], fused]

    def forward(
        self,
        x: torch.Tensor,
        feature_transform: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
        return_translated: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at x's size; with return_translated also the translated features distillation needs (one
        call, so DDP sees every parameter used once)."""
        features = self.encode(x)
        translated = self.translate(x, features)
        features = self.fuse(features, translated)
        if feature_transform is not None:
            features = feature_transform(features)
        logits = self.decode(features, x.shape[-2:])
        return (logits, translated) if return_translated else logits

    def param_groups(self) -> list[dict[str, Any]]:
        """Translators and projections learn at the head's rate (RS-MTDF: x40)."""
        fusion = [*self.translators.parameters(), *self.projections.parameters()]
        return [*super().param_groups(), {"name": "fusion", "params": fusion}]


class FusionParts(BaseModel):
    """The fusion-segmenter's own part of a model spec: the teacher branches and how they are fused."""

    model_config = ConfigDict(extra="forbid")

    branches: list[Branch] = Field(min_length=1)
    student_weight: float = 0.8
    hidden: int = Field(default=1024, ge=1)
    fuse: bool = True
    # False only for rsseg 0.1.0 checkpoints (the upgrader sets it), so that they predict as they did.
    align_corners: bool = True


def fusion_parts(branches: Sequence[Branch], student_weight: float, hidden: int, fuse: bool) -> dict:
    """The `parts` of a fusion-segmenter spec (what RS-MTDF adds to the student's spec)."""
    parts = FusionParts(branches=list(branches), student_weight=student_weight, hidden=hidden, fuse=fuse)
    return parts.model_dump(mode="json")


def build(spec: ModelSpec, weights: WeightsArg) -> FusionSegmenter:
    """The 'fusion-segmenter' architecture: a segmenter plus translators and projections (RS-MTDF)."""
    parts = FusionParts.model_validate(spec.parts)
    backbone, head, resolved = encoder_and_head(spec, weights)
    return FusionSegmenter(
        backbone,
        head,
        parts.branches,
        student_weight=parts.student_weight,
        hidden=parts.hidden,
        fuse=parts.fuse,
        spec=resolved,
        align_corners=parts.align_corners,
    )
