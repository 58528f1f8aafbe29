"""open_clip CLIP models for `Backbone` and the CLIP-based methods: building one with its weights, fitting its
image tower to other bands, embedding inputs of any size, and its tapped features.

open_clip (and timm) are imported inside the functions, so importing the models package stays cheap; being
inside the package, this module only runs after `rsseg_cli.models` has made torchvision importable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.band_adapter import adapt_patch_conv
from rsseg_cli.models.presets import BackbonePreset, get_preset
from rsseg_cli.models.weights import LOAD_ERRORS, LOCAL_DIR, Weights, hub_error, load_error, resolve_weights


@contextmanager
def _open_clip_logging() -> Iterator[None]:
    """open_clip logs through `logging.warning()` & co., which run `logging.basicConfig()` when the root logger
    has no handler (installing a stderr handler behind the CLI's back); a NullHandler prevents that. Its
    "initialized randomly" warning is dropped: weights='none' asks for exactly that."""
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        if guard is not None:
            root.removeHandler(guard)


_OPEN_CLIP_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)


def create_open_clip(preset: str | BackbonePreset, weights: Weights = "none", **overrides: Any) -> nn.Module:
    """The full open_clip CLIP model (image and text towers) of a preset, e.g. for text class queries.

    `overrides` go to `open_clip.create_model(**model_kwargs)`; `vision_cfg` / `text_cfg` dicts are merged
    into the preset's config first, so a partial dict suffices (see `tiny_overrides`).
    """
    import open_clip

    p = get_preset(preset) if isinstance(preset, str) else preset
    if p.library != "open_clip":
        raise ValueError(f"{p.name} is a {p.library} backbone, not an open_clip one")
    kind, path = resolve_weights(weights, p)
    base = open_clip.get_model_config(p.model)
    kwargs = dict(overrides)
    for key in ("vision_cfg", "text_cfg"):
        if key in kwargs:
            kwargs[key] = {**base[key], **kwargs[key]}
    if kind == "none":
        with _open_clip_logging():
            return open_clip.create_model(p.model, pretrained=None, **kwargs)
    if kind == "hub":
        if not p.tag:
            raise UserError(
                f"Backbone {p.name} names no pretrained tag to download; use open_clip:{p.model}:TAG "
                f"(open_clip.list_pretrained() lists them) or a local file."
            )
        try:
            with _open_clip_logging():
                return open_clip.create_model(p.model, pretrained=p.tag, **kwargs)
        except LOAD_ERRORS as exc:
            cfg = open_clip.get_pretrained_cfg(p.model, p.tag)
            hub = cfg.get("hf_hub", "").rstrip("/")
            where = (
                f"open_clip_model.safetensors or open_clip_pytorch_model.bin of https://huggingface.co/{hub}"
                if hub
                else cfg.get("url", "")
            )
            raise hub_error(p, where, exc) from exc
    name, pretrained = p.model, str(path)
    if kind == "dir":
        if (path / "open_clip_config.json").is_file():  # type: ignore[operator]
            name, pretrained = f"{LOCAL_DIR}{path}", None  # config and weights both from the folder
        else:
            found = [path / f for f in _OPEN_CLIP_FILES if (path / f).is_file()]  # type: ignore[operator]
            if not found:
                raise UserError(
                    f"Folder {path} holds no open_clip weights for backbone {p.name}: expected one of "
                    f"{', '.join(_OPEN_CLIP_FILES)} (or open_clip_config.json with its weights)."
                )
            pretrained = str(found[0])
    try:
        with _open_clip_logging():
            return open_clip.create_model(name, pretrained=pretrained, **kwargs)
    except LOAD_ERRORS as exc:
        raise load_error(p, path, exc) from exc  # type: ignore[arg-type]


def create_open_clip_visual(preset: BackbonePreset, weights: Weights, overrides: dict[str, Any]) -> nn.Module:
    """A preset's image tower (open_clip `VisionTransformer`) with its weights and 3 input channels."""
    visual = create_open_clip(preset, weights, **overrides).visual
    # The projection to the joint image-text space is not on the feature path; frozen, it cannot show
    # up as a parameter without gradient (which DDP would reject).
    visual.proj.requires_grad_(False)
    return visual


def adapt_open_clip_bands(visual: nn.Module, band_map: Sequence[int | None]) -> None:
    """Swap the patch embedding for one taking len(band_map) bands (see `adapt_patch_conv`), in place."""
    visual.conv1 = adapt_patch_conv(visual.conv1, band_map)


def open_clip_geometry(visual: nn.Module) -> tuple[int, int, int]:
    """Patch size, width and depth of the built image tower (a shrunk one differs from its preset)."""
    return int(visual.patch_size[0]), int(visual.transformer.width), len(visual.transformer.resblocks)


def open_clip_embed(visual: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Patch + class + positional embedding and ln_pre of an open_clip ViT, as (B, 1 + gh*gw, width), for
    any input size that is a multiple of the patch size.

    open_clip's own visual.forward_intermediates adds its positional embedding unresized, so it only runs at
    the built image size; here the embedding is resampled to the actual grid. patch_dropout is left out:
    dense features need every token (and it is an identity for CLIP).
    """
    from timm.layers import resample_abs_pos_embed

    x = visual.conv1(x)
    b, _, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(b, -1, -1)
    x = torch.cat([cls, x], dim=1)
    pos = visual.positional_embedding
    if (gh, gw) != tuple(visual.grid_size):
        pos = resample_abs_pos_embed(
            pos.unsqueeze(0), new_size=[gh, gw], old_size=list(visual.grid_size), num_prefix_tokens=1
        ).squeeze(0)
    return visual.ln_pre(x + pos.to(x.dtype)), gh, gw


def open_clip_intermediates(
    visual: nn.Module, x: torch.Tensor, blocks: list[int], norm: bool
) -> list[torch.Tensor]:
    """The patch tokens after each of `blocks` (sorted), as NCHW maps; `norm` applies ln_post."""
    x, gh, gw = open_clip_embed(visual, x)
    b = x.shape[0]
    _, inter = visual.transformer.forward_intermediates(x, indices=blocks, stop_early=True)
    # ln_post is CLIP's final LayerNorm (before the projection); the class token is dropped.
    post = visual.ln_post if norm else nn.Identity()
    return [post(t[:, 1:]).transpose(1, 2).reshape(b, -1, gh, gw) for t in inter]
