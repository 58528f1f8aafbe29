"""Co2S's model: the CLIP student (global context) and the DINOv3 student (local detail) side by side.

At inference either student predicts alone, or both together ("ensemble": the average of their class
probabilities, which realizes the paper's fusion of global context with local detail). In training, one
forward call gives everything the method needs from both students, so DDP sees a single call per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.co2s_student import Co2SStudent, perturb_features
from rsseg_cli.models.spec import ModelSpec, WeightsArg

STUDENTS = ("clip", "dinov3")
VARIANTS = ("clip", "dinov3", "ensemble")


class Co2SModel(nn.Module):
    variants = VARIANTS

    def __init__(self, clip: Co2SStudent, dinov3: Co2SStudent, spec: ModelSpec | None = None):
        super().__init__()
        if clip.num_classes != dinov3.num_classes:
            raise ValueError("both Co2S students must predict the same classes")
        self.students = nn.ModuleDict({"clip": clip, "dinov3": dinov3})
        self.num_classes = clip.num_classes
        self.mode = "ensemble"
        self.spec = spec

    def use(self, student: str) -> Co2SModel:
        """Which prediction `forward` gives: 'clip', 'dinov3' or 'ensemble'."""
        if student not in VARIANTS:
            raise UserError(f"--student {student!r} is not known; use one of {', '.join(VARIANTS)}.")
        self.mode = student
        return self

    def variant_probs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class probabilities of each student and of the ensemble (validation scores all three at once)."""
        probs = {k: s(x).float().softmax(dim=1) for k, s in self.students.items()}
        probs["ensemble"] = (probs["clip"] + probs["dinov3"]) / 2
        return probs

    def forward(
        self,
        x: torch.Tensor,
        strong: torch.Tensor | None = None,
        n_labeled: int = 0,
        mix_weak: torch.Tensor | None = None,
    ) -> torch.Tensor | dict[str, dict[str, torch.Tensor]]:
        """Inference: logits of the chosen student, or for the ensemble the log of the mean probabilities
        (so softmax gives the average). Training (`strong` given): per student, logits of x = cat(labeled,
        weak) ('main'), of the weak part with feature dropout ('fp', UniMatch's feature perturbation), of
        the strong views ('strong') and, without gradient, of `mix_weak` ('mix': the weak views of the
        batch the CutMix boxes come from, for their pseudo-labels)."""
        if strong is None:
            if self.mode == "ensemble":
                return self.variant_probs(x)["ensemble"].clamp_min(1e-12).log()
            return self.students[self.mode](x)
        out = {}
        for name, student in self.students.items():
            feats = student.features(x)
            weak_feats = perturb_features([f[n_labeled:] for f in feats])
            out[name] = {
                "main": student.decode(feats, x.shape[-2:]),
                "fp": student.decode(weak_feats, x.shape[-2:]),
                "strong": student(strong),
            }
            if mix_weak is not None:
                with torch.no_grad():
                    out[name]["mix"] = student(mix_weak)
        return out

    def param_groups(self) -> list[dict[str, Any]]:
        """Each student's groups, named '<student>.<group>' (backbone, head, queries): the two
        students' optimizers of the paper, as groups of one AdamW (its update is per parameter, so the
        result is the same)."""
        return [
            {**g, "name": f"{name}.{g['name']}"}
            for name, student in self.students.items()
            for g in student.param_groups()
        ]


class Co2SParts(BaseModel):
    """The co2s architecture's own part of a model spec: each student's constructor arguments (backbone,
    taps or skip blocks, cost-head overrides, backbone overrides) and the class concepts of the text queries."""

    model_config = ConfigDict(extra="forbid")

    students: dict[Literal["clip", "dinov3"], dict[str, Any]]
    concepts: list[list[str]] = Field(default_factory=list)
    text_queries: Literal["single", "concept-avg"] = "single"


# Student settings that come from the spec itself, not from the student's own parts.
_FROM_SPEC = ("kind", "num_classes", "in_chans", "band_map")


def _student_weights(weights: WeightsArg, name: str) -> str:
    if weights is None:
        return "none"
    return str(weights[name]) if isinstance(weights, Mapping) else str(weights)


def text_queries(
    student: dict[str, Any], weights: str, concepts: list[list[str]], variant: str = "single"
) -> torch.Tensor:
    """The CLIP student's frozen class queries, encoded once by the text tower of the same CLIP model."""
    from rsseg_cli.models.open_clip_adapter import create_open_clip
    from rsseg_cli.models.text_queries import encode_class_queries

    overrides = {
        k: v for k, v in student.items() if k not in ("backbone", "head", "skip_blocks", "taps", *_FROM_SPEC)
    }
    text_model = create_open_clip(student["backbone"], weights, **overrides)
    return encode_class_queries(text_model, student["backbone"], concepts, variant=variant)


def co2s_spec(
    base: ModelSpec,
    students: dict[str, dict[str, Any]],
    concepts: list[list[str]],
    text_queries: str = "single",
) -> ModelSpec:
    """A co2s spec from a configured one: the two students replace the single backbone and head."""
    single = dict(
        backbone=None, backbone_kwargs={}, taps=None, head=None, head_features=None, head_channels=None
    )
    parts = dict(students=students, concepts=concepts, text_queries=text_queries)
    return base.model_copy(update=single).with_parts("co2s", **parts)


def build(spec: ModelSpec, weights: WeightsArg) -> Co2SModel:
    """The 'co2s' architecture: both students with their pretrained weights (loaded before any adaptation,
    never initialized after) and the CLIP student's text queries. With weights None, the bare architecture
    whose queries come from the checkpoint's state."""
    parts = Co2SParts.model_validate(spec.parts)
    if set(parts.students) != set(STUDENTS):
        raise UserError(
            f"A co2s model needs both students ({', '.join(STUDENTS)}), got {sorted(parts.students)}."
        )
    common = dict(num_classes=spec.num_classes, in_chans=spec.in_chans, band_map=spec.band_map)
    students = {}
    for name in STUDENTS:
        kwargs = {k: v for k, v in parts.students[name].items() if k not in _FROM_SPEC}
        if name == "clip" and weights is not None:
            kwargs["queries"] = text_queries(
                kwargs, _student_weights(weights, name), parts.concepts, parts.text_queries
            )
        students[name] = Co2SStudent(name, weights=_student_weights(weights, name), **common, **kwargs)  # type: ignore[arg-type]
    resolved = {
        name: {k: v for k, v in s.config.items() if k not in _FROM_SPEC} for name, s in students.items()
    }
    band_map = students["clip"].backbone.band_map
    final = spec.model_copy(
        update=dict(
            band_map=band_map,
            parts=parts.model_copy(update=dict(students=resolved)).model_dump(),
        )
    )
    return Co2SModel(students["clip"], students["dinov3"], final)
