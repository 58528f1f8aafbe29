"""One Co2S student: a ViT-B/16 with attention-only tuning, class queries and the cost-aggregation head.

Co2S trains two students of the same shape from different pretraining: "clip" (student G, global context:
CLIP's image encoder, compared with frozen text class queries through the MaskCLIP dense embedding) and
"dinov3" (student L, local detail: DINOv3, compared with learned class queries). Both tune only the attention
parameters of their backbone, which keeps most pretrained knowledge fixed while letting the token mixing adapt
to remote-sensing images.

Features are three stride-16 maps [skip 0, skip 1, last]; `features` and `decode` are separate so that a
method can run the head on the same features with and without the feature-dropout perturbation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import Backbone, build_backbone
from rsseg_cli.models.clip_dense import clip_features
from rsseg_cli.models.cost_head import CostAggregationHead
from rsseg_cli.models.cost_head_v01 import CostAggregationHeadV01
from rsseg_cli.models.presets import get_preset
from rsseg_cli.models.weights import Weights

StudentKind = Literal["clip", "dinov3"]

DEFAULT_BACKBONE: dict[str, str] = {"clip": "clip_b16", "dinov3": "dinov3_b_qkvb"}
_LIBRARY = {"clip": "open_clip", "dinov3": "timm"}

# Attention parameters (q/k/v and output projection) in every block, the only trainable backbone parameters.
# The released DINOv3 (timm's _qkvb layout) keeps its q and v biases apart from the qkv projection: they are
# attention parameters too and learn with it. Norms inside the attention (q_norm, k_norm, attn.norm) stay frozen.
_TRAINABLE = {
    "open_clip": re.compile(
        r"transformer\.resblocks\.\d+\.attn\.(in_proj_weight|in_proj_bias|out_proj\.(weight|bias))$"
    ),
    "timm": re.compile(r"blocks\.\d+\.attn\.((qkv|proj)\.(weight|bias)|[qkv]_bias)$"),
}


FEATURE_DROPOUT = 0.5

HEADS: dict[str, type[nn.Module]] = {"vlg": CostAggregationHead, "rsseg-0.1": CostAggregationHeadV01}


def default_clip_skips(depth: int) -> tuple[int, int]:
    """CLIP skip blocks: (0, depth // 3), i.e. Co2S's blocks 0 and 4 at depth 12; (0, 1) at depth 4."""
    return 0, depth // 3


def default_dinov3_taps(depth: int) -> tuple[int, int, int]:
    """DINOv3 taps: (depth // 6, 7 * depth // 12, depth - 1), i.e. Co2S's blocks 2, 7, 11 at depth 12;
    (0, 2, 3) at depth 4. The first two are skips, the last is compared with the class queries."""
    return depth // 6, (7 * depth) // 12, depth - 1


def perturb_features(features: Sequence[torch.Tensor], p: float = FEATURE_DROPOUT) -> list[torch.Tensor]:
    """Co2S's feature perturbation: channel dropout (Dropout2d) on every map, active whatever the mode."""
    return [F.dropout2d(f, p=p, training=True) for f in features]


class Co2SStudent(nn.Module):
    """A Co2S student: backbone features -> cost-aggregation head -> (B, num_classes, H, W) logits.

    kind "clip": an open_clip preset (default clip_b16); skips are the value-path outputs of `skip_blocks`
    without ln_post (default `default_clip_skips(depth)`, see `clip_features`), the last map is the dense CLIP
    embedding in the joint space; the class queries are a buffer of frozen text embeddings `queries`
    (K, joint dim), see `text_queries.encode_class_queries` (None gives zeros, only to rebuild the model before loading a checkpoint, whose state holds the queries).
    kind "dinov3": a timm preset (default dinov3_b_qkvb); three LayerNorm'd taps (default `default_dinov3_taps`),
    learnable queries (K, embed_dim) initialized N(0, 0.02).
    `head` holds CostAggregationHead keyword arguments; `overrides` go to the backbone constructor.
    """

    def __init__(
        self,
        kind: StudentKind,
        num_classes: int,
        *,
        backbone: str | None = None,
        weights: Weights = "none",
        in_chans: int = 3,
        band_map: Sequence[int | None] | None = None,
        queries: torch.Tensor | None = None,
        skip_blocks: Sequence[int] | None = None,
        skip_path: Literal["value", "ln_post"] = "value",
        taps: Sequence[int] | None = None,
        head: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if kind not in _LIBRARY:
            raise UserError(f"Unknown Co2S student '{kind}': choose 'clip' or 'dinov3'.")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        name = backbone or DEFAULT_BACKBONE[kind]
        preset = get_preset(name)
        if preset.library != _LIBRARY[kind]:
            raise UserError(
                f"The Co2S {kind} student needs a{'n' if kind == 'clip' else ''} {_LIBRARY[kind]} backbone, "
                f"but {name} is a {preset.library} one; e.g. {DEFAULT_BACKBONE[kind]}."
            )
        self.kind: StudentKind = kind
        self.num_classes = num_classes
        if kind == "clip":
            if taps is not None:
                raise ValueError("the clip student takes skip_blocks, not taps")
            # Its own taps are unused (clip_features reads the blocks): the preset's are fine.
            self.backbone: Backbone = build_backbone(
                name, weights=weights, in_chans=in_chans, band_map=band_map, **overrides
            )
            depth = self.backbone.depth
            blocks = list(skip_blocks) if skip_blocks is not None else list(default_clip_skips(depth))
            if len(blocks) != 2 or any(isinstance(b, bool) or not 0 <= b < depth for b in blocks):
                raise UserError(f"The clip student takes two skip blocks in 0..{depth - 1}, got {blocks}.")
            self.skip_blocks: list[int] = blocks
            self.skip_path = skip_path  # "ln_post": rsseg 0.1.0 checkpoints only (see clip_features)
            visual = self.backbone.model
            query_dim = int(visual.proj.shape[1]) if visual.proj is not None else self.backbone.embed_dim
            if queries is None:
                queries = torch.zeros(num_classes, query_dim)
            if tuple(queries.shape) != (num_classes, query_dim):
                raise ValueError(
                    f"the clip student's text queries must be ({num_classes}, {query_dim}), "
                    f"got {tuple(queries.shape)}"
                )
            self.register_buffer("queries", queries.detach().float().clone())
        else:
            if skip_blocks is not None:
                raise ValueError("the dinov3 student takes taps, not skip_blocks")
            if queries is not None:
                raise ValueError("the dinov3 student learns its queries; do not pass any")
            built = build_backbone(
                name, weights=weights, in_chans=in_chans, band_map=band_map, taps=taps, **overrides
            )
            if taps is None:
                # The default taps follow the depth of the model as built (tiny test models, any timm ViT):
                # the same model is wrapped again with them (no rebuild, no weight reload).
                chosen = list(default_dinov3_taps(built.depth))
                built = Backbone(preset, built.model, chosen, built.in_chans, built.band_map)
            if len(built.taps) != 3:
                raise UserError(
                    f"The dinov3 student takes three tapped blocks (two skips, last), got {built.taps}."
                )
            self.backbone = built
            self.taps: list[int] = list(self.backbone.taps)
            query_dim = self.backbone.embed_dim
            self.queries = nn.Parameter(torch.empty(num_classes, query_dim))
            nn.init.normal_(self.queries, std=0.02)
        self._freeze_backbone()
        dim = self.backbone.embed_dim
        head_args = dict(head or {})
        # "rsseg-0.1": the head of rsseg 0.1 checkpoints (the checkpoint upgrader sets it); else the release's.
        head_class = HEADS.get(head_args.pop("layout", "vlg"))
        if head_class is None:
            raise UserError(f"Unknown Co2S head layout: choose one of {', '.join(HEADS)}.")
        self.head = head_class((dim, dim), query_dim=query_dim, num_classes=num_classes, **head_args)
        # The arguments that rebuild this architecture (weights='none') before loading a checkpoint.
        self.config: dict[str, Any] = dict(
            kind=kind,
            num_classes=num_classes,
            backbone=name,
            in_chans=in_chans,
            band_map=self.backbone.band_map,
            head=dict(head or {}),
            **({"skip_blocks": self.skip_blocks} if kind == "clip" else {"taps": self.taps}),
            **overrides,
        )

    def _freeze_backbone(self) -> None:
        """Only attention q/k/v and output projections learn; the pretrained weights are not touched."""
        pattern = _TRAINABLE[self.backbone.library]
        for name, p in self.backbone.model.named_parameters():
            p.requires_grad_(bool(pattern.search(name)))

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_size

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[skip 0, skip 1, last]: (B, C, ceil(H/p), ceil(W/p)) maps; for clip the last one is the unit
        dense embedding (B, joint dim, ...)."""
        if x.shape[1] != self.backbone.in_chans:
            raise ValueError(
                f"the {self.kind} student takes {self.backbone.in_chans} bands, got {x.shape[1]}"
            )
        if self.kind == "clip":
            skips, dense = clip_features(self.backbone.model, x, self.skip_blocks, self.skip_path)
            return [*skips, dense]
        return self.backbone(x)

    def decode(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """(B, num_classes, *size) logits from `features` of an input of that size."""
        # Traced (a dynamic-window ONNX export), the sizes stay the tracer's values, so that the graph's resize
        # and crop follow the input instead of the example's size.
        h, w = (size[0], size[1]) if torch.jit.is_tracing() else (int(size[0]), int(size[1]))
        p = self.patch_size
        gh, gw = features[-1].shape[-2:]
        if gh * p >= h and gw * p >= w:
            # The grid covers the input padded right/bottom to a multiple of p: resize to the padded extent
            # and crop, so that logits stay aligned with the pixels they come from (as Segmenter.decode).
            return self.head(features[-1], features[:2], self.queries, (gh * p, gw * p))[..., :h, :w]
        return self.head(features[-1], features[:2], self.queries, (h, w))

    def forward(self, x: torch.Tensor, feature_dropout: bool = False) -> torch.Tensor:
        """Logits at x's size; `feature_dropout` applies Dropout2d(0.5) to all three maps first (Co2S's
        feature-perturbation branch). One call, so that DDP sees a single forward."""
        feats = self.features(x)
        if feature_dropout:
            feats = perturb_features(feats)
        return self.decode(feats, x.shape[-2:])

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups 'backbone', 'head' and (dinov3) 'queries', whose learning rates differ. Every
        trainable parameter is decayed, norms included: the release's mmcv key matching gives the head and
        backbone multipliers precedence over its no-decay rule for norms (methods.md)."""
        parts: list[tuple[str, list[nn.Parameter]]] = [
            ("backbone", list(self.backbone.parameters())),
            ("head", list(self.head.parameters())),
        ]
        if isinstance(self.queries, nn.Parameter):
            parts.append(("queries", [self.queries]))
        return [{"name": name, "params": [p for p in params if p.requires_grad]} for name, params in parts]
