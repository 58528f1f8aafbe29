"""The model specification and `build()`: the only way any network is constructed, in training, evaluation,
prediction and benchmarks.

A `ModelSpec` says what to build: the architecture (a registry name), the inputs (bands and which pretrained
RGB filter each inherits), the backbone preset and its taps, the head and the architecture's own parts (RS-MTDF's
translators, Co2S's two students). It is plain data, versioned, and stored in every checkpoint; a built model
carries its *resolved* spec (`model.spec`: defaults filled in), which is what a checkpoint records.

Weights are not part of the spec: `build(spec, weights)` takes them separately ('hub', 'none', a local file or
folder, or per component for architectures with several backbones), and `weights=None` builds the bare
architecture that a checkpoint's state is loaded into.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from rsseg_cli.errors import UserError

SPEC_FORMAT = 1

# Architecture name -> "module:function" building it from a spec (imported on first use). A new architecture
# is one module with a `build(spec, weights)` function plus one line here.
ARCHITECTURES: dict[str, str] = {
    "segmenter": "rsseg_cli.models.segmenter:build",
    "fusion-segmenter": "rsseg_cli.models.fusion:build",
    "co2s": "rsseg_cli.models.co2s:build",
}

# 'hub' | 'none' | a local file or folder; or per component ({'clip': ..., 'dinov3': ...}); None: the bare
# architecture, for loading a checkpoint's state.
WeightsArg = str | Mapping[str, str] | None


class InputStats(BaseModel):
    """The mean and std (red, green, blue; [0, 1] units) the model's input is standardized with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)

    @property
    def pair(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        m, s = self.mean, self.std
        return (m[0], m[1], m[2]), (s[0], s[1], s[2])


class ModelSpec(BaseModel):
    """What a network is. Unknown keys are errors; a spec is immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(default=SPEC_FORMAT, description="version of this specification's layout")
    architecture: str = Field(default="segmenter", description="a key of models.spec.ARCHITECTURES")
    num_classes: int = Field(ge=1)
    in_chans: int = Field(ge=1, description="input bands")
    band_map: list[int | None] | None = Field(
        default=None, description="per band, the pretrained RGB filter (0, 1, 2) it inherits, or null"
    )
    backbone: str | None = Field(default="dinov2_s", description="backbone preset or timm:/open_clip: name")
    backbone_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="backbone constructor overrides"
    )
    taps: list[int] | None = Field(default=None, description="backbone blocks feeding the head")
    head: Literal["s", "b", "l", "g"] | None = Field(default=None, description="DPT head size preset")
    head_features: int | None = Field(default=None, description="DPT fusion width")
    head_channels: list[int] | None = Field(default=None, description="DPT per-level widths")
    parts: dict[str, Any] = Field(
        default_factory=dict, description="the architecture's own parts, validated by its builder"
    )
    input_stats: InputStats | Literal["auto"] | None = Field(
        default=None,
        description="statistics the input is standardized with; every backbone whose own differ converts "
        "it (auto: the main backbone's, resolved when built); null: each backbone takes it as it is",
    )

    @classmethod
    def from_config(
        cls, model: Any, num_classes: int, in_chans: int, band_map: list[int | None] | None
    ) -> ModelSpec:
        """The spec of a configuration's `model:` section for a dataset's classes and bands."""
        return cls(
            num_classes=num_classes,
            in_chans=in_chans,
            band_map=band_map,
            backbone=model.backbone,
            backbone_kwargs=dict(model.backbone_kwargs),
            taps=model.taps,
            head=model.head,
            head_features=model.head_features,
            head_channels=model.head_channels,
            # auto: the input follows the main backbone and the others convert; a configured value is fed
            # to every backbone as it is (the papers' setting).
            input_stats="auto" if getattr(model, "input_stats", "auto") == "auto" else None,
        )

    def with_parts(self, architecture: str, **parts: Any) -> ModelSpec:
        """This spec extended into another architecture (how a method adds its parts)."""
        return self.model_copy(update={"architecture": architecture, "parts": {**self.parts, **parts}})


@runtime_checkable
class MultiPrediction(Protocol):
    """A model that offers several predictions (Co2S: each student and their ensemble). Generic code asks
    this protocol and never names a method."""

    variants: tuple[str, ...]
    mode: str

    def use(self, variant: str) -> nn.Module: ...

    def variant_probs(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


def variants_of(model: nn.Module) -> tuple[str, ...]:
    """The named predictions a model offers; () for a model with one prediction."""
    return tuple(model.variants) if isinstance(model, MultiPrediction) else ()


def _builder(architecture: str):
    try:
        target = ARCHITECTURES[architecture]
    except KeyError:
        raise UserError(
            f"Unknown model architecture {architecture!r}; this rsseg knows {', '.join(ARCHITECTURES)}. "
            "The checkpoint may come from a newer rsseg: upgrade rsseg."
        ) from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build(spec: ModelSpec | Mapping[str, Any], weights: WeightsArg = None) -> nn.Module:
    """The network `spec` describes, with its backbone(s)' pretrained `weights` (None: the bare architecture
    to load a checkpoint into). The returned model's `spec` attribute is the resolved specification."""
    if not isinstance(spec, ModelSpec):
        try:
            spec = ModelSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise UserError(f"Invalid model specification: {exc}") from None
    model = _builder(spec.architecture)(spec, weights)
    if not isinstance(getattr(model, "spec", None), ModelSpec):
        raise TypeError(f"the {spec.architecture} builder must set model.spec")
    if spec.input_stats is not None:
        from rsseg_cli.models.input_stats import fit_backbones, main_backbone, pretrained_stats

        if spec.input_stats == "auto":
            mean, std = pretrained_stats(main_backbone(model.spec))
            stats = InputStats(mean=list(mean), std=list(std))
        else:
            stats = spec.input_stats  # type: ignore[assignment]
        fit_backbones(model, stats.pair)
        model.spec = model.spec.model_copy(update={"input_stats": stats})
    return model


def single_weights(weights: WeightsArg) -> str:
    """The one weights setting of a single-backbone architecture (None: random init before loading)."""
    if weights is None:
        return "none"
    if isinstance(weights, Mapping):
        raise UserError("This architecture has one backbone: give one weights setting, not a mapping.")
    return str(weights)
