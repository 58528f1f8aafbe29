"""RS-MTDF: multi-teacher distillation and fusion (methods.md), on the FixMatch-with-EMA recipe.

Per step:
  1. the EMA teacher (which fuses its own translated features) pseudo-labels the weak unlabeled view;
  2. the student runs once on cat(labeled, CutMixed strong view), giving logits and, per frozen teacher,
     its last-block tokens translated into that teacher's space (at the teacher's resolution);
  3. each frozen teacher encodes the same images without gradients;
  4. L_d = mean over teachers of loss_weight x MSE(translated, teacher tokens);
  5. loss = (L_x + L_u + distill_weight x L_d) / 3.

The frozen teachers belong to this method object, not to the model: the EMA copy, the optimizer and the
checkpoints never see them, and prediction needs none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from rsseg_cli.config import Strict
from rsseg_cli.methods.base import (
    Method,
    StepOutput,
    confident_share,
    cutmix,
    own_weights,
    pseudo_label,
    supervised_loss,
    unsupervised_loss,
)

if TYPE_CHECKING:
    from rsseg_cli.models.spec import ModelSpec


class TeacherConfig(Strict):
    """One frozen RS-MTDF teacher: a foundation model whose last-block tokens the student learns to reproduce."""

    backbone: str = Field(description="backbone preset, or any timm:ARCH.TAG / open_clip:MODEL:TAG")
    weights: str | None = Field(
        default=None, description="hub, none or a local file; null: model.weights when that is hub or none"
    )
    resolution: int | None = Field(
        default=None, ge=16, description="square input side of the teacher; null: the student's input size"
    )
    norm: bool = Field(default=True, description="final LayerNorm on the teacher's tokens")
    loss_weight: float = Field(default=1.0, ge=0, description="weight of its MSE in the distillation loss")
    fusion_weight: float = Field(default=0.1, ge=0, description="weight of its branch in the fused 4th level")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor overrides")


# The paper's teachers: DINOv2-B/14 on the student's input, LayerNorm'd; OpenAI CLIP ViT-L/14 at 224 px,
# before its final LayerNorm and projection.
DEFAULT_TEACHERS: dict[str, dict[str, Any]] = {
    "dino": {"backbone": "dinov2_b"},
    "clip": {"backbone": "clip_l14", "resolution": 224, "norm": False},
}


class RSMTDFConfig(Strict):
    teachers: dict[str, TeacherConfig | None] = Field(
        default_factory=lambda: {k: TeacherConfig(**v) for k, v in DEFAULT_TEACHERS.items()},
        description="name -> teacher; entries merge into the defaults (dino, clip); null disables one",
    )
    student_weight: float = Field(default=0.8, ge=0, description="weight of the student's own 4th level")
    fusion: bool = Field(default=True, description="fuse translated features into the decoder")
    translator_hidden: int = Field(default=1024, ge=1, description="hidden width of the translator MLPs")
    distill_weight: float = Field(default=1.0, ge=0, description="loss = (L_x + L_u + this x L_distill) / 3")

    @field_validator("teachers", mode="before")
    @classmethod
    def _merge_defaults(cls, v: Any) -> Any:
        """`teachers: {clip: null}` keeps the default DINO teacher and disables CLIP; a partial entry such as
        `{dino: {weights: /path}}` keeps the rest of the default DINO teacher."""
        if not isinstance(v, dict):
            return v
        merged: dict[str, Any] = {k: dict(d) for k, d in DEFAULT_TEACHERS.items()}
        for name, entry in v.items():
            if isinstance(entry, TeacherConfig):
                entry = entry.model_dump()
            if isinstance(entry, dict) and isinstance(merged.get(name), dict):
                merged[name] = {**merged[name], **entry}
            else:
                merged[name] = entry
        return merged

    @property
    def active_teachers(self) -> dict[str, TeacherConfig]:
        return {name: t for name, t in self.teachers.items() if t is not None}


def distillation_loss(
    translated: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain MSE per teacher between the student's translated features and the teacher's tokens (the
    translated map is resized to the teacher's grid when their patch sizes differ), then the weighted mean
    over teachers: with the paper's two teachers and weights 1, (MSE_dino + MSE_clip) / 2."""
    per_teacher = {}
    for name, target in targets.items():
        pred = translated[name].float()
        if pred.shape[-2:] != target.shape[-2:]:
            # align_corners=True like every other RS-MTDF resize (teacher input, fusion), as released.
            pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=True)
        per_teacher[name] = F.mse_loss(pred, target.float())
    total = sum(weights[name] * loss for name, loss in per_teacher.items()) / len(per_teacher)
    return total, per_teacher  # type: ignore[return-value]


