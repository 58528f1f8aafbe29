"""A segmentation model: a foundation-model backbone and a DPT head, as in UniMatch V2 and RS-MTDF.

`encode` and `decode` are separate so that methods can act on the features in between (UniMatch V2's
complementary channel dropout, RS-MTDF's fusion of translated teacher features into the 4th level).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import Backbone, Weights, build_backbone, default_taps, get_preset
from rsseg_cli.models.dpt import DPTHead, build_dpt

# Backbone size -> DPT preset: ViT-S/S+ -> s, ViT-B -> b, ViT-L/G -> l (UniMatch V2 uses l for both).
_HEAD_FOR_SIZE = {"s": "s", "b": "b", "l": "l", "g": "l"}


def _head_for(size: str | None, embed_dim: int) -> str:
    """The DPT preset of a registry size, or for a model named by timm:/open_clip:, of its width."""
    if size is not None:
        return _HEAD_FOR_SIZE[size]
    return "s" if embed_dim <= 384 else "b" if embed_dim <= 768 else "l"


class Segmenter(nn.Module):
    def __init__(self, backbone: Backbone, head: DPTHead, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = head.num_classes
        # The arguments that rebuild this architecture (with weights='none') before loading a checkpoint.
        self.config: dict[str, Any] = dict(config or {})

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Four (B, embed_dim, ceil(H/p), ceil(W/p)) feature maps."""
        return self.backbone(x)

    def decode(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """(B, num_classes, *size) logits from `encode`'s features of an input of that size."""
        h, w = int(size[0]), int(size[1])
        p = self.backbone.patch_size
        gh, gw = features[0].shape[-2:]
        if gh * p >= h and gw * p >= w:
            # The grid covers the input padded right/bottom to a multiple of p: resize to that padded
            # extent and crop, so that logits stay aligned with the pixels they were computed from.
            return self.head(features, (gh * p, gw * p))[..., :h, :w]
        return self.head(features, (h, w))

    def forward(
        self,
        x: torch.Tensor,
        feature_transform: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """Logits at x's size. `feature_transform` edits the encoder features before the head (UniMatch V2's
        complementary dropout); it goes through forward so that DDP sees a single call."""
        features = self.encode(x)
        if feature_transform is not None:
            features = feature_transform(features)
        return self.decode(features, x.shape[-2:])

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters as optimizer groups named 'backbone' and 'head' (their learning rates differ)."""
        return [
            {"name": "backbone", "params": [p for p in self.backbone.parameters() if p.requires_grad]},
            {"name": "head", "params": [p for p in self.head.parameters() if p.requires_grad]},
        ]


def build_segmenter(
    backbone: str = "dinov2_s",
    head: str | None = None,
    *,
    num_classes: int,
    weights: Weights = "none",
    in_chans: int = 3,
    band_map: Sequence[int | None] | None = None,
    taps: Sequence[int] | None = None,
    features: int | None = None,
    out_channels: Sequence[int] | None = None,
    **overrides: Any,
) -> Segmenter:
    """Backbone preset + DPT head. `head` None picks the preset matching the backbone's size; `features` and
    `out_channels` override the head preset; `overrides` go to the backbone constructor (`tiny_overrides`)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    preset = get_preset(backbone)
    bb = build_backbone(
        backbone, weights=weights, in_chans=in_chans, band_map=band_map, taps=taps, **overrides
    )
    head_name = head if head is not None else _head_for(preset.size, bb.embed_dim)
    if len(bb.taps) != 4:
        raise UserError(
            f"The DPT head takes exactly four tapped blocks, got {bb.taps}; e.g. "
            f"--set model.taps=[{','.join(map(str, preset.taps or default_taps(bb.depth)))}] for {backbone}."
        )
    dpt = build_dpt(head_name, bb.embed_dim, num_classes, features=features, out_channels=out_channels)
    config = dict(
        backbone=backbone,
        head=head_name,
        num_classes=num_classes,
        in_chans=in_chans,
        band_map=bb.band_map,
        taps=bb.taps,
        features=dpt.features,
        out_channels=dpt.out_channels,
        **overrides,
    )
    return Segmenter(bb, dpt, config)
