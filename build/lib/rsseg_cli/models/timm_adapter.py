"""timm ViTs for `Backbone`: building one with its weights, fitting it to other bands, its tapped features.

timm is imported inside the functions, so importing the models package stays cheap; being inside the
package, this module only runs after `rsseg_cli.models` has made torchvision importable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rsseg_cli.models.band_adapter import adapt_patch_conv
from rsseg_cli.models.presets import BackbonePreset
from rsseg_cli.models.weights import LOAD_ERRORS, Weights, hub_error, load_error, resolve_weights


def create_timm(preset: BackbonePreset, weights: Weights, overrides: dict[str, Any]) -> nn.Module:
    """A preset's timm model with its weights ('none', 'hub', a file or a folder) and 3 input channels."""
    import timm

    kind, path = resolve_weights(weights, preset)
    # num_classes=0: no classifier (it would be an unused parameter); dynamic_img_size: any input size.
    kwargs: dict[str, Any] = dict(num_classes=0, dynamic_img_size=True, **overrides)
    name = preset.timm_name
    if kind == "none":
        return timm.create_model(name, pretrained=False, **kwargs)
    if kind == "hub":
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except LOAD_ERRORS as exc:
            raise hub_error(preset, f"model.safetensors of https://huggingface.co/timm/{name}", exc) from exc
    # A pretrained_cfg file overlay (not checkpoint_path=) runs timm's checkpoint filter, which converts
    # Meta's original DINOv2 / DINOv3 and OpenAI's CLIP formats; a folder is read as timm's local-dir.
    overlay = dict(file=str(path)) if kind == "file" else dict(file=str(path), source="local-dir")
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except LOAD_ERRORS as exc:
        raise load_error(preset, path, exc) from exc  # type: ignore[arg-type]


def adapt_timm_bands(model: nn.Module, band_map: Sequence[int | None]) -> None:
    """Swap the patch embedding for one taking len(band_map) bands (see `adapt_patch_conv`), in place."""
    in_chans = len(band_map)
    model.patch_embed.proj = adapt_patch_conv(model.patch_embed.proj, band_map)
    model.in_chans = in_chans
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and "input_size" in cfg:
        cfg["input_size"] = (in_chans, *cfg["input_size"][1:])


def timm_geometry(model: nn.Module) -> tuple[int, int, int]:
    """Patch size, width and depth of the built model (a shrunk or timm: model differs from its preset)."""
    return int(model.patch_embed.patch_size[0]), int(model.embed_dim), len(model.blocks)


def timm_intermediates(
    model: nn.Module, x: torch.Tensor, blocks: list[int], norm: bool
) -> list[torch.Tensor]:
    """The patch tokens after each of `blocks` (sorted), as NCHW maps; `norm` applies the final norm."""
    return model.forward_intermediates(
        x,
        indices=blocks,
        norm=norm,
        stop_early=True,
        output_fmt="NCHW",
        intermediates_only=True,
    )
