"""Co2S building blocks: dense CLIP features, text class queries, the cost-aggregation head and the students."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models import build_backbone, create_open_clip, tiny_overrides
from rsseg_cli.models.clip_dense import clip_features
from rsseg_cli.models.co2s_student import Co2SStudent, default_clip_skips, default_dinov3_taps
from rsseg_cli.models.cost_head import CostAggregationHead
from rsseg_cli.models.text_queries import class_concepts, encode_class_queries

# open_clip and timm are imported inside the tests, after rsseg_cli.models (which makes torchvision safe).
CLIP_TINY = tiny_overrides("clip_b16")  # depth 4, width 96, patch 8, 64 px, joint space 32
DINO_TINY = tiny_overrides("dinov3_b")


def jitter_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random offsets on every parameter: LayerNorms start as identities and biases at zero, which would hide
    a missing or misplaced norm or bias from the comparisons."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return module


def tiny_visual() -> nn.Module:
    from open_clip.transformer import LayerScale

    torch.manual_seed(0)
    visual = create_open_clip("clip_b16", weights="none", **CLIP_TINY).visual.eval()
    last = visual.transformer.resblocks[-1]
    # CLIP's layer scales are identities; real ones make the test see whether they are applied.
    last.ls_1, last.ls_2 = LayerScale(96, 0.5), LayerScale(96, 2.0)
    return jitter_(visual)


def hand_embed(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Patch + class tokens, the positional embedding resampled to the grid, ln_pre."""
    from timm.layers import resample_abs_pos_embed

    tok = visual.conv1(x)
    gh, gw = tok.shape[-2:]
    tok = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), tok.flatten(2).transpose(1, 2)], 1)
    pos = resample_abs_pos_embed(visual.positional_embedding[None], [gh, gw], [8, 8], num_prefix_tokens=1)
    return visual.ln_pre(tok + pos[0])


