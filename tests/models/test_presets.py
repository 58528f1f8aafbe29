"""The backbone registry: every preset builds, the tapped blocks, lookup of registry and library names."""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import build_backbone
from rsseg_cli.models.presets import BACKBONES, default_taps, get_preset, imagenet_stats, tiny_overrides


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_preset_builds_tiny(name):
    """Each registry entry names a real timm / open_clip architecture: shrunk by tiny_overrides (width 96,
    patch 8, 4 blocks) and randomly initialized, it gives 4 maps of its width."""
    torch.manual_seed(0)
    bb = build_backbone(name, weights="none", **tiny_overrides(name)).eval()
    assert (bb.preset, bb.library, bb.license) == (name, BACKBONES[name].library, BACKBONES[name].license)
    assert (bb.embed_dim, bb.patch_size, bb.depth, bb.taps) == (96, 8, 4, [0, 1, 2, 3])
    with torch.no_grad():
        feats = bb(torch.randn(1, 3, 64, 64))
    assert len(feats) == 4
    for f in feats:
        assert f.shape == (1, 96, 8, 8)
        assert torch.isfinite(f).all()


def test_presets_are_consistent():
    for name, p in BACKBONES.items():
        assert p.name == name
        assert len(p.taps) == 4 and all(0 <= t < p.depth for t in p.taps), name
        assert p.size is not None and p.patch_size in (14, 16) and p.license, name
        assert p.library == "open_clip" or p.timm_name == f"{p.model}.{p.tag}", name


def test_taps_rule_and_presets():
    assert default_taps(12) == [2, 5, 8, 11]
    assert default_taps(24) == [5, 11, 17, 23]
    assert default_taps(40) == [9, 19, 29, 39]
    assert BACKBONES["dinov2_s"].taps == BACKBONES["dinov2_b"].taps == (2, 5, 8, 11)
    assert BACKBONES["dinov2_l"].taps == (4, 11, 17, 23)
    assert BACKBONES["dinov2_g"].taps == (9, 19, 29, 39)
    assert BACKBONES["dinov3_l"].taps == (5, 11, 17, 23)
    assert BACKBONES["clip_b16"].model == "ViT-B-16-quickgelu"
    assert BACKBONES["clip_l14"].model == "ViT-L-14-quickgelu"
    assert BACKBONES["clip_b16_timm"].model == "vit_base_patch16_clip_quickgelu_224"


def test_any_timm_or_open_clip_model():
    timm = get_preset("timm:vit_base_patch16_224.augreg_in21k")
    assert (timm.library, timm.model, timm.tag) == ("timm", "vit_base_patch16_224", "augreg_in21k")
    assert timm.timm_name == "vit_base_patch16_224.augreg_in21k"
    clip = get_preset("open_clip:ViT-B-16:laion2b_s34b_b88k")
    assert (clip.library, clip.model, clip.tag) == ("open_clip", "ViT-B-16", "laion2b_s34b_b88k")
    assert (clip.size, clip.taps, clip.depth) == (None, (), 0)  # read from the built model
    assert get_preset("timm:vit_small_patch16_224").tag == ""
    with pytest.raises(UserError, match="names no model"):
        get_preset("timm:")


def test_unknown_backbone_is_a_user_error():
    with pytest.raises(UserError, match="dinov2_s"):
        build_backbone("resnet50")


def test_imagenet_stats():
    mean, std = imagenet_stats()
    assert mean == pytest.approx([0.485, 0.456, 0.406])
    assert std == pytest.approx([0.229, 0.224, 0.225])
