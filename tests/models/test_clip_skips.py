"""Co2S's CLIP skip features (methods.md, Co2S "Features"), written out by hand from a tiny open_clip ViT.

For block i with input x the skip is v = x + out_proj(V(ln_1(x))), then v + mlp(ln_2(v)), without ln_post;
the ordinary block output (with attention) is what block i + 1 receives. Everything below is computed from
the weights with plain tensor ops (LayerNorm, the V slice of in_proj, QuickGELU, multi-head attention), so
that neither open_clip's block forward nor rsseg's helpers stand in for the expected values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.models import create_open_clip, tiny_overrides
from rsseg_cli.models.clip_dense import clip_features

WIDTH, HEADS, JOINT = 96, 3, 32  # tiny_overrides("clip_b16"): depth 4, width 96, head width 32, patch 8


def tiny_visual(seed: int = 0) -> nn.Module:
    """A tiny CLIP image tower whose every parameter is offset randomly: LayerNorms start as identities and
    biases at zero, which would hide a missing or misplaced norm or bias. Layer scales on the skip blocks
    (identities in CLIP) show whether they are applied."""
    from open_clip.transformer import LayerScale

    torch.manual_seed(seed)
    visual = create_open_clip("clip_b16", weights="none", **tiny_overrides("clip_b16")).visual.eval()
    blocks = visual.transformer.resblocks
    blocks[0].ls_1, blocks[0].ls_2 = LayerScale(WIDTH, 0.7), LayerScale(WIDTH, 1.5)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in visual.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return visual


def layer_norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def gamma(ls: nn.Module) -> torch.Tensor | float:
    return ls.gamma if hasattr(ls, "gamma") else 1.0


def mlp(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = x @ blk.mlp.c_fc.weight.T + blk.mlp.c_fc.bias
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU, OpenAI CLIP's activation
    return h @ blk.mlp.c_proj.weight.T + blk.mlp.c_proj.bias


def value_block(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The skip: the attention replaced by out_proj(V(.)), each token attending only to itself."""
    w, b = blk.attn.in_proj_weight, blk.attn.in_proj_bias
    v = layer_norm(x, blk.ln_1) @ w[2 * WIDTH :].T + b[2 * WIDTH :]
    v = x + gamma(blk.ls_1) * (v @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias)
    return v + gamma(blk.ls_2) * mlp(blk, layer_norm(v, blk.ln_2))


def ordinary_block(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block as CLIP runs it: multi-head softmax attention over all tokens, then the MLP."""
    n, length, _ = x.shape
    w, b = blk.attn.in_proj_weight, blk.attn.in_proj_bias
    q, k, v = (layer_norm(x, blk.ln_1) @ w.T + b).split(WIDTH, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(n, length, HEADS, WIDTH // HEADS).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(v)
    att = (q @ k.transpose(-1, -2) / (WIDTH // HEADS) ** 0.5).softmax(-1) @ v
    att = att.transpose(1, 2).reshape(n, length, WIDTH)
    h = x + gamma(blk.ls_1) * (att @ blk.attn.out_proj.weight.T + blk.attn.out_proj.bias)
    return h + gamma(blk.ls_2) * mlp(blk, layer_norm(h, blk.ln_2))


def embed(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class + patch tokens at the built size (64 px, 8x8 grid, no positional resampling), then ln_pre."""
    tok = F.conv2d(x, visual.conv1.weight, stride=8).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    return layer_norm(torch.cat([cls, tok], 1) + visual.positional_embedding, visual.ln_pre)


def to_map(tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, 8, 8)


def test_skips_are_value_path_outputs_without_ln_post_while_ordinary_outputs_flow_on():
    visual = tiny_visual()
    blocks = visual.transformer.resblocks
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        skips, dense = clip_features(visual, x, (0, 1))
        t0 = embed(visual, x)
        t1 = ordinary_block(blocks[0], t0)
        t2 = ordinary_block(blocks[1], t1)
        t3 = ordinary_block(blocks[2], t2)
        want = [to_map(value_block(blocks[0], t0)), to_map(value_block(blocks[1], t1))]
        last = layer_norm(value_block(blocks[3], t3), visual.ln_post) @ visual.proj
        want_dense = F.normalize(to_map(last), dim=1)
        # What a wrong implementation would give instead.
        plain = [to_map(t) for t in (t1, t2)]
        with_ln_post = [to_map(layer_norm(t, visual.ln_post)) for t in (t1, t2)]
        value_fed_on = to_map(value_block(blocks[1], value_block(blocks[0], t0)))
        # The hand attention is open_clip's: the ordinary stream above is the one the model computes.
        torch.testing.assert_close(t1, blocks[0](t0), rtol=1e-4, atol=1e-5)
    assert [s.shape for s in skips] == [torch.Size([2, WIDTH, 8, 8])] * 2
    for got, expected, normed, ordinary in zip(skips, want, with_ln_post, plain):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(got, normed, atol=1e-2)
        assert not torch.allclose(got, ordinary, atol=1e-2)
    assert not torch.allclose(skips[1], value_fed_on, atol=1e-2)
    assert dense.shape == (2, JOINT, 8, 8)
    torch.testing.assert_close(dense, want_dense, rtol=1e-4, atol=1e-5)


def test_a_skip_at_the_last_block_is_its_value_path_before_ln_post():
    visual = tiny_visual(seed=3)
    blocks = visual.transformer.resblocks
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        skips, dense = clip_features(visual, x, (0, 3))
        t = embed(visual, x)
        first = value_block(blocks[0], t)
        for blk in blocks[:-1]:
            t = ordinary_block(blk, t)
        last = value_block(blocks[3], t)
    torch.testing.assert_close(skips[0], to_map(first), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(skips[1], to_map(last), rtol=1e-4, atol=1e-5)
    expected_dense = F.normalize(to_map(layer_norm(last, visual.ln_post) @ visual.proj), dim=1)
    torch.testing.assert_close(dense, expected_dense, rtol=1e-4, atol=1e-5)


def test_skip_gradients_reach_the_value_projection_of_their_block():
    """The skip of block 0 depends on its V slice and out_proj (attention parameters, which Co2S trains)."""
    visual = tiny_visual()
    x = torch.randn(1, 3, 64, 64)
    skips, _ = clip_features(visual, x, (0, 1))
    skips[0].sum().backward()
    attn = visual.transformer.resblocks[0].attn
    assert attn.in_proj_weight.grad[2 * WIDTH :].abs().sum() > 0
    # Q and K do not enter block 0's value path, and skip 0 sees no later block.
    assert attn.in_proj_weight.grad[: 2 * WIDTH].abs().sum() == 0
    assert attn.out_proj.weight.grad.abs().sum() > 0
