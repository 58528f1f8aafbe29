"""Segmenter: backbone + DPT head, logits at the input size, gradients, optimizer groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsseg_cli.errors import UserError
from rsseg_cli.models import Segmenter, build_segmenter, tiny_overrides

KINDS = ["dinov2_s", "dinov3_s", "clip_b16_timm", "clip_b16"]


def tiny_segmenter(name: str = "dinov2_s", num_classes: int = 5, **kwargs) -> Segmenter:
    torch.manual_seed(0)
    return build_segmenter(name, num_classes=num_classes, **kwargs, **tiny_overrides(name))


@pytest.mark.parametrize("size", [(64, 64), (70, 70), (96, 80)])
def test_forward_gives_logits_at_input_size(size):
    model = tiny_segmenter().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def test_logits_stay_aligned_when_the_input_is_padded():
    """A 70 px input is padded to 72 inside: its logits are the 72 px logits cropped, not squeezed."""
    model = tiny_segmenter().eval()
    x = torch.randn(1, 3, 70, 70)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(F.pad(x, (0, 2, 0, 2)))[..., :70, :70])


def test_encode_decode_is_forward():
    model = tiny_segmenter().eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        feats = model.encode(x)
        assert [f.shape for f in feats] == [torch.Size([1, 96, 8, 6])] * 4
        torch.testing.assert_close(model.decode(feats, (64, 48)), model(x))


@pytest.mark.parametrize("name", KINDS)
def test_backward_reaches_every_trainable_parameter(name):
    """Backbone and head both learn, and no trainable parameter is left without a gradient (DDP-safe)."""
    model = tiny_segmenter(name, num_classes=3).train()
    logits = model(torch.randn(2, 3, 64, 64))
    F.cross_entropy(logits, torch.randint(0, 3, (2, 64, 64))).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    vit = model.backbone.model
    patch_embed = vit.conv1 if name == "clip_b16" else vit.patch_embed.proj
    assert patch_embed.weight.grad.abs().sum() > 0  # the gradient reaches the backbone's first layer
    assert model.head.scratch.output_conv[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["dinov2_s", "clip_b16"])
def test_param_groups_cover_trainable_parameters_once(name):
    model = tiny_segmenter(name)
    groups = model.param_groups()
    assert [g["name"] for g in groups] == ["backbone", "head"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in groups[0]["params"]} <= {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in groups[1]["params"]} <= {id(p) for p in model.head.parameters()}
    torch.optim.AdamW([{**g, "lr": 1e-3} for g in groups])  # usable as optimizer groups as they are


@pytest.mark.parametrize(
    "name, features",
    [("dinov2_s", 64), ("dinov3_s_plus", 64), ("dinov2_b", 128), ("clip_l14", 256)],
)
def test_head_preset_follows_backbone_size(name, features):
    # dinov2_g (head 'g', 384) is in test_giant_head.py, built on the meta device: its head alone is 122M.
    assert tiny_segmenter(name).head.features == features


def test_multiband_segmenter_and_spec_rebuild():
    from rsseg_cli.models.spec import build

    model = tiny_segmenter(in_chans=4)
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 5, 64, 64)
    rebuilt = build(model.spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert rebuilt.backbone.band_map == [0, 1, 2, None]


def test_dpt_needs_four_taps():
    with pytest.raises(UserError, match="four"):
        tiny_segmenter(taps=[1, 3])