def hand_value_block(blk: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """A block with its attention replaced by the value path, from its weights; t = the tokens entering it."""
    d = 96
    w_in, b_in = blk.attn.in_proj_weight, blk.attn.in_proj_bias
    v = F.layer_norm(t, (d,), blk.ln_1.weight, blk.ln_1.bias) @ w_in[2 * d :].T + b_in[2 * d :]
    a = v @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias
    h = t + getattr(blk.ls_1, "gamma", 1.0) * a
    return h + getattr(blk.ls_2, "gamma", 1.0) * blk.mlp(
        F.layer_norm(h, (d,), blk.ln_2.weight, blk.ln_2.bias)
    )


def hand_skip(blk: nn.Module, t: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """Co2S's CLIP skip: the value-path output of `blk`, no ln_post, class token dropped."""
    return hand_value_block(blk, t)[:, 1:].transpose(1, 2).reshape(t.shape[0], 96, gh, gw)


def hand_dense(visual: nn.Module, t: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """MaskCLIP written out from the last block's weights; t = the tokens entering that block."""
    h = hand_value_block(visual.transformer.resblocks[-1], t)
    d = 96
    h = F.layer_norm(h, (d,), visual.ln_post.weight, visual.ln_post.bias) @ visual.proj
    h = h[:, 1:] / h[:, 1:].norm(dim=-1, keepdim=True)
    return h.transpose(1, 2).reshape(t.shape[0], 32, gh, gw)


# --- dense CLIP features ---------------------------------------------------------------------------------


def test_clip_features_match_open_clip_and_a_hand_computation_at_the_built_size():
    visual = tiny_visual()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        skips, dense = clip_features(visual, x, (0, 1))
        # open_clip's own token path (valid at the built size only).
        t = visual._embeds(x)
        blocks = visual.transformer.resblocks
        entering = []
        for blk in blocks[:-1]:
            entering.append(t)
            t = blk(t)
        expected = hand_dense(visual, t, 8, 8)
        expected_skips = [hand_skip(blocks[i], entering[i], 8, 8) for i in (0, 1)]
    assert [s.shape for s in skips] == [torch.Size([2, 96, 8, 8])] * 2
    for got, want in zip(skips, expected_skips):
        torch.testing.assert_close(got, want)
    assert dense.shape == (2, 32, 8, 8)
    torch.testing.assert_close(dense.norm(dim=1), torch.ones(2, 8, 8))
    torch.testing.assert_close(dense, expected)
    # Not the ordinary last-block tokens: the value path really replaces the attention.
    ordinary = F.normalize((visual.ln_post(blocks[-1](t)) @ visual.proj)[:, 1:], dim=-1)
    assert not torch.allclose(dense.flatten(2).transpose(1, 2), ordinary, atol=1e-3)


@pytest.mark.parametrize("size", [(48, 80), (50, 70)])
def test_clip_features_at_other_sizes(size):
    """Other grids resample the positional embedding; 50x70 is padded to 56x72 first."""
    visual = tiny_visual()
    x = torch.randn(1, 3, *size)
    padded = F.pad(x, (0, -size[1] % 8, 0, -size[0] % 8))
    gh, gw = padded.shape[-2] // 8, padded.shape[-1] // 8
    with torch.no_grad():
        skips, dense = clip_features(visual, x, (0, 2))
        t = hand_embed(visual, padded)
        blocks = visual.transformer.resblocks
        expected_skips = []
        for i, blk in enumerate(blocks[:-1]):
            if i in (0, 2):
                expected_skips.append(hand_skip(blk, t, gh, gw))
            t = blk(t)
        expected = hand_dense(visual, t, gh, gw)
    assert dense.shape == (1, 32, gh, gw)
    torch.testing.assert_close(dense, expected)
    for got, want in zip(skips, expected_skips):
        torch.testing.assert_close(got, want)


def test_clip_features_with_a_sequence_first_transformer():
    visual = tiny_visual()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        skips, dense = clip_features(visual, x, (0, 3))
        visual.transformer.batch_first = False
        for blk in visual.transformer.resblocks:
            blk.attn.batch_first = False
        skips2, dense2 = clip_features(visual, x, (0, 3))
    torch.testing.assert_close(dense2, dense)
    for a, b in zip(skips2, skips):
        torch.testing.assert_close(a, b)


# --- text queries ----------------------------------------------------------------------------------------


def test_class_concepts():
    classes = [
        {"name": "water", "concepts": ["lake", "river", "water", "lake"]},
        {"name": "building"},
        {"name": "road", "concepts": []},
    ]
    assert class_concepts(classes) == [["water", "lake", "river"], ["building"], ["road"]]


def test_text_queries_come_from_the_text_tower():
    import open_clip

    torch.manual_seed(0)
    clip = create_open_clip("clip_b16", weights="none", **CLIP_TINY)
    jitter_(clip)
    clip.train()
    clip.visual.eval()  # mixed modes must survive
    concepts = [["water", "lake", "river"], ["building"], ["road", "street"]]
    single = encode_class_queries(clip, "ViT-B-16-quickgelu", concepts)  # the release's default
    averaged = encode_class_queries(clip, "ViT-B-16-quickgelu", concepts, variant="concept-avg")
    assert clip.training and clip.transformer.training and not clip.visual.training
    for queries in (single, averaged):
        assert queries.shape == (3, 32) and queries.dtype == torch.float32
        torch.testing.assert_close(queries.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(encode_class_queries(clip, "clip_b16", concepts), single)  # deterministic
    tok = open_clip.get_tokenizer("ViT-B-16-quickgelu")
    clip.eval()
    with torch.no_grad():
        raw = {c: clip.encode_text(tok([f"a photo of a {c}"]))[0] for cls in concepts for c in cls}
    # single: "a photo of a {name}", normalized; the concepts play no part.
    for i, cls in enumerate(concepts):
        torch.testing.assert_close(single[i], F.normalize(raw[cls[0]], dim=0))
    # concept-avg: the RAW embeddings of name + concepts averaged, then normalized.
    water = torch.stack([raw[c] for c in concepts[0]])
    torch.testing.assert_close(averaged[0], F.normalize(water.mean(0), dim=0))
    torch.testing.assert_close(averaged[1], single[1])  # a class without concepts: its name alone
    # Averaging normalized embeddings instead (rsseg 0.1) gives another direction.
    assert not torch.allclose(averaged[0], F.normalize(F.normalize(water, dim=1).mean(0), dim=0), atol=1e-5)
    with pytest.raises(UserError, match="single, concept-avg"):
        encode_class_queries(clip, "clip_b16", concepts, variant="ensemble")


def test_co2s_recipes_carry_the_authors_class_names_and_concepts():
    """Each Co2S recipe's classes are the authors' names (the prompt of the 'single' queries) and concept
    lists, in the benchmark's label order (../shared/spec/co2s_concepts.yaml, from the released code)."""
    import yaml

    from rsseg_cli.config import load_config

    authors = {  # a few classes per recipe, copied from the released text_embeddings.py
        "potsdam": ["impervious_surface", "asphalt", "concrete", "pavement", "roof", "sidewalk"],
        "whdld": ["water", "lake", "river", "pond", "water body", "water surface", "reservoir"],
        "gid15": ["pond", "fish pond", "small water pond", "artificial pond", "storage pond", "still water body"],
        "loveda": ["background", "undeveloped land", "open space", "background area", "unclassified region"],
        "mer": ["Martian Soil", "mars soil", "red soil", "martian regolith", "planetary soil",
                "extraterrestrial soil"],
        "msl": ["Background", "martian background", "scene background", "context area", "surroundings",
                "environment background"],
    }  # fmt: skip
    root = Path(__file__).parents[2] / "configs" / "co2s"
    for name, words in authors.items():
        cfg = load_config(root / f"{name}.yaml")
        assert cfg.train.co2s.text_queries == "single"
        table = class_concepts([c.model_dump() for c in cfg.classes])
        assert words in table, name
        raw = yaml.safe_load((root / f"{name}.yaml").read_text())
        assert [c["id"] for c in raw["classes"]] == list(range(len(raw["classes"])))


# --- head ------------------------------------------------------------------------------------------------


def tiny_head(k: int, query_dim: int = 24) -> CostAggregationHead:
    torch.manual_seed(0)
    return CostAggregationHead(
        (40, 48),
        query_dim=query_dim,
        num_classes=k,
        channels=32,
        text_channels=16,
        up_channels=(32, 16),
        skip_channels=(8, 4),
    )


def test_head_parameter_count_at_the_papers_sizes():
    """The released VLGHead at the paper's sizes, counted by hand from the spec (weights + biases; GroupNorm
    and LayerNorm have a weight and a bias per channel; convs followed by GroupNorm have no bias)."""
    c, t = 128, 128
    conv1 = 1 * c * 7 * 7 + c  # 7x7 conv 1 -> 128 with bias
    conv_gn = lambda cin, cout, k: cin * cout * k * k + 2 * cout  # noqa: E731 (conv without bias + GN)
    aspp = conv_gn(c, c, 1) + 3 * conv_gn(c, c, 3) + conv_gn(c, c, 1) + conv_gn(5 * c, c, 1)
    d = c + t  # 256-d tokens, feed-forward 4 x 128 = 512
    encoder = (d * 3 * d + 3 * d) + (d * d + d) + (d * 512 + 512) + (512 * d + d) + 2 * (2 * d)
    skips = (768 * 32 * 9 + 32) + (768 * 16 * 9 + 16)  # 3x3 convs with bias (+ ReLU)
    up1 = (128 * (128 - 32) * 4 + (128 - 32)) + conv_gn(128, 64, 3) + conv_gn(64, 64, 3)
    up2 = (64 * (64 - 16) * 4 + (64 - 16)) + conv_gn(64, 32, 3) + conv_gn(32, 32, 3)
    classifier = 32 * 9 + 1
    for query_dim in (512, 768):  # CLIP ViT-B/16 text space; DINOv3 ViT-B learned queries
        text_proj = query_dim * t + t
        want = conv1 + aspp + text_proj + 2 * encoder + skips + up1 + up2 + classifier
        head = CostAggregationHead((768, 768), query_dim=query_dim, num_classes=6)
        assert sum(p.numel() for p in head.parameters()) == want
    assert 2.2e6 < conv1 + aspp + 512 * t + t + 2 * encoder + skips + up1 + up2 + classifier < 2.25e6


def test_head_blocks_in_the_released_order():
    head = CostAggregationHead((768, 768), query_dim=512, num_classes=6)
    assert [n for n, _ in head.named_children()] == [
        "conv1", "aspp", "text_proj", "layers", "skip_proj", "up1", "up2", "classifier"
    ]  # fmt: skip
    assert [type(m) for m in head.text_proj] == [nn.Linear, nn.ReLU]
    enc = head.layers[0].encoder
    assert enc.norm_first and enc.activation is F.gelu and enc.self_attn.num_heads == 4
    assert (enc.linear1.in_features, enc.linear1.out_features) == (256, 512)
    assert [type(m) for m in head.skip_proj[0]] == [nn.Conv2d, nn.ReLU]
    assert (head.skip_proj[0][0].out_channels, head.skip_proj[1][0].out_channels) == (32, 16)
    assert head.skip_proj[0][0].kernel_size == (3, 3)
    up = head.up1
    assert isinstance(up.up, nn.ConvTranspose2d) and (up.up.in_channels, up.up.out_channels) == (128, 96)
    assert [type(m) for m in up.conv] == [nn.Conv2d, nn.GroupNorm, nn.ReLU] * 2
    assert [m.num_groups for m in up.conv if isinstance(m, nn.GroupNorm)] == [4, 4]
    assert [m.num_groups for m in head.up2.conv if isinstance(m, nn.GroupNorm)] == [2, 2]
    assert {m.num_groups for m in head.aspp.modules() if isinstance(m, nn.GroupNorm)} == {8}


def test_aspp_adds_its_projection_to_its_input():
    head = tiny_head(2).eval()
    x = torch.randn(3, 32, 6, 6)
    with torch.no_grad():
        branches = [b(x) for b in head.aspp.branches] + [head.aspp.pool(x).expand(-1, -1, 6, 6)]
        want = x + head.aspp.project(torch.cat(branches, 1))
        torch.testing.assert_close(head.aspp(x), want)


def test_semantic_layer_by_hand():
    """Pool 4x4, put the projected query beside each pooled vector, one pre-norm layer across the classes,
    keep the visual channels, upsample (align_corners) and add."""
    torch.manual_seed(1)
    head = tiny_head(3).eval()
    b, k = 2, 3
    x, text = torch.randn(b * k, 32, 8, 8), torch.randn(k, 16)
    layer = head.layers[0]
    with torch.no_grad():
        pooled = F.avg_pool2d(x, 4)  # (b*k, 32, 2, 2)
        tokens = pooled.view(b, k, 32, 2, 2).permute(0, 3, 4, 1, 2).reshape(b * 4, k, 32)
        tokens = torch.cat([tokens, text.expand(b * 4, k, 16)], dim=-1)
        out = layer.encoder(tokens)[..., :32].reshape(b, 2, 2, k, 32).permute(0, 3, 4, 1, 2)
        up = F.interpolate(out.reshape(b * k, 32, 2, 2), size=(8, 8), mode="bilinear", align_corners=True)
        torch.testing.assert_close(layer(x, text, b, k), x + up)


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("grid", [(5, 7), (3, 3), (9, 6)])
def test_head_shapes_and_gradients(k, grid):
    head = tiny_head(k).train()
    b, (h, w) = 2, grid
    last = torch.randn(b, 24, h, w, requires_grad=True)
    skips = [torch.randn(b, 40, h, w, requires_grad=True), torch.randn(b, 48, h, w, requires_grad=True)]
    queries = torch.randn(k, 24, requires_grad=True)
    out = head(last, skips, queries)
    assert out.shape == (b, k, 4 * h, 4 * w)
    assert head(last, skips, queries, size=(37, 41)).shape == (b, k, 37, 41)
    out.square().mean().backward()
    for t in (queries, *skips, last):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_head_cost_is_cosine_similarity():
    head = tiny_head(3)
    last, queries = torch.randn(2, 24, 4, 5), torch.randn(3, 24)
    want = F.cosine_similarity(last[:, None], queries[None, :, :, None, None], dim=2)
    torch.testing.assert_close(head.cost(last, queries), want)


def test_head_is_class_equivariant_and_images_are_independent():
    """Permuting the queries permutes the class maps; an image's logits do not depend on the others in the
    batch (the K class maps of each image and its skips stay paired)."""
    head = tiny_head(4).eval()
    last = torch.randn(2, 24, 6, 5)
    skips = [torch.randn(2, 40, 6, 5), torch.randn(2, 48, 6, 5)]
    queries = torch.randn(4, 24)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = head(last, skips, queries)
        torch.testing.assert_close(head(last, skips, queries[perm]), out[:, perm], atol=1e-5, rtol=1e-4)
        alone = head(last[1:], [s[1:] for s in skips], queries)
    torch.testing.assert_close(alone, out[1:], atol=1e-5, rtol=1e-4)


# --- students --------------------------------------------------------------------------------------------


def clip_student(k: int = 5, **kwargs) -> Co2SStudent:
    torch.manual_seed(0)
    queries = F.normalize(torch.randn(k, 32), dim=1)
    return Co2SStudent("clip", k, queries=queries, **kwargs, **CLIP_TINY)


def dino_student(k: int = 5, **kwargs) -> Co2SStudent:
    torch.manual_seed(0)
    return Co2SStudent("dinov3", k, **kwargs, **DINO_TINY)


def test_default_blocks_follow_the_depth():
    assert default_clip_skips(12) == (0, 4) and default_dinov3_taps(12) == (2, 7, 11)
    assert clip_student().skip_blocks == [0, 1]
    assert dino_student().taps == [0, 2, 3]


@pytest.mark.parametrize(
    ("make", "trainable", "frozen"),
    [
        (
            clip_student,
            r"transformer\.resblocks\.(\d+)\.attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)$",
            [
                "conv1.weight",
                "class_embedding",
                "positional_embedding",
                "ln_pre.weight",
                "ln_post.bias",
                "proj",
            ]
            + [
                f"transformer.resblocks.{i}.{n}" for i in range(4) for n in ("ln_1.weight", "mlp.c_fc.weight")
            ],
        ),
        (
            dino_student,
            r"blocks\.(\d+)\.attn\.((qkv|proj)\.(weight|bias)|q_bias|v_bias)$",
            ["patch_embed.proj.weight", "cls_token", "reg_token", "norm.weight"]
            + [f"blocks.{i}.{n}" for i in range(4) for n in ("norm1.weight", "gamma_1", "mlp.fc1.weight")],
        ),
    ],
)
def test_only_attention_parameters_train(make, trainable, frozen):
    model = make()
    params = dict(model.backbone.model.named_parameters())
    on = [n for n, p in params.items() if p.requires_grad]
    assert on and all(re.search(trainable, n) for n in on)
    assert {int(re.search(trainable, n).group(1)) for n in on} == {0, 1, 2, 3}  # every block
    assert all(not params[n].requires_grad for n in frozen)
    assert all(p.requires_grad for p in model.head.parameters())


def test_dinov3_student_trains_the_released_q_and_v_biases():
    """The released DINOv3 (timm's _qkvb layout, the default student) has q and v biases beside the qkv
    projection; they are attention parameters and learn with it."""
    model = dino_student()
    assert model.backbone.preset == "dinov3_b_qkvb"
    params = dict(model.backbone.model.named_parameters())
    for i in range(4):
        assert (
            params[f"blocks.{i}.attn.q_bias"].requires_grad
            and params[f"blocks.{i}.attn.v_bias"].requires_grad
        )
    assert params["blocks.0.attn.qkv.weight"].requires_grad and "blocks.0.attn.k_bias" not in params


def test_queries():
    clip = clip_student()
    assert "queries" in clip.state_dict() and "queries" not in dict(clip.named_parameters())
    assert not clip.queries.requires_grad
    dino = dino_student(k=20)
    assert isinstance(dino.queries, nn.Parameter) and dino.queries.shape == (20, 96)
    assert 0.017 < dino.queries.std().item() < 0.023 and abs(dino.queries.mean().item()) < 0.003
    with pytest.raises(ValueError, match=r"\(5, 32\)"):
        Co2SStudent("clip", 5, queries=torch.randn(5, 96), **CLIP_TINY)


@pytest.mark.parametrize("make", [clip_student, dino_student])
def test_backward_reaches_every_trainable_parameter_and_groups_cover_them(make):
    model = make(k=3).train()
    logits = model(torch.randn(2, 3, 64, 64))
    F.cross_entropy(logits, torch.randint(0, 3, (2, 64, 64))).backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    groups = model.param_groups()
    names = {g["name"] for g in groups}
    assert {"backbone", "head"} <= names
    assert ("queries" in names) == (model.kind == "dinov3")
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    # The heads' norms are trained and decayed like every other parameter (the release's optimizer).
    norms = {
        id(p)
        for m in model.head.modules()
        if isinstance(m, nn.GroupNorm | nn.LayerNorm)
        for p in m.parameters()
    }
    assert norms and norms <= set(ids)
    assert all(g.get("weight_decay") is None for g in groups)


@pytest.mark.parametrize("make", [clip_student, dino_student])
def test_feature_dropout_and_bands(make):
    model = make().train()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        plain = model(x)
        torch.testing.assert_close(model(x), plain)  # deterministic without the perturbation
        torch.manual_seed(1)
        dropped = model(x, feature_dropout=True)
        assert dropped.shape == plain.shape == (1, 5, 64, 48)
        assert not torch.allclose(dropped, plain)
        torch.testing.assert_close(model.decode(model.features(x), x.shape[-2:]), plain)
        # Padded inputs stay aligned: 60x44 is computed as the 64x48 input's top-left corner.
        padded = F.pad(x[..., :60, :44], (0, 4, 0, 4))
        torch.testing.assert_close(model(x[..., :60, :44]), model(padded)[..., :60, :44])
    four = make(in_chans=4, band_map=[0, 1, 2, None]).eval()
    with torch.no_grad():
        assert four(torch.randn(1, 4, 64, 64)).shape == (1, 5, 64, 64)
    with pytest.raises(ValueError, match="4 bands"):
        four(torch.randn(1, 3, 64, 64))


def test_student_backbone_matches_build_backbone():
    """The student builds its backbone through build_backbone and keeps its weights (no re-init)."""
    torch.manual_seed(0)
    ref = build_backbone("dinov3_b_qkvb", taps=[0, 2, 3], **DINO_TINY)
    model = dino_student()
    for (n, a), b in zip(ref.state_dict().items(), model.backbone.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
