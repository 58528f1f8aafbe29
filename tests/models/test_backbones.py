"""Backbone: feature shapes, padding, taps, and both libraries' feature paths (timm and open_clip)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import build_backbone
from rsseg_cli.models.presets import BACKBONES, tiny_overrides

# timm DINOv2 / DINOv3 / CLIP and open_clip CLIP: every code path of Backbone.forward.
KINDS = ["dinov2_s", "dinov2_s_reg4", "dinov3_s", "clip_b16_timm", "clip_b16"]


@pytest.fixture(scope="module")
def tiny():
    """One tiny random backbone per preset, built once (eval mode: no dropout anywhere)."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = build_backbone(name, **tiny_overrides(name)).eval()
        return cache[name]

    return get


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("size", [(64, 64), (70, 70), (96, 80)])
def test_feature_maps_shapes(tiny, name, size):
    bb = tiny(name)
    h, w = size
    with torch.no_grad():
        feats = bb(torch.randn(2, 3, h, w))
    assert len(feats) == len(bb.taps) == 4
    for f in feats:
        assert f.shape == (2, 96, math.ceil(h / 8), math.ceil(w / 8))
        assert torch.isfinite(f).all()
    assert (bb.patch_size, bb.embed_dim, bb.preset) == (8, 96, name)
    assert bb.library == BACKBONES[name].library


def test_patch14_shapes():
    bb = build_backbone("dinov2_s", **tiny_overrides("dinov2_s", patch_size=14, img_size=70)).eval()
    with torch.no_grad():
        for h, w in [(64, 64), (70, 70), (96, 80)]:
            assert bb(torch.randn(1, 3, h, w))[0].shape == (1, 96, math.ceil(h / 14), math.ceil(w / 14))


def test_padding_matches_manual_zero_padding(tiny):
    bb = tiny("dinov2_s")
    x = torch.randn(1, 3, 70, 70)
    with torch.no_grad():
        auto = bb(x)
        manual = bb(F.pad(x, (0, 2, 0, 2)))  # zeros right and bottom, to 72
    for a, m in zip(auto, manual):
        torch.testing.assert_close(a, m)


def test_open_clip_path_matches_open_clip_at_native_size(tiny):
    """Our pass (which resamples the position embedding at other sizes) is open_clip's own at 64 px:
    the tapped blocks' patch tokens after ln_post."""
    bb = tiny("clip_b16")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = bb(x)
        ref = bb.model.forward_intermediates(
            x, indices=bb.taps, normalize_intermediates=True, intermediates_only=True
        )["image_intermediates"]
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r)


def test_timm_features_are_final_layernormed(tiny):
    bb = tiny("dinov2_s")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = bb(x)[-1]
        tokens = bb.model.forward_features(x)[:, bb.model.num_prefix_tokens :]  # ends with the final norm
    torch.testing.assert_close(last, tokens.transpose(1, 2).reshape_as(last))


def test_taps_follow_actual_depth_and_user_choice():
    two = build_backbone("dinov2_s", **tiny_overrides("dinov2_s", depth=2)).eval()
    assert two.taps == [0, 0, 1, 1]
    with torch.no_grad():
        feats = two(torch.randn(1, 3, 64, 64))
    assert len(feats) == 4
    torch.testing.assert_close(feats[0], feats[1])
    assert not torch.allclose(feats[1], feats[2])

    user = build_backbone("dinov3_s", taps=[1, -1], **tiny_overrides("dinov3_s"))
    assert user.taps == [1, 3]
    assert len(user(torch.randn(1, 3, 32, 32))) == 2
    with pytest.raises(UserError, match="4 blocks"):
        build_backbone("dinov2_s", taps=[0, 4], **tiny_overrides("dinov2_s"))
