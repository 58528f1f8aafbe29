"""The network as it is exported: raw band values in, class probabilities out.

Everything a user of the ONNX file would otherwise have to reproduce sits inside the graph: the checkpoint's
per-band stretch onto [0, 1] (percentile or fixed scaling, clipped), the model's input standardization and the
softmax. Invalid pixels are not the graph's business: rsseg's pipeline marks them around it, as for a .pt.
"""

from __future__ import annotations

import contextlib
import functools
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
def traceable() -> Iterator[None]:
    """Settings under which rsseg's networks trace into plain ONNX ops:
    - position embeddings resized (timm's resample_abs_pos_embed: antialiased bicubic, which has no ONNX
      opset 17 op) are computed outside the trace, so the graph holds the resized table as a constant. It
      depends on the weights and the window only, so this is exact for the fixed window exported (and the
      reason a ViT's window cannot be dynamic);
    - nn.TransformerEncoderLayer's fused inference kernel (aten::_transformer_encoder_layer_fwd, no ONNX
      op) is switched off, so the layer traces as its ordinary attention and MLP."""
    patched = []
    for module in list(sys.modules.values()):
        fn = getattr(module, "resample_abs_pos_embed", None)
        if callable(fn) and getattr(fn, "__module__", "").startswith("timm"):
            patched.append((module, fn))
            module.resample_abs_pos_embed = _untraced(fn)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for module, fn in patched:
            module.resample_abs_pos_embed = fn


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
