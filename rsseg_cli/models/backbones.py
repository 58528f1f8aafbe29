"""Vision foundation-model backbones (DINOv2, DINOv3, CLIP) as multi-level feature extractors.

A `Backbone` wraps a timm or open_clip ViT and returns, for each tapped block, the LayerNorm'd patch tokens as
an NCHW map at stride `patch_size` (class and register tokens dropped), as UniMatch V2 feeds its DPT head.
Weights come from the Hugging Face hub, a local file or folder (offline clusters), or random init (tests,
demo). Inputs with other than 3 bands go through a band adapter that rebuilds the patch-embedding filters
from the pretrained RGB ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from rsseg_cli.errors import UserError

log = logging.getLogger("rsseg")

Library = Literal["timm", "open_clip"]
Weights = str | os.PathLike | None

_LOCAL_DIR = "local-dir:"
_HOW_TO_PASS_LOCAL = (
    "pass a local copy instead: --set model.weights=/path/to/weights.safetensors (a .safetensors, .pth or "
    ".bin file), or a folder with --set model.weights=local-dir:/path/to/folder"
)


@dataclass(frozen=True)
class BackbonePreset:
    """One named backbone: where it comes from and the blocks UniMatch V2-style heads tap."""

    name: str
    library: Library
    model: str  # timm architecture, or open_clip model config name
    tag: str  # pretrained tag: timm `model.tag`, open_clip `pretrained=tag`
    patch_size: int
    embed_dim: int
    depth: int
    taps: tuple[int, ...]
    size: Literal["s", "b", "l", "g"] | None  # picks the default DPT head (None: from the built width)
    license: str

    @property
    def timm_name(self) -> str:
        return f"{self.model}.{self.tag}" if self.tag else self.model

    @property
    def hub_name(self) -> str:
        if self.library == "timm":
            return self.timm_name
        return f"open_clip {self.model} (pretrained={self.tag})"


def default_taps(depth: int) -> list[int]:
    """Four evenly spaced blocks ending at the last: 12 -> 2,5,8,11; 24 -> 5,11,17,23; 2 -> 0,0,1,1."""
    return [-(-depth * (i + 1) // 4) - 1 for i in range(4)]


def _presets() -> dict[str, BackbonePreset]:
    presets: list[BackbonePreset] = []
    dinov2 = {"s": (384, 12), "b": (768, 12), "l": (1024, 24), "g": (1536, 40)}
    arch = {"s": "small", "b": "base", "l": "large", "g": "giant"}
    # UniMatch V2's tapped blocks; L is the one size that differs from the even-spacing rule.
    dinov2_taps = {"s": (2, 5, 8, 11), "b": (2, 5, 8, 11), "l": (4, 11, 17, 23), "g": (9, 19, 29, 39)}
    for size, (dim, depth) in dinov2.items():
        for reg, infix in (("", ""), ("_reg4", "reg4_")):
            presets.append(
                BackbonePreset(
                    f"dinov2_{size}{reg}",
                    "timm",
                    f"vit_{arch[size]}_patch14_{infix}dinov2",
                    "lvd142m",
                    14,
                    dim,
                    depth,
                    dinov2_taps[size],
                    size,  # type: ignore[arg-type]
                    "Apache-2.0",
                )
            )
    dinov3 = {
        "s": ("small", 384, 12, "s"),
        "s_plus": ("small_plus", 384, 12, "s"),
        "b": ("base", 768, 12, "b"),
        "l": ("large", 1024, 24, "l"),
    }
    for key, (arch_name, dim, depth, size) in dinov3.items():
        presets.append(
            BackbonePreset(
                f"dinov3_{key}",
                "timm",
                f"vit_{arch_name}_patch16_dinov3",
                "lvd1689m",
                16,
                dim,
                depth,
                tuple(default_taps(depth)),
                size,  # type: ignore[arg-type]
                "DINOv3 License (Meta; redistribution must carry it)",
            )
        )
    # OpenAI CLIP was trained with QuickGELU: the -quickgelu configs, else activations are silently wrong.
    presets += [
        BackbonePreset(
            "clip_b16", "open_clip", "ViT-B-16-quickgelu", "openai", 16, 768, 12, (2, 5, 8, 11), "b", "MIT"
        ),
        BackbonePreset(
            "clip_l14", "open_clip", "ViT-L-14-quickgelu", "openai", 14, 1024, 24, (5, 11, 17, 23), "l", "MIT"
        ),
        BackbonePreset(
            "clip_b16_timm",
            "timm",
            "vit_base_patch16_clip_quickgelu_224",
            "openai",
            16,
            768,
            12,
            (2, 5, 8, 11),
            "b",
            "MIT",
        ),
    ]
    return {p.name: p for p in presets}


BACKBONES: dict[str, BackbonePreset] = _presets()


def imagenet_stats() -> tuple[list[float], list[float]]:
    """ImageNet mean and std (RGB): both method papers feed ImageNet-normalized images to every backbone,
    CLIP included."""
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


_TIMM_PREFIX, _OPEN_CLIP_PREFIX = "timm:", "open_clip:"


def _any_model(name: str) -> BackbonePreset:
    """A preset for any timm ViT ('timm:ARCH[.TAG]') or open_clip model ('open_clip:MODEL[:TAG]'), e.g.
    a teacher the registry does not name. Width, depth and patch size are read from the built model."""
    if name.startswith(_TIMM_PREFIX):
        arch, _, tag = name.removeprefix(_TIMM_PREFIX).partition(".")
        library: Library = "timm"
    else:
        arch, _, tag = name.removeprefix(_OPEN_CLIP_PREFIX).partition(":")
        library = "open_clip"
    if not arch:
        raise UserError(f"Backbone '{name}' names no model; e.g. timm:vit_base_patch16_224.augreg_in21k.")
    return BackbonePreset(name, library, arch, tag, 0, 0, 0, (), None, "see the model card")


def get_preset(name: str) -> BackbonePreset:
    if name.startswith((_TIMM_PREFIX, _OPEN_CLIP_PREFIX)):
        return _any_model(name)
    try:
        return BACKBONES[name]
    except KeyError:
        raise UserError(
            f"Unknown backbone '{name}'. Choose one of: {', '.join(BACKBONES)}, or any timm / open_clip "
            f"ViT as timm:ARCH.TAG / open_clip:MODEL:TAG (e.g. --set model.backbone=dinov2_s)."
        ) from None


def tiny_overrides(
    preset: str,
    *,
    depth: int = 4,
    embed_dim: int = 96,
    num_heads: int = 3,
    patch_size: int = 8,
    img_size: int = 64,
) -> dict[str, Any]:
    """Constructor overrides that shrink a preset to a tiny random model (tests, demo, benchmarks).

    timm takes them as `create_model` keyword arguments. open_clip has no per-field keywords; its
    `create_model(**model_kwargs)` replaces top-level config entries, so the vision tower is described as a
    partial `vision_cfg` that `build_backbone` merges into the preset's own config (the text tower is shrunk
    too, keeping the real vocabulary so the tokenizer still fits). No config file is written or registered.
    """
    if get_preset(preset).library == "timm":
        return dict(
            depth=depth, embed_dim=embed_dim, num_heads=num_heads, patch_size=patch_size, img_size=img_size
        )
    return dict(
        embed_dim=32,  # open_clip's embed_dim is the joint image-text space, not the tower width
        vision_cfg=dict(
            image_size=img_size,
            layers=depth,
            width=embed_dim,
            patch_size=patch_size,
            head_width=embed_dim // num_heads,
        ),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
    )


# --- weights ---------------------------------------------------------------------------------------------


def _resolve_weights(weights: Weights, preset: BackbonePreset) -> tuple[str, Path | None]:
    """'none' | 'hub' | a file | a folder (plain or `local-dir:`), checked before any model is built."""
    if weights is None or str(weights) == "none":
        return "none", None
    if str(weights) == "hub":
        return "hub", None
    text = str(weights)
    path = Path(text.removeprefix(_LOCAL_DIR)).expanduser()
    if path.is_file() and not text.startswith(_LOCAL_DIR):
        return "file", path
    if path.is_dir():
        return "dir", path
    if path.is_file():
        raise UserError(f"'{text}' names a file, but local-dir: takes a folder; pass the file path alone.")
    raise UserError(
        f"Weights '{text}' for backbone {preset.name} ({preset.hub_name}) do not exist. Give an existing "
        f"file (--set model.weights=/path/to/weights.safetensors), a folder (local-dir:/path/to/folder), "
        f"'hub' to download from the Hugging Face hub, or 'none' for random initialization."
    )


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"[:300]


def _hub_error(preset: BackbonePreset, where: str, exc: BaseException) -> UserError:
    return UserError(
        f"Could not get the pretrained weights of backbone {preset.name} ({preset.hub_name}) from the Hugging "
        f"Face hub ({_short(exc)}). Without network access, download them elsewhere ({where}) and {_HOW_TO_PASS_LOCAL}."
    )


def _load_error(preset: BackbonePreset, path: Path, exc: BaseException) -> UserError:
    return UserError(
        f"Could not load weights {path} into backbone {preset.name} ({preset.hub_name}): {_short(exc)}. "
        f"The file must hold this architecture's weights (timm or the original release format); "
        f"{_HOW_TO_PASS_LOCAL}, or use 'hub' or 'none'."
    )


# Errors that mean "the weights could not be fetched or read", as opposed to programming errors.
_LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError)


def _create_timm(preset: BackbonePreset, weights: Weights, overrides: dict[str, Any]) -> nn.Module:
    import timm

    kind, path = _resolve_weights(weights, preset)
    # num_classes=0: no classifier (it would be an unused parameter); dynamic_img_size: any input size.
    kwargs: dict[str, Any] = dict(num_classes=0, dynamic_img_size=True, **overrides)
    name = preset.timm_name
    if kind == "none":
        return timm.create_model(name, pretrained=False, **kwargs)
    if kind == "hub":
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except _LOAD_ERRORS as exc:
            raise _hub_error(preset, f"model.safetensors of https://huggingface.co/timm/{name}", exc) from exc
    # A pretrained_cfg file overlay (not checkpoint_path=) runs timm's checkpoint filter, which converts
    # Meta's original DINOv2 / DINOv3 and OpenAI's CLIP formats; a folder is read as timm's local-dir.
    overlay = dict(file=str(path)) if kind == "file" else dict(file=str(path), source="local-dir")
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except _LOAD_ERRORS as exc:
        raise _load_error(preset, path, exc) from exc  # type: ignore[arg-type]


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
    kind, path = _resolve_weights(weights, p)
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
        except _LOAD_ERRORS as exc:
            cfg = open_clip.get_pretrained_cfg(p.model, p.tag)
            hub = cfg.get("hf_hub", "").rstrip("/")
            where = (
                f"open_clip_model.safetensors or open_clip_pytorch_model.bin of https://huggingface.co/{hub}"
                if hub
                else cfg.get("url", "")
            )
            raise _hub_error(p, where, exc) from exc
    name, pretrained = p.model, str(path)
    if kind == "dir":
        if (path / "open_clip_config.json").is_file():  # type: ignore[operator]
            name, pretrained = f"{_LOCAL_DIR}{path}", None  # config and weights both from the folder
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
    except _LOAD_ERRORS as exc:
        raise _load_error(p, path, exc) from exc  # type: ignore[arg-type]


# --- band adapter ----------------------------------------------------------------------------------------


def _check_band_map(in_chans: int, band_map: Sequence[int | None] | None) -> list[int | None]:
    if not isinstance(in_chans, int) or in_chans < 1:
        raise UserError(f"The model needs at least one input band, got in_chans={in_chans}.")
    if band_map is None:
        # 1-2 bands have no natural RGB counterpart: they all start from the mean filter.
        return [0, 1, 2] + [None] * (in_chans - 3) if in_chans >= 3 else [None] * in_chans
    band_map = list(band_map)
    if len(band_map) != in_chans or any(m not in (0, 1, 2, None) for m in band_map):
        raise UserError(
            f"band_map {band_map} must list, for each of the {in_chans} input bands, the pretrained RGB "
            f"channel it inherits (0 red, 1 green, 2 blue) or null for the mean filter, e.g. "
            f"--set model.band_map=[2,1,0,null] for blue, green, red, near-infrared."
        )
    return band_map


def adapt_patch_conv(conv: nn.Conv2d, band_map: Sequence[int | None]) -> nn.Conv2d:
    """A copy of an RGB patch-embedding conv that takes len(band_map) bands.

    A band mapped to R, G or B inherits that pretrained filter; an unmapped band gets the mean RGB filter.
    All filters are then scaled by 3 / bands: the embedding sums one filter response per band, so with
    similar band statistics (the normalization gives extra bands the mean RGB scale) its output keeps the
    magnitude of the 3-band original that the following pretrained layers expect.
    """
    if conv.in_channels != 3:
        raise ValueError(f"the band adapter needs a 3-channel pretrained conv, got {conv.in_channels}")
    n = len(band_map)
    w = conv.weight.detach()
    mean = w.mean(dim=1)
    filters = [w[:, m] if m is not None else mean for m in band_map]
    new = nn.Conv2d(
        n,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(torch.stack(filters, dim=1) * (3.0 / n))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    new.weight.requires_grad_(conv.weight.requires_grad)
    new.train(conv.training)
    return new


# --- the module ------------------------------------------------------------------------------------------


class Backbone(nn.Module):
    """A ViT returning one (B, embed_dim, ceil(H/p), ceil(W/p)) map per tapped block.

    Inputs of any size are zero-padded right and bottom to a multiple of the patch size.
    """

    def __init__(
        self,
        preset: BackbonePreset,
        model: nn.Module,
        taps: Sequence[int] | None,
        in_chans: int,
        band_map: Sequence[int | None],
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        # The final LayerNorm on every tapped block (UniMatch V2); False gives the raw block outputs
        # (RS-MTDF's CLIP teacher is distilled before CLIP's ln_post).
        self.norm = norm
        self.preset = preset.name
        self.library: Library = preset.library
        self.license = preset.license
        self.in_chans = in_chans
        self.band_map = list(band_map)
        if preset.library == "timm":
            self.patch_size = int(model.patch_embed.patch_size[0])
            self.embed_dim = int(model.embed_dim)
            self.depth = len(model.blocks)
        else:
            self.patch_size = int(model.patch_size[0])
            self.embed_dim = int(model.transformer.width)
            self.depth = len(model.transformer.resblocks)
        self.taps = self._resolve_taps(preset, taps)
        self._blocks = sorted(set(self.taps))  # a block tapped twice is computed once

    def _resolve_taps(self, preset: BackbonePreset, taps: Sequence[int] | None) -> list[int]:
        if taps is None:
            # A preset's own taps hold for its real depth; shrunk test models follow the spacing rule.
            return list(preset.taps) if self.depth == preset.depth else default_taps(self.depth)
        out = []
        for t in taps:
            if isinstance(t, bool) or not isinstance(t, int) or not -self.depth <= t < self.depth:
                raise UserError(
                    f"Tap {t!r} is not a block of backbone {preset.name}, which has {self.depth} blocks "
                    f"(0..{self.depth - 1}); e.g. --set model.taps=[{','.join(map(str, default_taps(self.depth)))}]."
                )
            out.append(t % self.depth)
        if not out:
            raise UserError(f"Backbone {preset.name} needs at least one tapped block (model.taps is empty).")
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] != self.in_chans:
            raise ValueError(f"backbone {self.preset} takes {self.in_chans} bands, got {x.shape[1]}")
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            x = F.pad(x, (0, -w % p, 0, -h % p))
        if self.library == "timm":
            feats = self.model.forward_intermediates(
                x,
                indices=self._blocks,
                norm=self.norm,
                stop_early=True,
                output_fmt="NCHW",
                intermediates_only=True,
            )
        else:
            feats = self._open_clip_intermediates(x)
        by_block = dict(zip(self._blocks, feats))
        return [by_block[t] for t in self.taps]

    def _open_clip_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        v = self.model
        x, gh, gw = open_clip_embed(v, x)
        b = x.shape[0]
        _, inter = v.transformer.forward_intermediates(x, indices=self._blocks, stop_early=True)
        # ln_post is CLIP's final LayerNorm (before the projection); the class token is dropped.
        norm = v.ln_post if self.norm else nn.Identity()
        return [norm(t[:, 1:]).transpose(1, 2).reshape(b, -1, gh, gw) for t in inter]


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


def build_backbone(
    name: str,
    weights: Weights = "none",
    in_chans: int = 3,
    band_map: Sequence[int | None] | None = None,
    taps: Sequence[int] | None = None,
    norm: bool = True,
    **overrides: Any,
) -> Backbone:
    """Build a preset's backbone (a registry name, or timm:ARCH.TAG / open_clip:MODEL:TAG).

    weights: 'none' (random init), 'hub' (timm / open_clip download from the Hugging Face hub), or a local
    .safetensors / .pth / .bin file or folder (`local-dir:/path` or a plain folder path).
    band_map: for each input band, the RGB channel (0, 1, 2) whose pretrained filter it inherits, or None.
    overrides: passed to the timm / open_clip constructor (see `tiny_overrides`).
    """
    preset = get_preset(name)
    band_map = _check_band_map(in_chans, band_map)
    if "in_chans" in overrides:
        raise ValueError("pass in_chans as its own argument: the band adapter needs it")
    # The model is built with 3 channels and its pretrained weights loaded first, then adapted, so the
    # new filters derive from the pretrained ones and no later init overwrites them.
    if preset.library == "timm":
        model = _create_timm(preset, weights, overrides)
    else:
        model = create_open_clip(preset, weights, **overrides).visual
        # The projection to the joint image-text space is not on the feature path; frozen, it cannot show
        # up as a parameter without gradient (which DDP would reject).
        model.proj.requires_grad_(False)
    if in_chans != 3 or band_map != [0, 1, 2]:
        if preset.library == "timm":
            model.patch_embed.proj = adapt_patch_conv(model.patch_embed.proj, band_map)
            model.in_chans = in_chans
            cfg = getattr(model, "pretrained_cfg", None)
            if isinstance(cfg, dict) and "input_size" in cfg:
                cfg["input_size"] = (in_chans, *cfg["input_size"][1:])
        else:
            model.conv1 = adapt_patch_conv(model.conv1, band_map)
    return Backbone(preset, model, taps, in_chans, band_map, norm)
