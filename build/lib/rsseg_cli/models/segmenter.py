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
from rsseg_cli.models.backbones import Backbone, build_backbone
from rsseg_cli.models.dpt import DPTHead, build_dpt
from rsseg_cli.models.presets import default_taps, get_preset
from rsseg_cli.models.spec import ModelSpec, WeightsArg, single_weights
from rsseg_cli.models.weights import Weights

# Backbone size -> DPT preset (dpt.DPT_PRESETS holds the sizes): each ViT size has its own, as in UniMatch V2.
_HEAD_FOR_SIZE = {"s": "s", "b": "b", "l": "l", "g": "g"}


def _head_for(size: str | None, embed_dim: int) -> str:
    """The DPT preset of a registry size, or for a model named by timm:/open_clip:, of its width."""
    if size is not None:
        return _HEAD_FOR_SIZE[size]
    return "s" if embed_dim <= 384 else "b" if embed_dim <= 768 else "l" if embed_dim <= 1024 else "g"


class Segmenter(nn.Module):
    def __init__(self, backbone: Backbone, head: DPTHead, spec: ModelSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = head.num_classes
        # The resolved specification: what rebuilds this architecture before loading a checkpoint.
        self.spec = spec

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Four (B, embed_dim, ceil(H/p), ceil(W/p)) feature maps."""
        return self.backbone(x)

    def decode(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """(B, num_classes, *size) logits from `encode`'s features of an input of that size."""
        # Traced (a dynamic-window ONNX export), the sizes stay the tracer's values, so that the graph's resize
        # and crop follow the input instead of the example's size.
        h, w = (size[0], size[1]) if torch.jit.is_tracing() else (int(size[0]), int(size[1]))
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
    head_features: int | None = None,
    head_channels: Sequence[int] | None = None,
    **overrides: Any,
) -> Segmenter:
    """Backbone preset + DPT head (the keyword form of `build`). `head` None picks the preset matching the
    backbone's size; `head_features` and `head_channels` override the head preset; `overrides` go to the
    backbone constructor (`tiny_overrides`)."""
    spec = ModelSpec(
        num_classes=num_classes,
        in_chans=in_chans,
        band_map=list(band_map) if band_map is not None else None,
        backbone=backbone,
        backbone_kwargs=overrides,
        taps=list(taps) if taps is not None else None,
        head=head,  # type: ignore[arg-type]
        head_features=head_features,
        head_channels=list(head_channels) if head_channels is not None else None,
    )
    return build(spec, weights)


def encoder_and_head(spec: ModelSpec, weights: WeightsArg) -> tuple[Backbone, DPTHead, ModelSpec]:
    """The backbone and DPT head a spec describes, and the spec with every default resolved."""
    if spec.backbone is None:
        raise UserError("A segmenter needs a backbone (model.backbone).")
    preset = get_preset(spec.backbone)
    bb = build_backbone(
        spec.backbone,
        weights=single_weights(weights),
        in_chans=spec.in_chans,
        band_map=spec.band_map,
        taps=spec.taps,
        **spec.backbone_kwargs,
    )
    head_name = spec.head if spec.head is not None else _head_for(preset.size, bb.embed_dim)
    if len(bb.taps) != 4:
        raise UserError(
            f"The DPT head takes exactly four tapped blocks, got {bb.taps}; e.g. --set "
            f"model.taps=[{','.join(map(str, preset.taps or default_taps(bb.depth)))}] for {spec.backbone}."
        )
    dpt = build_dpt(
        head_name,
        bb.embed_dim,
        spec.num_classes,
        features=spec.head_features,
        out_channels=spec.head_channels,
    )
    resolved = spec.model_copy(
        update=dict(
            band_map=bb.band_map,
            taps=bb.taps,
            head=head_name,
            head_features=dpt.features,
            head_channels=list(dpt.out_channels),
        )
    )
    return bb, dpt, resolved


def build(spec: ModelSpec, weights: WeightsArg) -> Segmenter:
    """The 'segmenter' architecture: backbone + DPT head (UniMatch V2, FixMatch, supervised)."""
    return Segmenter(*encoder_and_head(spec, weights))
