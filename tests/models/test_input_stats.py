"""Input statistics: each backbone's own pretrained mean/std (issue 13), the setting that overrides them, and
the exact re-standardization of a second backbone's input."""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from rsseg_cli.models import tiny_overrides
from rsseg_cli.models.input_stats import Restandardize, main_backbone, pretrained_stats
from rsseg_cli.models.presets import get_preset
from rsseg_cli.models.spec import ModelSpec, build

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SAT_MEAN, SAT_STD = (0.430, 0.411, 0.296), (0.213, 0.156, 0.143)


def _close(a, b) -> bool:
    return all(abs(x - y) < 1e-9 for x, y in zip([*a[0], *a[1]], [*b[0], *b[1]]))


@pytest.mark.parametrize(
    ("backbone", "expected"),
    [
        ("dinov2_s", (IMAGENET_MEAN, IMAGENET_STD)),
        ("dinov3_b_qkvb", (IMAGENET_MEAN, IMAGENET_STD)),
        ("clip_b16", (OPENAI_MEAN, OPENAI_STD)),
        ("clip_b16_timm", (OPENAI_MEAN, OPENAI_STD)),
        ("open_clip:ViT-B-16:laion2b_s34b_b88k", (OPENAI_MEAN, OPENAI_STD)),
        ("timm:vit_base_patch16_224.augreg_in21k", ((0.5,) * 3, (0.5,) * 3)),
        ("dinov3_l_sat", (SAT_MEAN, SAT_STD)),
        ("dinov3_l_sat_qkvb", (SAT_MEAN, SAT_STD)),
    ],
)
def test_auto_statistics_are_the_backbones_own(backbone, expected):
    assert _close(pretrained_stats(backbone), expected)


def test_the_satellite_dinov3_presets():
    for name, arch in (
        ("dinov3_l_sat", "vit_large_patch16_dinov3"),
        ("dinov3_l_sat_qkvb", "vit_large_patch16_dinov3_qkvb"),
    ):
        p = get_preset(name)
        assert p.timm_name == f"{arch}.sat493m" and p.embed_dim == 1024 and p.depth == 24 and p.size == "l"
        # The preset's own statistics agree with what timm's pretrained_cfg says, offline.
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(p.timm_name)
        assert _close(p.stats, (cfg.mean, cfg.std))


def _segmenter_spec(backbone: str, stats) -> ModelSpec:
    return ModelSpec(
        num_classes=3,
        in_chans=4,
        band_map=[0, 1, 2, None],
        backbone=backbone,
        backbone_kwargs=tiny_overrides(backbone, depth=4, embed_dim=48, img_size=32),
        input_stats=stats,
    )


def test_auto_resolves_to_the_main_backbones_statistics_and_converts_nothing():
    model = build(_segmenter_spec("clip_b16", "auto"))
    assert model.spec.input_stats.mean == list(OPENAI_MEAN) and model.spec.input_stats.std == list(OPENAI_STD)
    assert not model.backbone.restandardize.active
    # The resolved spec rebuilds the same (a checkpoint records it).
    again = build(model.spec.model_dump(mode="json"))
    assert again.spec.input_stats == model.spec.input_stats


def test_configured_statistics_feed_every_backbone_as_they_are():
    cfg = load_config(overrides=["model.input_stats=imagenet"])
    assert cfg.model.input_stats == "imagenet"
    assert ModelSpec.from_config(cfg.model, 3, 4, [0, 1, 2, None]).input_stats is None
    assert ModelSpec.from_config(load_config().model, 3, 4, None).input_stats == "auto"
    explicit = load_config(overrides=["model.input_stats={mean: [0.4, 0.4, 0.3], std: [0.2, 0.2, 0.1]}"])
    assert explicit.model.input_stats.mean == [0.4, 0.4, 0.3]
    model = build(_segmenter_spec("clip_b16", None))
    assert model.spec.input_stats is None and not model.backbone.restandardize.active


def test_restandardization_is_exact_by_hand():
    source, target = (IMAGENET_MEAN, IMAGENET_STD), (OPENAI_MEAN, OPENAI_STD)
    band_map = [2, None, 0, 1]  # blue, an extra band, red, green
    r = Restandardize()
    r.fit(source, target, band_map)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float32)
    out = r(x)
    for band, m in enumerate(band_map):
        if m is None:
            ma, sa = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
            mb, sb = sum(OPENAI_MEAN) / 3, sum(OPENAI_STD) / 3
        else:
            ma, sa, mb, sb = IMAGENET_MEAN[m], IMAGENET_STD[m], OPENAI_MEAN[m], OPENAI_STD[m]
        # The same [0, 1] pixel, standardized with the backbone's own statistics.
        expected = ((x[:, band].double() * sa + ma) - mb) / sb
        torch.testing.assert_close(out[:, band].double(), expected, rtol=0, atol=1e-6)
    same = Restandardize()
    same.fit(source, source, band_map)
    assert not same.active and same(x) is x
    assert "scale" not in dict(r.state_dict())  # not persistent: state_dicts are unchanged
    assert r.to(torch.bfloat16).scale.dtype == torch.float32  # a bf16 teacher still converts in float32


def test_co2s_feeds_the_clip_students_statistics_and_the_dinov3_student_converts():
    clip = {"backbone": "clip_b16", **tiny_overrides("clip_b16", depth=4, embed_dim=48, img_size=32)}
    dino = {"backbone": "dinov3_l_sat", **tiny_overrides("dinov3_l_sat", depth=4, embed_dim=48, img_size=32)}
    spec = ModelSpec(
        architecture="co2s",
        num_classes=2,
        in_chans=3,
        backbone=None,
        parts={"students": {"clip": clip, "dinov3": dino}, "concepts": [["a"], ["b"]]},
        input_stats="auto",
    )
    model = build(spec)
    assert main_backbone(model.spec) == "clip_b16"
    assert model.spec.input_stats.mean == list(OPENAI_MEAN)
    dinov3 = next(m for m in model.modules() if getattr(m, "kind", None) == "dinov3")
    clip_student = next(m for m in model.modules() if getattr(m, "kind", None) == "clip")
    assert not clip_student.backbone.restandardize.active
    bb = dinov3.backbone
    assert bb.restandardize.active
    x = torch.randn(1, 3, 32, 32)
    expected = torch.stack(
        [((x[:, c] * OPENAI_STD[c] + OPENAI_MEAN[c]) - SAT_MEAN[c]) / SAT_STD[c] for c in range(3)], dim=1
    )
    torch.testing.assert_close(bb.restandardize(x), expected, rtol=0, atol=1e-6)
    with torch.no_grad():  # the student's backbone call converts before its patch embedding
        out = bb(x)
        bb.restandardize.fit((SAT_MEAN, SAT_STD), (SAT_MEAN, SAT_STD), bb.band_map)
        torch.testing.assert_close(bb(expected), out, rtol=0, atol=1e-5)
