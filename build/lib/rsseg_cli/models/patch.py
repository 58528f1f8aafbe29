"""The patch size of a model's backbone: windows and exported sizes must be multiples of it."""

from __future__ import annotations

from torch import nn


def patch_size(model: nn.Module) -> int | None:
    """The backbone's patch size (pixels per token side), when the architecture has one."""
    for owner in (model, getattr(model, "backbone", None)):
        p = getattr(owner, "patch_size", None)
        if isinstance(p, (tuple, list)) and p:
            p = p[0]
        if isinstance(p, int):
            return p
    return None
