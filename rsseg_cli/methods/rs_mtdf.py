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
from typing import Any

import torch
import torch.nn.functional as F

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
            pred = F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)
        per_teacher[name] = F.mse_loss(pred, target.float())
    total = sum(weights[name] * loss for name, loss in per_teacher.items()) / len(per_teacher)
    return total, per_teacher  # type: ignore[return-value]


class RSMTDF(Method):
    name = "rs-mtdf"

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

    def model_extras(self) -> dict[str, Any]:
        from rsseg_cli.models.fusion import Branch, fusion_config

        branches = [Branch(t.name, t.dim, t.resolution, self.fusion_weights[t.name]) for t in self.teachers]
        return {"fusion": fusion_config(branches, self.student_weight, self.hidden, self.fuse)}

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
