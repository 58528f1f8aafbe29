"""Co2S's model: the CLIP student (global context) and the DINOv3 student (local detail) side by side.

At inference either student predicts alone, or both together ("ensemble": the average of their class
probabilities, which realizes the paper's fusion of global context with local detail). In training, one
forward call gives everything the method needs from both students, so DDP sees a single call per step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.co2s_student import Co2SStudent, perturb_features

STUDENTS = ("clip", "dinov3")
VARIANTS = ("clip", "dinov3", "ensemble")


class Co2SModel(nn.Module):
    variants = VARIANTS

    def __init__(self, clip: Co2SStudent, dinov3: Co2SStudent, config: dict[str, Any] | None = None):
        super().__init__()
        if clip.num_classes != dinov3.num_classes:
            raise ValueError("both Co2S students must predict the same classes")
        self.students = nn.ModuleDict({"clip": clip, "dinov3": dinov3})
        self.num_classes = clip.num_classes
        self.mode = "ensemble"
        self.config: dict[str, Any] = dict(config or {})

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
        self, x: torch.Tensor, strong: torch.Tensor | None = None, n_labeled: int = 0
    ) -> torch.Tensor | dict[str, dict[str, torch.Tensor]]:
        """Inference: logits of the chosen student, or for the ensemble the log of the mean probabilities
        (so softmax gives the average). Training (`strong` given): per student, logits of x = cat(labeled,
        weak) ('main'), of the weak part with feature dropout ('fp', UniMatch's feature perturbation), and
        of the strong views ('strong')."""
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
        return out

    def param_groups(self) -> list[dict[str, Any]]:
        """Each student's groups, named '<student>.<group>' (backbone, head, queries, *_no_decay): the two
        students' optimizers of the paper, as groups of one AdamW (its update is per parameter, so the
        result is the same)."""
        return [
            {**g, "name": f"{name}.{g['name']}"}
            for name, student in self.students.items()
            for g in student.param_groups()
        ]


def build_co2s_model(
    config: dict[str, Any], weights: dict[str, str] | None = None, queries: torch.Tensor | None = None
) -> Co2SModel:
    """Both students from a model config ('co2s': {'clip': kwargs, 'dinov3': kwargs}), with weights per
    student and the CLIP student's text queries; with neither, the architecture to load a checkpoint into
    (whose state holds the text queries)."""
    weights = weights or {}
    students = {}
    for name in STUDENTS:
        kwargs = dict(config["co2s"][name])
        kwargs.pop("kind", None)
        if name == "clip":
            kwargs["queries"] = queries
        students[name] = Co2SStudent(name, weights=weights.get(name, "none"), **kwargs)  # type: ignore[arg-type]
    return Co2SModel(students["clip"], students["dinov3"], config)
