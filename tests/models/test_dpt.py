"""The DPT head: UniMatch V2's structure, output sizes and parameter count."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models import DPT_PRESETS, build_dpt, build_segmenter


@pytest.mark.parametrize("size", [64, 70])
def test_output_is_resized_to_the_requested_size(size):
    head = build_dpt("s", embed_dim=96, num_classes=5)
    g = math.ceil(size / 8)
    feats = [torch.randn(2, 96, g, g) for _ in range(4)]
    assert head(feats, (size, size)).shape == (2, 5, size, size)
    # without a size: 8x the grid (strides p/4 .. 2p fused, then refinenet1's x2)
    assert head(feats).shape == (2, 5, 8 * g, 8 * g)


def test_small_preset_structure():
    head = build_dpt("s", embed_dim=384, num_classes=7)
    assert DPT_PRESETS["s"] == (64, [48, 96, 192, 384])
    assert [(p.in_channels, p.out_channels, p.kernel_size) for p in head.projects] == [
        (384, c, (1, 1)) for c in (48, 96, 192, 384)
    ]
    up4, up2, same, down2 = head.resize_layers
    assert isinstance(up4, nn.ConvTranspose2d) and (up4.kernel_size, up4.stride) == ((4, 4), (4, 4))
    assert isinstance(up2, nn.ConvTranspose2d) and (up2.kernel_size, up2.stride) == ((2, 2), (2, 2))
    assert isinstance(same, nn.Identity)
    assert isinstance(down2, nn.Conv2d) and (down2.kernel_size, down2.stride, down2.padding) == (
        (3, 3),
        (2, 2),
        (1, 1),
    )
    for i, c in enumerate((48, 96, 192, 384), start=1):
        rn = getattr(head.scratch, f"layer{i}_rn")
        assert (rn.in_channels, rn.out_channels, rn.kernel_size, rn.bias) == (c, 64, (3, 3), None)
        block = getattr(head.scratch, f"refinenet{i}")
        assert block.out_conv.kernel_size == (1, 1)
        assert block.resConfUnit1.conv1.out_channels == block.resConfUnit2.conv2.out_channels == 64
    conv3, relu, conv1 = head.scratch.output_conv
    assert (conv3.in_channels, conv3.out_channels, conv3.kernel_size) == (64, 64, (3, 3))
    assert isinstance(relu, nn.ReLU)
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size) == (64, 7, (1, 1))


def test_other_presets_and_explicit_sizes():
    assert build_dpt("b", 768, 3).features == 128
    large = build_dpt("l", 1024, 3)
    assert (large.features, large.out_channels) == (256, [256, 512, 1024, 1024])
    custom = build_dpt(None, 96, 3, features=32, out_channels=[8, 16, 32, 64])
    assert [p.out_channels for p in custom.projects] == [8, 16, 32, 64]
    assert build_dpt("s", 96, 3, features=16).features == 16
    with pytest.raises(UserError, match="preset"):
        build_dpt("xl", 96, 3)
    with pytest.raises(ValueError):
        build_dpt(None, 96, 3)


def test_only_refinenet4_skip_unit_is_unused_and_it_is_frozen():
    head = build_dpt("s", embed_dim=96, num_classes=3)
    head([torch.randn(1, 96, 5, 5) for _ in range(4)]).sum().backward()
    no_grad = {n for n, p in head.named_parameters() if p.grad is None}
    assert no_grad == {
        n for n, _ in head.named_parameters() if n.startswith("scratch.refinenet4.resConfUnit1.")
    }
    assert len(no_grad) == 4  # two convs, weight and bias
    assert all(not p.requires_grad for p in head.scratch.refinenet4.resConfUnit1.parameters())


def test_dinov2_small_with_dpt_parameter_count():
    """methods.md: DINOv2-S + DPT is about 24.8M parameters. Measured: 24,794,343 for 7 classes
    (ViT-S/14 22,056,192 + head 2,738,151), i.e. within 0.03% of the spec's figure."""
    model = build_segmenter("dinov2_s", num_classes=7)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert backbone == 22_056_192  # timm vit_small_patch14_dinov2 without classifier
    assert 24.6e6 < backbone + head < 25.0e6
    assert backbone + head == 24_794_343
