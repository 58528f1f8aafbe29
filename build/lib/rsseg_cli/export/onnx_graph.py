"""The network as it is exported: raw band values in, class probabilities out.

Everything a user of the ONNX file would otherwise have to reproduce sits inside the graph: the checkpoint's
per-band stretch onto [0, 1] (percentile or fixed scaling, clipped), the model's input standardization and the
softmax. Invalid pixels are not the graph's business: rsseg's pipeline marks them around it, as for a .pt.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Iterator

import torch
from torch import nn

from rsseg_cli.data.normalize import Normalization


class RawToProbabilities(nn.Module):
    """(N, C, H, W) raw values of the training dtype (as float32), times `input_scale` -> (N, K, H, W)
    probabilities. `input_scale` is 1 for raw values; 255 for Deepness, which divides every layer by 255
    before feeding the model (so the graph multiplies it back and sees the raw values again)."""

    def __init__(self, model: nn.Module, normalization: Normalization, input_scale: float = 1.0):
        super().__init__()
        self.model = model
        self.input_scale = float(input_scale)

        def band(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)

        low, high = band(normalization.low), band(normalization.high)
        # Folded into one multiply-add per step: the same arithmetic as Normalization.model_input.
        self.register_buffer("low", low)
        self.register_buffer("inv_range", 1.0 / (high - low))
        self.register_buffer("mean", band(normalization.mean))
        self.register_buffer("inv_std", 1.0 / band(normalization.std))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw * self.input_scale if self.input_scale != 1.0 else raw
        unit = ((x - self.low) * self.inv_range).clamp(0.0, 1.0)
        logits = self.model((unit - self.mean) * self.inv_std)
        return logits.float().softmax(dim=1)


@contextlib.contextmanager
def traceable(dynamic: bool = False) -> Iterator[None]:
    """Settings under which rsseg's networks trace into plain ONNX ops:
    - position embeddings resized by timm's resample_abs_pos_embed (also open_clip's, through
      models.open_clip_adapter): antialiased bicubic, which has no ONNX opset 17 op. For a fixed window
      they are computed outside the trace, so the graph holds the resized table as a constant (exact: it
      depends on the weights and the window only). For a `dynamic` window the same resize is traced as two
      small matrix products whose weights the graph computes from the input size (`aa_bicubic_weights`);
    - nn.TransformerEncoderLayer's fused inference kernel (aten::_transformer_encoder_layer_fwd, no ONNX
      op) is switched off, so the layer traces as its ordinary attention and MLP."""
    patched = []
    for module in list(sys.modules.values()):
        fn = getattr(module, "resample_abs_pos_embed", None)
        if callable(fn) and getattr(fn, "__module__", "").startswith("timm"):
            patched.append((module, fn))
            module.resample_abs_pos_embed = _traced_resample(fn) if dynamic else _untraced(fn)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for module, fn in patched:
            module.resample_abs_pos_embed = fn


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """The cubic convolution kernel of torch's antialiased bicubic (a = -0.5, as PIL; plain bicubic: -0.75)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def aa_bicubic_weights(old: int, new: torch.Tensor | int) -> torch.Tensor:
    """(new, old) matrix W with W @ v = F.interpolate(v, new, mode="bicubic", antialias=True) along one axis:
    torch's (PIL's) separable filter, widened by old / new when shrinking, cut at the borders and
    renormalized. `new` may be a traced size, so the exported graph computes W from the input's size."""
    new_f = torch.as_tensor(new).to(torch.float32)
    scale = old / new_f
    widen = torch.clamp(new_f / old, max=1.0)  # the kernel stretches by old / new when shrinking only
    center = scale * (torch.arange(new).to(torch.float32) + 0.5)
    source = torch.arange(old, dtype=torch.float32) + 0.5
    w = _cubic((source[None, :] - center[:, None]) * widen)
    return w / w.sum(dim=1, keepdim=True)


def _traced_resample(fn):
    """resample_abs_pos_embed (same arguments) for a dynamic window: the resize is traced, not a constant."""

    @functools.wraps(fn)
    def resample(posemb, new_size, old_size=None, num_prefix_tokens=1, interpolation="bicubic",
                 antialias=True, verbose=False, align_corners=None):  # fmt: skip
        if interpolation != "bicubic" or not antialias or align_corners:
            return fn(posemb, new_size, old_size, num_prefix_tokens, interpolation, antialias, verbose,
                      align_corners)  # fmt: skip
        if old_size is None:  # square, as timm assumes
            side = int(math.sqrt(posemb.shape[1] - num_prefix_tokens))
            old_size = (side, side)
        oh, ow = int(old_size[0]), int(old_size[1])
        prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
        dim = grid.shape[-1]
        grid = grid.float().reshape(oh, ow, dim)
        rows, cols = aa_bicubic_weights(oh, new_size[0]), aa_bicubic_weights(ow, new_size[1])
        # (oh, ow, dim) -> (oh, new_w, dim) -> (new_w, new_h, dim) -> (new_h, new_w, dim)
        grid = torch.matmul(rows, torch.matmul(cols, grid).transpose(0, 1)).transpose(0, 1)
        grid = grid.reshape(1, -1, dim).to(posemb.dtype)
        return torch.cat([prefix, grid], dim=1) if num_prefix_tokens else grid

    return resample


def _untraced(fn):
    @functools.wraps(fn)
    def constant(*args, **kwargs):
        state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)  # private, but the tracer's own way to leave values out of a trace
        try:
            return fn(*args, **kwargs)
        finally:
            torch._C._set_tracing_state(state)

    return constant
