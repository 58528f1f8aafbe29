"""Helpers shared by the model tests."""

from __future__ import annotations

import torch
from safetensors.torch import save_file


def save_weights(state: dict[str, torch.Tensor], path) -> str:
    """Save a state dict as .safetensors (by suffix) or with torch.save; returns the path as a string."""
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return str(path)
