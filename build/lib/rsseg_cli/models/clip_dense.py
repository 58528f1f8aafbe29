"""Dense CLIP features for Co2S's CLIP student: skip maps from early blocks and a MaskCLIP-style dense embedding.

CLIP's last attention layer pools the image into its class token, so its patch tokens carry little
localized meaning. MaskCLIP (Zhou et al., ECCV 2022) showed that replacing that attention output by its value
path (each token attends only to itself) and then applying the rest of the block, the final LayerNorm and the
visual projection gives per-patch embeddings in the joint image-text space, comparable with text embeddings.
Co2S compares this map with its frozen text class queries. Its skips (blocks 0 and 4) are the same value path
taken at those blocks, without the final LayerNorm (methods.md, Co2S "Features"); the ordinary block outputs,
with attention, are what flows on through the transformer, so the value path only branches off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from rsseg_cli.models.open_clip_adapter import open_clip_embed


def _embed(visual: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Embedded tokens (B, 1 + gh*gw, width) of x zero-padded right and bottom to a multiple of the patch
    size, like every Backbone input."""
    ph, pw = visual.patch_size
    h, w = x.shape[-2:]
    if h % ph or w % pw:
        x = F.pad(x, (0, -w % pw, 0, -h % ph))
    return open_clip_embed(visual, x)


def _value_path(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """out_proj(V(x)): the attention output when every token attends only to itself (MaskCLIP)."""
    width = attn.embed_dim
    # in_proj_weight is None when kdim/vdim differ from embed_dim (separate q/k/v projections).
    w_v = attn.in_proj_weight[2 * width :] if attn.in_proj_weight is not None else attn.v_proj_weight
    b_v = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    return attn.out_proj(F.linear(x, w_v, b_v))


def _value_block(blk: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """Block `blk` on tokens t (N, L, D) with its attention replaced by the value path:
    h = t + ls_1(out_proj(V(ln_1(t)))), then h + ls_2(mlp(ln_2(h))). No final LayerNorm.
    Per-token operations only, so the (N, L, D) layout is fine whatever the transformer's own layout."""
    ls_1 = getattr(blk, "ls_1", nn.Identity())
    ls_2 = getattr(blk, "ls_2", nn.Identity())
    h = t + ls_1(_value_path(blk.attn, blk.ln_1(t)))
    return h + ls_2(blk.mlp(blk.ln_2(h)))


def _to_map(tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(B, 1 + gh*gw, C) tokens -> (B, C, gh, gw), class token dropped."""
    return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)


def clip_features(
    visual: nn.Module, x: torch.Tensor, skip_blocks: Sequence[int] = (0, 4), skip_path: str = "value"
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Skip maps and the MaskCLIP dense embedding of an open_clip `VisionTransformer`.

    Returns (skips, dense): one (B, width, gh, gw) map per entry of `skip_blocks` and the (B, out_dim, gh, gw)
    dense embedding of the last resblock, L2-normalized over channels. With t_i the tokens entering block i,
    the skip of block i is its value-path output `_value_block(block_i, t_i)` (no ln_post, class token
    dropped), while t_{i+1} = block_i(t_i) is the ordinary output, with attention. The dense embedding is
    `_value_block` of the last block, then ln_post and `@ visual.proj`.
    gh, gw = ceil(H / patch), ceil(W / patch) (the input is padded to a multiple of the patch size).
    """
    blocks = visual.transformer.resblocks
    depth = len(blocks)
    wanted = [int(i) % depth if -depth <= int(i) < depth else int(i) for i in skip_blocks]
    if any(not 0 <= i < depth for i in wanted):
        raise ValueError(f"skip blocks {list(skip_blocks)} must lie in 0..{depth - 1}")
    for i in {*wanted, depth - 1}:
        if not isinstance(getattr(blocks[i], "attn", None), nn.MultiheadAttention):
            raise NotImplementedError(
                "the value path of CLIP blocks needs nn.MultiheadAttention, "
                f"got {type(blocks[i]).__name__} at block {i}"
            )
    tokens, gh, gw = _embed(visual, x)
    batch_first = getattr(visual.transformer, "batch_first", True)
    checkpointing = getattr(visual.transformer, "grad_checkpointing", False) and torch.is_grad_enabled()

    def run(
        fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], blk: nn.Module, t: torch.Tensor
    ) -> torch.Tensor:
        return checkpoint(fn, blk, t, use_reentrant=False) if checkpointing else fn(blk, t)

    def ordinary(blk: nn.Module, t: torch.Tensor) -> torch.Tensor:
        # Blocks take (L, N, D) when the transformer is not batch-first; t stays (N, L, D) outside.
        t = t if batch_first else t.transpose(0, 1)
        t = blk(t)
        return t if batch_first else t.transpose(0, 1)

    # skip_path "ln_post" is rsseg 0.1.0's reading (ln_post of the ordinary block outputs): kept only so that
    # checkpoints trained with it predict as they did (the 0.1.0 upgrader sets it).
    legacy = skip_path == "ln_post"
    taken: dict[int, torch.Tensor] = {}
    for i, blk in enumerate(blocks[:-1]):
        if i in wanted and not legacy:
            taken[i] = run(_value_block, blk, tokens)  # a branch off the stream, which goes on unchanged
        tokens = run(ordinary, blk, tokens)
        if i in wanted and legacy:
            taken[i] = visual.ln_post(tokens)
    last = blocks[-1]
    h = run(_value_block, last, tokens)
    if depth - 1 in wanted:
        taken[depth - 1] = visual.ln_post(run(ordinary, last, tokens)) if legacy else h
    skips = [_to_map(taken[i], gh, gw) for i in wanted]

    h = visual.ln_post(h)
    if visual.proj is not None:
        h = h @ visual.proj.to(h.dtype)
    dense = F.normalize(_to_map(h, gh, gw), dim=1)
    return skips, dense
