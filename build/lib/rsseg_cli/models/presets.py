"""The backbone registry: which named backbones exist, where each comes from and which blocks its heads tap.

Each preset is one keyword entry (like timm's `_cfg(...)` pretrained configs); adding a backbone is adding
one `_preset(...)` line. Any other timm or open_clip ViT is reachable as timm:ARCH.TAG / open_clip:MODEL:TAG.
Nothing here imports timm or open_clip: the adapters build the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rsseg_cli.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from rsseg_cli.errors import UserError

Library = Literal["timm", "open_clip"]
Size = Literal["s", "b", "l", "g"]


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
    size: Size | None  # picks the default DPT head (None: from the built width)
    license: str
    # (mean, std) of its pretraining input, RGB in [0, 1] units; None: what timm / open_clip say (input_stats)
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None

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


# --- the registry ----------------------------------------------------------------------------------------

BACKBONES: dict[str, BackbonePreset] = {}


def _preset(
    name: str,
    *,
    library: Library,
    model: str,
    tag: str,
    patch_size: int,
    embed_dim: int,
    depth: int,
    size: Size,
    license: str,
    taps: tuple[int, ...] | None = None,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> None:
    """Register one backbone; `taps` defaults to the even-spacing rule (`default_taps`) for its depth."""
    if name in BACKBONES:
        raise ValueError(f"backbone preset {name} is declared twice")
    BACKBONES[name] = BackbonePreset(
        name=name,
        library=library,
        model=model,
        tag=tag,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        taps=tuple(default_taps(depth)) if taps is None else taps,
        size=size,
        license=license,
        stats=stats,
    )


# Keywords shared by a family, spread into its entries.
_DINOV2: dict[str, Any] = dict(library="timm", tag="lvd142m", patch_size=14, license="Apache-2.0")
_DINOV3_LICENSE = "DINOv3 License (Meta; redistribution must carry it)"
_DINOV3: dict[str, Any] = dict(library="timm", tag="lvd1689m", patch_size=16, license=_DINOV3_LICENSE)
# DINOv3 distilled on SAT-493M (Maxar satellite RGB) normalizes with that data's statistics, not ImageNet's;
# given here as released, so they hold whichever timm version is installed.
_SAT493M_STATS = ((0.430, 0.411, 0.296), (0.213, 0.156, 0.143))
_DINOV3_SAT: dict[str, Any] = {**_DINOV3, "tag": "sat493m", "stats": _SAT493M_STATS}
# OpenAI CLIP was trained with QuickGELU: the -quickgelu configs, else activations are silently wrong.
_OPENAI_CLIP: dict[str, Any] = dict(tag="openai", license="MIT")

# UniMatch V2's tapped blocks follow the even-spacing rule except for L, which gives its own.
# fmt: off
_preset("dinov2_s",      model="vit_small_patch14_dinov2",      embed_dim=384,  depth=12, size="s", **_DINOV2)
_preset("dinov2_s_reg4", model="vit_small_patch14_reg4_dinov2", embed_dim=384,  depth=12, size="s", **_DINOV2)
_preset("dinov2_b",      model="vit_base_patch14_dinov2",       embed_dim=768,  depth=12, size="b", **_DINOV2)
_preset("dinov2_b_reg4", model="vit_base_patch14_reg4_dinov2",  embed_dim=768,  depth=12, size="b", **_DINOV2)
_preset("dinov2_l",      model="vit_large_patch14_dinov2",      embed_dim=1024, depth=24, size="l", **_DINOV2, taps=(4, 11, 17, 23))
_preset("dinov2_l_reg4", model="vit_large_patch14_reg4_dinov2", embed_dim=1024, depth=24, size="l", **_DINOV2, taps=(4, 11, 17, 23))
_preset("dinov2_g",      model="vit_giant_patch14_dinov2",      embed_dim=1536, depth=40, size="g", **_DINOV2)
_preset("dinov2_g_reg4", model="vit_giant_patch14_reg4_dinov2", embed_dim=1536, depth=40, size="g", **_DINOV2)

_preset("dinov3_s",      model="vit_small_patch16_dinov3",      embed_dim=384,  depth=12, size="s", **_DINOV3)
_preset("dinov3_s_plus", model="vit_small_plus_patch16_dinov3", embed_dim=384,  depth=12, size="s", **_DINOV3)
_preset("dinov3_b",      model="vit_base_patch16_dinov3",       embed_dim=768,  depth=12, size="b", **_DINOV3)
_preset("dinov3_l",      model="vit_large_patch16_dinov3",      embed_dim=1024, depth=24, size="l", **_DINOV3)
# The released DINOv3 layout with q and v biases in every attention block (Co2S's student trains them).
_preset("dinov3_s_qkvb", model="vit_small_patch16_dinov3_qkvb", embed_dim=384,  depth=12, size="s", **_DINOV3)
_preset("dinov3_b_qkvb", model="vit_base_patch16_dinov3_qkvb",  embed_dim=768,  depth=12, size="b", **_DINOV3)
_preset("dinov3_l_qkvb", model="vit_large_patch16_dinov3_qkvb", embed_dim=1024, depth=24, size="l", **_DINOV3)
# The satellite-pretrained DINOv3 (SAT-493M), and its released q/v-bias layout.
_preset("dinov3_l_sat",      model="vit_large_patch16_dinov3",      embed_dim=1024, depth=24, size="l", **_DINOV3_SAT)
_preset("dinov3_l_sat_qkvb", model="vit_large_patch16_dinov3_qkvb", embed_dim=1024, depth=24, size="l", **_DINOV3_SAT)

_preset("clip_b16",      library="open_clip", model="ViT-B-16-quickgelu", patch_size=16, embed_dim=768,  depth=12, size="b", **_OPENAI_CLIP)
_preset("clip_l14",      library="open_clip", model="ViT-L-14-quickgelu", patch_size=14, embed_dim=1024, depth=24, size="l", **_OPENAI_CLIP)
_preset("clip_b16_timm", library="timm", model="vit_base_patch16_clip_quickgelu_224", patch_size=16, embed_dim=768, depth=12, size="b", **_OPENAI_CLIP)
# fmt: on


def imagenet_stats() -> tuple[list[float], list[float]]:
    """ImageNet mean and std (RGB): both method papers feed ImageNet-normalized images to every backbone,
    CLIP included (`model.input_stats: imagenet`; each backbone's own: `input_stats.pretrained_stats`)."""
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


# --- lookup ----------------------------------------------------------------------------------------------

_TIMM_PREFIX, _OPEN_CLIP_PREFIX = "timm:", "open_clip:"


def _any_model(name: str) -> BackbonePreset:
    """A preset for any timm ViT ('timm:ARCH[.TAG]') or open_clip model ('open_clip:MODEL[:TAG]'), e.g.
    a teacher the registry does not name. Width, depth and patch size are read from the built model."""
    library: Library
    if name.startswith(_TIMM_PREFIX):
        arch, _, tag = name.removeprefix(_TIMM_PREFIX).partition(".")
        library = "timm"
    else:
        arch, _, tag = name.removeprefix(_OPEN_CLIP_PREFIX).partition(":")
        library = "open_clip"
    if not arch:
        raise UserError(f"Backbone '{name}' names no model; e.g. timm:vit_base_patch16_224.augreg_in21k.")
    return BackbonePreset(
        name=name,
        library=library,
        model=arch,
        tag=tag,
        patch_size=0,
        embed_dim=0,
        depth=0,
        taps=(),
        size=None,
        license="see the model card",
    )


def get_preset(name: str) -> BackbonePreset:
    """A registry preset by name, or one for any timm:ARCH.TAG / open_clip:MODEL:TAG model."""
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
