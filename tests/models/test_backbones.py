"""Backbones: feature shapes, padding, taps, weight loading through timm / open_clip, the band adapter."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from rsseg_cli.errors import UserError
from rsseg_cli.models import (
    BACKBONES,
    build_backbone,
    create_open_clip,
    default_taps,
    imagenet_stats,
    tiny_overrides,
)

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


def save_weights(state: dict[str, torch.Tensor], path) -> str:
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return str(path)


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


def test_unknown_backbone_is_a_user_error():
    with pytest.raises(UserError, match="dinov2_s"):
        build_backbone("resnet50")


def test_imagenet_stats():
    mean, std = imagenet_stats()
    assert mean == pytest.approx([0.485, 0.456, 0.406])
    assert std == pytest.approx([0.229, 0.224, 0.225])


# --- weights ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dinov2_s", "dinov3_s"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_loads_local_file(tmp_path, name, suffix):
    ov = tiny_overrides(name)
    torch.manual_seed(1)
    saved = build_backbone(name, **ov).model.state_dict()
    path = save_weights(saved, tmp_path / f"weights{suffix}")
    torch.manual_seed(2)
    loaded = build_backbone(name, weights=path, **ov).model.state_dict()
    assert loaded.keys() == saved.keys()
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k


def test_timm_loads_local_dir(tmp_path):
    ov = tiny_overrides("dinov2_s")
    saved = build_backbone("dinov2_s", **ov).model.state_dict()
    save_weights(saved, tmp_path / "model.safetensors")
    for weights in (f"local-dir:{tmp_path}", str(tmp_path)):
        loaded = build_backbone("dinov2_s", weights=weights, **ov).model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in saved.items())


@pytest.mark.parametrize("layout", ["file", "dir"])
def test_open_clip_loads_local_weights(tmp_path, layout):
    ov = tiny_overrides("clip_b16")
    torch.manual_seed(1)
    saved = create_open_clip("clip_b16", **ov).state_dict()
    name = "weights.safetensors" if layout == "file" else "open_clip_model.safetensors"
    path = save_weights(saved, tmp_path / name)
    torch.manual_seed(2)
    bb = build_backbone("clip_b16", weights=path if layout == "file" else f"local-dir:{tmp_path}", **ov)
    loaded = bb.model.state_dict()
    visual = {k.removeprefix("visual."): v for k, v in saved.items() if k.startswith("visual.")}
    assert loaded.keys() == visual.keys()
    for k, v in visual.items():
        assert torch.equal(loaded[k], v), k


def test_wrong_weights_file_is_a_user_error(tmp_path):
    small = build_backbone("dinov2_s", **tiny_overrides("dinov2_s", embed_dim=48)).model.state_dict()
    path = save_weights(small, tmp_path / "other.safetensors")
    with pytest.raises(UserError, match=r"other\.safetensors"):
        build_backbone("dinov2_s", weights=path, **tiny_overrides("dinov2_s"))


@pytest.mark.parametrize("weights", ["/nonexistent/weights.safetensors", "local-dir:/nonexistent/dir"])
@pytest.mark.parametrize("name", ["dinov2_s", "clip_b16"])
def test_missing_weights_path_is_a_user_error(name, weights):
    with pytest.raises(UserError, match="do not exist"):
        build_backbone(name, weights=weights, **tiny_overrides(name))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty cache; huggingface_hub reads its settings at import, so patch those too."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))


@pytest.mark.parametrize(
    "name, model", [("dinov2_s", "vit_small_patch14_dinov2.lvd142m"), ("clip_b16", "ViT-B-16-quickgelu")]
)
def test_hub_offline_fails_fast_with_user_error(offline, name, model):
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        build_backbone(name, weights="hub", **tiny_overrides(name))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert model in message
    assert "model.weights=/path/to/weights.safetensors" in message
    assert "local" in message


# --- band adapter ----------------------------------------------------------------------------------------


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
