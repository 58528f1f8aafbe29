"""The band adapter: inputs with other than 3 bands inherit the pretrained RGB patch-embedding filters."""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.errors import UserError
from rsseg_cli.models.backbones import build_backbone
from rsseg_cli.models.band_adapter import adapt_patch_conv, check_band_map
from rsseg_cli.models.open_clip_adapter import create_open_clip
from rsseg_cli.models.presets import tiny_overrides
from tests.models.helpers import save_weights


@pytest.fixture
def saved_dinov2(tmp_path):
    torch.manual_seed(3)
    saved = build_backbone("dinov2_s", **tiny_overrides("dinov2_s")).model.state_dict()
    return saved, save_weights(saved, tmp_path / "dinov2.safetensors")


def test_band_adapter_six_bands_bgr_first(saved_dinov2):
    saved, path = saved_dinov2
    band_map = [2, 1, 0, None, None, None]
    bb = build_backbone("dinov2_s", weights=path, in_chans=6, band_map=band_map, **tiny_overrides("dinov2_s"))
    rgb = saved["patch_embed.proj.weight"]
    conv = bb.model.patch_embed.proj
    assert conv.in_channels == 6 and conv.weight.shape[1] == 6
    scale = 3 / 6
    for band, m in enumerate(band_map):
        expected = rgb[:, m] if m is not None else rgb.mean(dim=1)
        torch.testing.assert_close(conv.weight[:, band], expected * scale)
    torch.testing.assert_close(conv.bias, saved["patch_embed.proj.bias"])
    assert bb.band_map == band_map and bb.in_chans == 6
    feats = bb(torch.randn(2, 6, 70, 64))
    assert len(feats) == 4 and feats[0].shape == (2, 96, 9, 8)


def test_band_adapter_four_bands_after_pretrained_load(saved_dinov2):
    saved, path = saved_dinov2
    bb = build_backbone("dinov2_s", weights=path, in_chans=4, **tiny_overrides("dinov2_s"))
    rgb = saved["patch_embed.proj.weight"]
    w = bb.model.patch_embed.proj.weight
    torch.testing.assert_close(w[:, :3], rgb * 0.75)  # default map: bands 0-2 are R, G, B
    torch.testing.assert_close(w[:, 3], rgb.mean(dim=1) * 0.75)
    state = bb.model.state_dict()
    for k, v in saved.items():  # everything else is the pretrained file, untouched
        if k != "patch_embed.proj.weight":
            assert torch.equal(state[k], v), k
    assert bb(torch.randn(1, 4, 64, 64))[0].shape == (1, 96, 8, 8)


def test_band_adapter_open_clip_and_single_band(tmp_path):
    ov = tiny_overrides("clip_b16")
    saved = create_open_clip("clip_b16", **ov).state_dict()
    path = save_weights(saved, tmp_path / "clip.safetensors")
    bb = build_backbone("clip_b16", weights=path, in_chans=5, band_map=[0, None, 2, None, 1], **ov)
    rgb = saved["visual.conv1.weight"]
    w = bb.model.conv1.weight
    for band, m in enumerate([0, None, 2, None, 1]):
        torch.testing.assert_close(w[:, band], (rgb[:, m] if m is not None else rgb.mean(1)) * 3 / 5)
    assert bb(torch.randn(1, 5, 72, 64))[0].shape == (1, 96, 9, 8)
    # One band: the mean filter, scaled so a grey image gives the RGB model's response (the summed filter).
    gray = build_backbone("clip_b16", weights=path, in_chans=1, **ov)
    torch.testing.assert_close(gray.model.conv1.weight[:, 0], rgb.sum(1), rtol=1e-5, atol=1e-6)


def test_bad_band_map_is_a_user_error():
    with pytest.raises(UserError, match="band_map"):
        build_backbone("dinov2_s", in_chans=4, band_map=[0, 1, 2], **tiny_overrides("dinov2_s"))
    with pytest.raises(UserError, match="band_map"):
        build_backbone("dinov2_s", in_chans=3, band_map=[0, 1, 3], **tiny_overrides("dinov2_s"))


def test_default_band_maps():
    assert check_band_map(3, None) == [0, 1, 2]
    assert check_band_map(5, None) == [0, 1, 2, None, None]
    assert check_band_map(2, None) == [None, None]  # no natural RGB counterpart: the mean filter
    assert check_band_map(4, (2, 1, 0, None)) == [2, 1, 0, None]
    with pytest.raises(UserError, match="at least one input band"):
        check_band_map(0, None)


def test_adapt_patch_conv_needs_an_rgb_conv():
    with pytest.raises(ValueError, match="3-channel"):
        adapt_patch_conv(torch.nn.Conv2d(4, 8, 2), [0, 1, 2])