class RSMTDF(Method):
    name = "rs-mtdf"
    options = RSMTDFConfig
    defaults: ClassVar[dict[str, Any]] = {"batch_size": 8, "batch_size_unlabeled": 8}

    def __init__(
        self,
        num_classes: int,
        tau: float = 0.95,
        teachers: Sequence[torch.nn.Module] = (),
        loss_weights: Mapping[str, float] | None = None,
        fusion_weights: Mapping[str, float] | None = None,
        student_weight: float = 0.8,
        fuse: bool = True,
        hidden: int = 1024,
        distill_weight: float = 1.0,
    ):
        super().__init__(num_classes, tau)
        if not teachers:
            raise ValueError("RS-MTDF needs at least one frozen teacher")
        self.teachers = list(teachers)
        names = [t.name for t in self.teachers]
        self.loss_weights = {n: 1.0 for n in names} | dict(loss_weights or {})
        self.fusion_weights = {n: 0.1 for n in names} | dict(fusion_weights or {})
        self.student_weight = student_weight
        self.fuse = fuse
        self.hidden = hidden
        self.distill_weight = distill_weight

    @classmethod
    def from_config(cls, cfg, classes, in_chans: int, band_map) -> RSMTDF:
        from rsseg_cli.models.teachers import TeacherSpec, build_teacher

        opts = cfg.train.rs_mtdf
        active = opts.active_teachers
        teachers = [
            build_teacher(
                TeacherSpec(
                    name,
                    t.backbone,
                    _teacher_weights(name, t.weights, cfg.model.weights),
                    t.resolution,
                    t.norm,
                    dict(t.backbone_kwargs),
                ),
                in_chans,
                band_map,
            )
            for name, t in active.items()
        ]
        return cls(
            len(classes),
            cfg.train.tau,
            teachers,
            loss_weights={n: t.loss_weight for n, t in active.items()},
            fusion_weights={n: t.fusion_weight for n, t in active.items()},
            student_weight=opts.student_weight,
            fuse=opts.fusion,
            hidden=opts.translator_hidden,
            distill_weight=opts.distill_weight,
        )

    @classmethod
    def check_options(cls, options: RSMTDFConfig) -> None:
        if not options.active_teachers:
            raise ValueError(
                "rs-mtdf needs at least one teacher in train.rs_mtdf.teachers (without teachers it is "
                "fixmatch: use --method fixmatch)"
            )

    def model_spec(self, base: ModelSpec) -> ModelSpec:
        """The student: the configured segmenter plus a translator (and projection) per teacher branch."""
        from rsseg_cli.models.fusion import Branch, fusion_parts

        branches = [Branch(t.name, t.dim, t.resolution, self.fusion_weights[t.name]) for t in self.teachers]
        parts = fusion_parts(branches, self.student_weight, self.hidden, self.fuse)
        return base.with_parts("fusion-segmenter", **parts)

    def describe(self, cfg) -> str:
        teachers = ", ".join(f"{t.name}: {t.backbone.preset}" for t in self.teachers)
        return f"{super().describe(cfg)}, frozen teachers {teachers}"

    def setup(self, device: torch.device, precision: str) -> None:
        self.teachers = [t.to_precision(device, precision) for t in self.teachers]

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        x, mask = labeled["image"], labeled["mask"]
        u = unlabeled
        confidence, pseudo = pseudo_label(teacher, u["weak"])
        strong, pseudo_m, conf_m, ignore_m = cutmix(u["strong1"], u["box1"], pseudo, confidence, u["ignore"])

        images = torch.cat([x, strong])
        logits, translated = student(images, return_translated=True)
        logits_x, logits_s = logits.split([len(x), len(strong)])
        targets = {t.name: t(images) for t in self.teachers}

        loss_x = supervised_loss(logits_x, mask)
        loss_u = unsupervised_loss(logits_s, pseudo_m, conf_m, ignore_m, self.tau)
        loss_d, per_teacher = distillation_loss(translated, targets, self.loss_weights)
        loss = (loss_x + loss_u + self.distill_weight * loss_d) / 3
        return StepOutput(
            loss,
            {
                "loss_x": loss_x.detach(),
                "loss_u": loss_u.detach(),
                "loss_d": loss_d.detach(),
                **{f"loss_d_{name}": v.detach() for name, v in per_teacher.items()},
                "confident": confident_share(conf_m, ignore_m, self.tau),
            },
        )


def _teacher_weights(name: str, weights: str | None, model_weights: str) -> str:
    return own_weights(
        weights, model_weights, f"the RS-MTDF teacher '{name}'", f"train.rs_mtdf.teachers.{name}.weights"
    )
