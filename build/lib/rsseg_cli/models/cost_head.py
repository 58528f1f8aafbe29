"""Co2S's segmentation head, the released VLGHead (cost aggregation, CAT-Seg style), shared by both students.

Instead of classifying features directly, the head compares the last feature map with one query per class
(cosine similarity: a "cost volume" of one map per class) and refines every class map with the same weights:
    1. spatial reasoning, per class map: a 7x7 conv (1 -> C), then ASPP whose projection is added to its input;
    2. semantic reasoning, `layers` times: average-pool the class maps, put the projected class query beside
       each pooled vector, one pre-norm transformer layer across the class dimension, keep the first C
       channels, upsample and add to the class maps;
    3. upsampling, twice: a 2x2 transposed conv makes room for a projected skip map (3x3 conv + ReLU on an
       early block's stride-16 map, resized to the new grid), then two conv3x3-GroupNorm-ReLU layers;
    4. a 3x3 conv gives one logit per class at stride 4.
Because the classes share every spatial layer and meet only in the attention across classes, text queries
(fixed, from CLIP) and learned queries are treated alike and the number of classes is free.

All class maps are one batch of B*K maps (no loops over classes). GroupNorm has one group per 16 channels.
`cost_head_v01.py` keeps rsseg 0.1's head for its checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _gn(channels: int) -> nn.GroupNorm:
    """GroupNorm with channels / 16 groups, as the release (at least one group for narrow test heads)."""
    return nn.GroupNorm(max(1, channels // 16), channels)


def _conv_gn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> list[nn.Module]:
    pad = 0 if kernel == 1 else dilation * (kernel // 2)
    return [
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        _gn(cout),
        nn.ReLU(True),
    ]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear with align_corners=True, the release's choice inside the head."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with a residual: x + project(cat(1x1, dilated 3x3s, image pooling)).

    The dilated branches see each class's cost map at several ranges, smoothing it by its context before
    the classes interact. A rate of 1 is the 1x1 branch.
    """

    def __init__(self, channels: int, rates: Sequence[int] = (1, 6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*_conv_gn_relu(channels, channels, 1 if r == 1 else 3, dilation=r)) for r in rates
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_gn_relu(channels, channels, 1))
        self.project = nn.Sequential(*_conv_gn_relu(channels * (len(rates) + 1), channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))  # = resizing a 1x1 map
        return x + self.project(torch.cat(outs, dim=1))


class SemanticLayer(nn.Module):
    """Attention across the K class maps at every cell of a pooled grid, added back to the maps.

    Tokens are [pooled visual vector (C), projected class query (T)]; the layer is pre-norm with GELU
    (the release's encoder layer); only the first C channels of its output return to the maps.
    """

    def __init__(self, channels: int, text_channels: int, heads: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.encoder = nn.TransformerEncoderLayer(
            channels + text_channels,
            heads,
            4 * channels,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )

    def forward(self, x: torch.Tensor, text: torch.Tensor, b: int, k: int) -> torch.Tensor:
        """x (B*K, C, h, w) class maps, class index fastest; text (K, T) projected queries."""
        h, w = x.shape[-2:]
        # ceil_mode: a grid not divisible by the pool (tiny test inputs) keeps its partial last cell; on
        # divisible grids (512 / 16 / 4) this is the release's floor pooling.
        pooled = F.avg_pool2d(x, self.pool, self.pool, ceil_mode=True)
        c, ph, pw = pooled.shape[-3:]
        tokens = pooled.view(b, k, c, ph, pw).permute(0, 3, 4, 1, 2).reshape(b * ph * pw, k, c)
        text = text.to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        out = self.encoder(torch.cat([tokens, text], dim=-1))[..., :c]
        out = out.reshape(b, ph, pw, k, c).permute(0, 3, 4, 1, 2).reshape(b * k, c, ph, pw)
        return x + _resize(out, (h, w))


class UpBlock(nn.Module):
    """x2 up: ConvTranspose2d(cin, cin - skip) on each class map, the projected skip map (shared by the
    image's K maps) concatenated back to cin channels, then two conv3x3-GroupNorm-ReLU layers to cout."""

    def __init__(self, cin: int, cout: int, skip: int) -> None:
        super().__init__()
        if not 0 < skip < cin:
            raise ValueError(f"skip channels ({skip}) must lie between 0 and the input's ({cin})")
        self.up = nn.ConvTranspose2d(cin, cin - skip, kernel_size=2, stride=2)
        self.conv = nn.Sequential(*_conv_gn_relu(cin, cout), *_conv_gn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor, k: int) -> torch.Tensor:
        x = self.up(x)
        s = _resize(skip, x.shape[-2:]).repeat_interleave(k, dim=0)  # (B, S, ...) -> (B*K, S, ...)
        return self.conv(torch.cat([x, s], dim=1))


class CostAggregationHead(nn.Module):
    """forward(last (B, Dq, h, w), skips [(B, C0, h, w) shallower, (B, C1, h, w) deeper], queries (K, Dq),
    size) -> (B, K, 4h, 4w) logits, or (B, K, *size) when `size` is given (bilinear). The deeper skip joins
    first (at stride 8), the shallower one at stride 4.

    Defaults are the paper's sizes: 128 channels, text projection 128, two layers of 4 heads on 4x4-pooled
    maps, up blocks 128 -> 64 -> 32, skip projections 32 (deeper) and 16 (shallower).
    """

    def __init__(
        self,
        skip_dims: tuple[int, int] = (768, 768),
        *,
        query_dim: int,
        num_classes: int,
        channels: int = 128,
        text_channels: int = 128,
        up_channels: tuple[int, int] = (64, 32),
        skip_channels: tuple[int, int] = (32, 16),
        layers: int = 2,
        heads: int = 4,
        pool: int = 4,
        conv1_kernel: int = 7,
        aspp_rates: Sequence[int] = (1, 6, 12, 18),
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.query_dim = query_dim
        self.conv1 = nn.Conv2d(1, channels, conv1_kernel, padding=(conv1_kernel - 1) // 2)
        self.aspp = ASPP(channels, aspp_rates)
        self.text_proj = nn.Sequential(nn.Linear(query_dim, text_channels), nn.ReLU())
        self.layers = nn.ModuleList(
            SemanticLayer(channels, text_channels, heads, pool) for _ in range(layers)
        )
        # skip_proj[0] projects the deeper map (skips[1]), skip_proj[1] the shallower one (skips[0]).
        self.skip_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())
            for cin, cout in zip((skip_dims[1], skip_dims[0]), skip_channels)
        )
        self.up1 = UpBlock(channels, up_channels[0], skip_channels[0])
        self.up2 = UpBlock(up_channels[0], up_channels[1], skip_channels[1])
        self.classifier = nn.Conv2d(up_channels[1], 1, 3, padding=1)

    def cost(self, last: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) cosine similarity between each feature vector and each class query."""
        unit = F.normalize(queries.float(), dim=-1).to(last.dtype)
        return torch.einsum("bdhw,kd->bkhw", F.normalize(last, dim=1), unit)

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
        # The text projection sees the normalized queries, learned ones included (as in the release).
        x = self.aspp(self.conv1(self.cost(last, queries).reshape(b * k, 1, h, w)))
        text = self.text_proj(F.normalize(queries.float(), dim=-1).to(last.dtype))
        for layer in self.layers:
            x = layer(x, text, b, k)
        deep, shallow = self.skip_proj[0](skips[1]), self.skip_proj[1](skips[0])
        x = self.up2(self.up1(x, deep, k), shallow, k)
        logits = self.classifier(x).view(b, k, *x.shape[-2:])
        if size is not None and tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits
