"""rsseg 0.1's cost-aggregation head, kept so that 0.1 Co2S checkpoints load and predict exactly as before.

It differs from the released VLGHead (`cost_head.py`, the default since issue 13): no ASPP residual, a text
projection without ReLU, one pooling for all attention layers (post-norm, ReLU) with a linear output instead of
a slice, skip projections by strided transposed convs, bilinear upsampling with one conv per block.

Instead of classifying features directly, the head first compares the last feature map with one query per
class (cosine similarity, a "cost volume" of one map per class) and then refines every class map with the
same weights. Because the classes share the spatial layers and interact only through attention across the
class dimension, the head treats text queries (fixed, from CLIP) and learned queries alike and does not
depend on the number or order of classes. Skip features from early blocks restore detail while upsampling
to stride 4.

All class maps are processed as one batch of B*K single-channel images (no loops over classes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    """GroupNorm groups: up to 16, always dividing the channel count (8 channels a group at 128)."""
    return math.gcd(channels, 16)


def _conv_gn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.GroupNorm(_groups(cout), cout),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel 1x1 and dilated 3x3 convs and an image-pooling branch.

    Dilated branches see the cost map at several ranges, which lets a class map be smoothed by its context
    before the classes interact. A rate of 1 means the 1x1 branch.
    """

    def __init__(self, channels: int, rates: Sequence[int] = (1, 6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _conv_gn_relu(channels, channels, 1 if r == 1 else 3, dilation=r) for r in rates
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.GroupNorm(_groups(channels), channels),
            nn.ReLU(inplace=True),
        )
        self.project = _conv_gn_relu(channels * (len(rates) + 1), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class UpBlock(nn.Module):
    """x2 bilinear upsampling of the class maps, concatenated with a projected skip map, then conv3x3+GN+ReLU.

    The skip projection (a strided transposed conv taking the stride-16 ViT map to the new resolution) runs
    once per image; its output is shared by the image's K class maps.
    """

    def __init__(self, cin: int, skip_dim: int, skip_out: int, skip_scale: int, cout: int) -> None:
        super().__init__()
        self.skip = nn.ConvTranspose2d(skip_dim, skip_out, kernel_size=skip_scale, stride=skip_scale)
        self.fuse = _conv_gn_relu(cin + skip_out, cout, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, k: int) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        s = self.skip(skip)
        if s.shape[-2:] != x.shape[-2:]:
            s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
        s = s.repeat_interleave(k, dim=0)  # (B, C, H, W) -> (B*K, C, H, W), class index fastest
        return self.fuse(torch.cat([x, s], dim=1))


class CostAggregationHeadV01(nn.Module):
    """Cost volume -> per-class 7x7 conv and ASPP -> attention across classes -> two upsampling blocks.

    forward(last (B, Dq, h, w), skips [(B, C0, h, w), (B, C1, h, w)], queries (K, Dq), size) gives
    (B, K, 4h, 4w) logits, or (B, K, *size) when `size` is given (bilinear). skips[1] joins at stride 8 and
    skips[0] at stride 4 (the deeper map at the coarser level).
    """

    def __init__(
        self,
        skip_dims: tuple[int, int] = (768, 768),
        *,
        query_dim: int,
        num_classes: int,
        hidden: int = 128,
        skip_out: tuple[int, int] = (32, 16),
        attn_dim: int = 256,
        heads: int = 4,
        ffn: int = 512,
        layers: int = 2,
        pool: int = 4,
        aspp_rates: Sequence[int] = (1, 6, 12, 18),
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if attn_dim <= hidden:
            raise ValueError(f"attn_dim ({attn_dim}) must exceed hidden ({hidden}): tokens hold both")
        self.num_classes = num_classes
        self.query_dim = query_dim
        self.pool = pool
        self.cost_conv = nn.Conv2d(1, hidden, kernel_size=7, padding=3)
        self.aspp = ASPP(hidden, aspp_rates)
        # Each pooled token holds the visual class map (hidden) and the class query (attn_dim - hidden).
        self.query_proj = nn.Linear(query_dim, attn_dim - hidden)
        self.class_attn = nn.ModuleList(
            nn.TransformerEncoderLayer(attn_dim, heads, ffn, dropout=0.0, batch_first=True)
            for _ in range(layers)
        )
        self.attn_out = nn.Linear(attn_dim, hidden)
        self.up1 = UpBlock(hidden, skip_dims[1], skip_out[0], 2, hidden // 2)
        self.up2 = UpBlock(hidden // 2, skip_dims[0], skip_out[1], 4, hidden // 4)
        self.classifier = nn.Conv2d(hidden // 4, 1, kernel_size=3, padding=1)

    def cost(self, last: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) cosine similarity between each feature vector and each class query."""
        return torch.einsum("bdhw,kd->bkhw", F.normalize(last, dim=1), F.normalize(queries, dim=1))

    def _attend_classes(self, x: torch.Tensor, queries: torch.Tensor, b: int, k: int) -> torch.Tensor:
        """Attention across the K class maps at each cell of a pool x pool-averaged grid, added back."""
        h, w = x.shape[-2:]
        # ceil_mode: grids not divisible by `pool` (or smaller than it) keep a partial last cell.
        pooled = F.avg_pool2d(x, kernel_size=self.pool, stride=self.pool, ceil_mode=True)
        c, ph, pw = pooled.shape[-3:]
        tokens = pooled.view(b, k, c, ph, pw).permute(0, 3, 4, 1, 2).reshape(b * ph * pw, k, c)
        q = self.query_proj(queries.to(tokens.dtype)).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([tokens, q], dim=-1)
        for layer in self.class_attn:
            tokens = layer(tokens)
        out = self.attn_out(tokens).view(b, ph, pw, k, -1).permute(0, 3, 4, 1, 2).reshape(b * k, -1, ph, pw)
        return x + F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)

    def forward(
        self,
        last: torch.Tensor,
        skips: Sequence[torch.Tensor],
        queries: torch.Tensor,
        size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        if len(skips) != 2:
            raise ValueError(f"the cost-aggregation head takes two skip maps, got {len(skips)}")
        k = queries.shape[0]
        if k != self.num_classes or queries.shape[1] != self.query_dim:
            raise ValueError(
                f"queries must be ({self.num_classes}, {self.query_dim}), got {tuple(queries.shape)}"
            )
        b, _, h, w = last.shape
        x = self.cost(last, queries).reshape(b * k, 1, h, w)
        x = self.aspp(self.cost_conv(x))
        x = self._attend_classes(x, queries, b, k)
        x = self.up1(x, skips[1], k)
        x = self.up2(x, skips[0], k)
        logits = self.classifier(x).view(b, k, *x.shape[-2:])
        if size is not None and tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits
