"""The giant backbone's DPT head: UniMatch V2's `giant` config (features 384, out_channels 1536 x 4), not L's.

The real ViT-G/14 (1.1B parameters) is built on the meta device: the preset, taps and head resolution run
exactly as in `rsseg train`, but no parameter gets storage, so the test costs seconds and ~no memory.
"""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.models import DPT_PRESETS, build_segmenter
from rsseg_cli.models.segmenter import _head_for
from rsseg_cli.models.spec import ModelSpec

GIANT = (384, [1536, 1536, 1536, 1536])


def test_giant_preset_sizes():
    assert DPT_PRESETS["g"] == GIANT
    assert DPT_PRESETS["l"] == (256, [256, 512, 1024, 1024])  # L keeps its own


@pytest.mark.parametrize("name", ["dinov2_g", "dinov2_g_reg4"])
def test_giant_backbone_gets_the_giant_head_by_default(name):
    with torch.device("meta"):
        model = build_segmenter(name, num_classes=2, weights="none")
    # Nothing was allocated: every tensor is a meta tensor.
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert sum(p.numel() for p in model.backbone.parameters()) > 1.1e9  # it is the real ViT-G
    spec = model.spec
    assert (spec.head, spec.head_features, spec.head_channels) == ("g", *GIANT)
    head = model.head
    assert [(p.in_channels, p.out_channels) for p in head.projects] == [(1536, 1536)] * 4
    for i in range(1, 5):
        rn = getattr(head.scratch, f"layer{i}_rn")
        assert (rn.in_channels, rn.out_channels) == (1536, 384)
    # Written out: projects 4 x (1536^2 + 1536); resize 4x4 / 2x2 transposed convs and a 3x3 conv, each
    # 1536 -> 1536 with bias; layerN_rn 4 x 1536 x 384 x 9 (no bias); refinenets 4 x (4 x (384^2 x 9 + 384) +
    # 384^2 + 384); output 384^2 x 9 + 384 + 384 x 2 + 2.
    c, f = 1536, 384
    expected = (
        4 * (c * c + c)
        + (c * c * 16 + c) + (c * c * 4 + c) + (c * c * 9 + c)
        + 4 * c * f * 9
        + 4 * (4 * (f * f * 9 + f) + f * f + f)
        + (f * f * 9 + f) + (f * 2 + 2)
    )  # fmt: skip
    assert sum(p.numel() for p in head.parameters()) == expected == 122_260_610
    # The resolved spec (what a checkpoint stores) validates again with head 'g'.
    assert ModelSpec.model_validate(spec.model_dump()).head == "g"


def test_giant_head_sizes_can_still_be_overridden():
    with torch.device("meta"):
        model = build_segmenter("dinov2_g", num_classes=2, weights="none", head_features=64)
    assert (model.spec.head_features, model.spec.head_channels) == (64, GIANT[1])


def test_head_by_width_for_unregistered_models_and_config():
    """A timm:/open_clip: model has no registry size: the head follows its width, 1536 -> g."""
    assert [_head_for(None, w) for w in (384, 768, 1024, 1536)] == ["s", "b", "l", "g"]
    assert _head_for("g", 1536) == "g" and _head_for("l", 1024) == "l"
    assert load_config(overrides=["model.head=g"]).model.head == "g"
