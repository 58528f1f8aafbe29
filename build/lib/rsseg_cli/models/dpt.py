"""The DPT segmentation head of UniMatch V2 (itself Depth Anything's DPTHead with a class output).

Four ViT feature maps at stride p are projected and resized to strides p/4, p/2, p and 2p, fused top-down by
RefineNet blocks and turned into per-class logits. Module names follow the released code
(projects, resize_layers, scratch.layerN_rn, scratch.refinenetN, scratch.output_conv), so its checkpoints'
head weights load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.errors import UserError

# preset -> (features, out_channels): UniMatch V2's settings for ViT-S, ViT-B, ViT-L and ViT-G encoders.
# G has its own, much wider head (its released `giant` config), not L's.
DPT_PRESETS: dict[str, tuple[int, list[int]]] = {
    "s": (64, [48, 96, 192, 384]),
    "b": (128, [96, 192, 384, 768]),
    "l": (256, [256, 512, 1024, 1024]),
    "g": (384, [1536, 1536, 1536, 1536]),
}


class ResidualConvUnit(nn.Module):
    """ReLU - conv3x3 - ReLU - conv3x3, plus the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        # Not in-place: the input is also the skip branch.
        self.activation = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.activation(self.conv1(self.activation(x))))
        return out + x


class FeatureFusionBlock(nn.Module):
    """RefineNet fusion: add the refined skip input, refine, upsample (x2 or to `size`), 1x1 conv."""

    def __init__(self, features: int) -> None:
        super().__init__()
        # resConfUnit1 refines the skip input; refinenet4 has none, so its unit stays unused (as released).
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Four (B, embed_dim, h, w) maps -> (B, num_classes, H, W) logits."""

    def __init__(self, embed_dim: int, num_classes: int, features: int, out_channels: Sequence[int]) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"DPT needs four out_channels, got {list(out_channels)}")
        self.num_classes = num_classes
        self.features = features
        self.out_channels = list(out_channels)
        c = self.out_channels
        self.projects = nn.ModuleList([nn.Conv2d(embed_dim, ci, kernel_size=1) for ci in c])
        # Strides p/4, p/2, p, 2p: a feature pyramid from a single-scale ViT.
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, ci in enumerate(c, start=1):
            setattr(
                self.scratch, f"layer{i}_rn", nn.Conv2d(ci, features, kernel_size=3, padding=1, bias=False)
            )
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features))
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, num_classes, kernel_size=1),
        )
        # Never on the forward path (refinenet4 has no skip input): frozen, it cannot appear as a trainable
        # parameter without a gradient, which DDP would reject. Kept for checkpoint compatibility.
        self.scratch.refinenet4.resConfUnit1.requires_grad_(False)

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int] | None = None) -> torch.Tensor:
        """Logits at 8x the feature grid, or bilinearly resized to `size` (align_corners as released)."""
        if len(features) != 4:
            raise ValueError(f"DPT needs four feature maps, got {len(features)}")
        s = self.scratch
        l1, l2, l3, l4 = (
            rn(resize(proj(f)))
            for f, proj, resize, rn in zip(
                features,
                self.projects,
                self.resize_layers,
                (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn),
            )
        )
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = s.output_conv(path)
        if size is not None and tuple(out.shape[2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return out


def build_dpt(
    preset: str | None,
    embed_dim: int,
    num_classes: int,
    features: int | None = None,
    out_channels: Sequence[int] | None = None,
) -> DPTHead:
    """A DPT head from a preset ('s', 'b', 'l', 'g'), with `features` / `out_channels` overriding it if given."""
    if preset is not None:
        if preset not in DPT_PRESETS:
            raise UserError(
                f"Unknown DPT head preset {preset!r}; choose one of {', '.join(DPT_PRESETS)} "
                f"(e.g. --set model.head=s), or leave it unset to match the backbone size."
            )
        p_features, p_out = DPT_PRESETS[preset]
        features = p_features if features is None else features
        out_channels = p_out if out_channels is None else out_channels
    if features is None or out_channels is None:
        raise ValueError("without a DPT preset, give both features and out_channels")
    return DPTHead(embed_dim, num_classes, features, out_channels)
