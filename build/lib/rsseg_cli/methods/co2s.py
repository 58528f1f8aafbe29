"""Co2S: co-guidance and co-fusion of a CLIP student and a DINOv3 student (methods.md).

Per step, for each student k (clip: explicit text-query guidance; dinov3: learned queries), UniMatch style,
each student pseudo-labelling itself on the weak view, no EMA:
    L_k = (L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2
with L_fp the loss of the weak view through Dropout2d(0.5) on the features. Then the stability loss on the
weak unlabeled view: per pixel, where either student's confidence reaches tau, the more confident one
teaches the other. One term per direction, each normalized by its own mask (mask_B: where B teaches A):
    L_sta(A <- B) = sum(mask_B * (softmax(A) - softmax(B).detach())^2) / (mask_B.sum() * classes)
    L_sta = L_sta(clip <- dinov3) + L_sta(dinov3 <- clip)
(a joint sum over both masks divided by the total count would starve the student taught on few pixels).
Its gradient reaches the student side (the released code detaches both sides, so it trains nothing). Its
weight rises 0 -> 0.5 along a cosine ramp over the first 20 % of the iterations.
    loss = L_clip + L_dinov3 + w(t) L_sta
is the paper's two optimizers in one backward: the students share no parameters, so each gets exactly the
gradient of its own L_k + w L_sta.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field

from rsseg_cli.config import Strict
from rsseg_cli.data.augment import mix, partner
from rsseg_cli.errors import UserError
from rsseg_cli.methods.base import (
    Method,
    StepOutput,
    confident_share,
    mixed_targets,
    own_weights,
    supervised_loss,
    unsupervised_loss,
)

if TYPE_CHECKING:
    from rsseg_cli.models.spec import ModelSpec


class Co2SConfig(Strict):
    """Co2S's two students, their text/learned class queries and the stability loss."""

    clip: str = Field(default="clip_b16", description="CLIP student: open_clip preset or open_clip:MODEL:TAG")
    dinov3: str = Field(default="dinov3_b_qkvb", description="DINOv3 student: timm preset or timm:ARCH.TAG")
    clip_weights: str | None = Field(
        default=None, description="hub, none or a local file; null: model.weights when that is hub or none"
    )
    dinov3_weights: str | None = Field(default=None, description="as clip_weights, for the DINOv3 student")
    clip_kwargs: dict[str, Any] = Field(default_factory=dict, description="CLIP constructor overrides")
    dinov3_kwargs: dict[str, Any] = Field(default_factory=dict, description="DINOv3 constructor overrides")
    head: dict[str, Any] = Field(default_factory=dict, description="cost-aggregation head overrides")
    query_lr_mult: float = Field(
        default=100.0, gt=0, description="learnable class queries learn at lr x this (paper: base lr x1)"
    )
    stability_weight: float = Field(default=0.5, ge=0, description="final weight of the stability loss")
    stability_ramp: float = Field(
        default=0.2, ge=0, le=1, description="share of the iterations its cosine ramp from 0 takes"
    )
    text_queries: Literal["single", "concept-avg"] = Field(
        default="single",
        description="CLIP class queries: single ('a photo of a {name}', the release) or concept-avg "
        "(name + concepts, raw embeddings averaged)",
    )
    concepts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="class name -> concepts for concept-avg; default: the class table's, else the name",
    )


def stability_terms(
    logits_a: torch.Tensor, logits_b: torch.Tensor, ignore: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-arbitrated consistency between two students' predictions of the same pixels:
    (L(a <- b), L(b <- a)), the first training a, the second b.

    Where max(conf_a, conf_b) >= tau (and the pixel is not ignored), the more confident student (a on ties)
    is the teacher, detached; the other is pulled towards it by a squared error over the class
    probabilities. Each direction is divided by ITS OWN pixel count times the number of classes, so that a
    student taught on few pixels gets the same per-pixel pull as one taught on many (methods.md, Co2S).
    A direction without pixels is 0, still attached to the graph.
    """
    p_a, p_b = logits_a.float().softmax(dim=1), logits_b.float().softmax(dim=1)
    conf_a, conf_b = p_a.detach().max(dim=1).values, p_b.detach().max(dim=1).values
    confident = (torch.maximum(conf_a, conf_b) >= tau) & ~ignore
    a_teaches = conf_a >= conf_b
    classes = p_a.shape[1]

    def term(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        squared = ((student - teacher.detach()) ** 2 * mask[:, None]).sum()
        return squared / (mask.sum().clamp(min=1) * classes)

    return term(p_a, p_b, confident & ~a_teaches), term(p_b, p_a, confident & a_teaches)


def stability_loss(
    logits_a: torch.Tensor, logits_b: torch.Tensor, ignore: torch.Tensor, tau: float
) -> torch.Tensor:
    """L(a <- b) + L(b <- a), see `stability_terms`; each student's gradient comes from its own term."""
    a_from_b, b_from_a = stability_terms(logits_a, logits_b, ignore, tau)
    return a_from_b + b_from_a


def stability_weight(step: int, total: int, final: float = 0.5, ramp: float = 0.2) -> float:
    """0 at the first step, rising along half a cosine to `final` at `ramp` x total steps, then flat."""
    length = ramp * total
    if length <= 0:
        return final
    t = min(step / length, 1.0)
    return final * 0.5 * (1.0 - math.cos(math.pi * t))


class Co2S(Method):
    name = "co2s"
    options = Co2SConfig
    # AdamW base lr 1e-4 with backbone x0.01 and head x10, i.e. backbone 1e-6 and head 1e-3 = x1000.
    defaults: ClassVar[dict[str, Any]] = {
        "crop": 512,
        "epochs": 80,
        "lr": 1e-6,
        "head_lr_mult": 1000.0,
        "batch_size": 2,
        "batch_size_unlabeled": 2,
    }
    uses_ema = False
    mix_from_second_batch = True

    def __init__(
        self,
        num_classes: int,
        tau: float = 0.95,
        stability: float = 0.5,
        ramp: float = 0.2,
        query_lr_mult: float = 100.0,
        students: dict[str, Any] | None = None,
        weights: dict[str, str] | None = None,
        concepts: list[list[str]] | None = None,
        text_queries: str = "single",
    ):
        super().__init__(num_classes, tau)
        self.stability = stability
        self.ramp = ramp
        self.query_lr_mult = query_lr_mult
        self.students = students or {}
        self.weights = weights or {"clip": "none", "dinov3": "none"}
        self.concepts = concepts or [[f"class {i}"] for i in range(num_classes)]
        self.text_queries = text_queries
        self.weight_now = 0.0

    @classmethod
    def from_config(cls, cfg, classes, in_chans: int, band_map) -> Co2S:
        from rsseg_cli.models.text_queries import class_concepts

        opts = cfg.train.co2s
        names = [c["name"] for c in classes]
        unknown = sorted(set(opts.concepts) - set(names))
        if unknown:
            raise UserError(
                f"train.co2s.concepts names {', '.join(unknown)}, which the dataset's classes "
                f"({', '.join(names)}) do not have."
            )
        table = [
            {"name": c["name"], "concepts": opts.concepts.get(c["name"], c.get("concepts") or [])}
            for c in classes
        ]
        # Per student: its backbone, the cost-head overrides and the backbone constructor overrides.
        students = {
            "clip": dict(backbone=opts.clip, head=opts.head, **opts.clip_kwargs),
            "dinov3": dict(backbone=opts.dinov3, head=opts.head, **opts.dinov3_kwargs),
        }
        weights = {
            "clip": _student_weights("clip", opts.clip_weights, cfg.model.weights),
            "dinov3": _student_weights("dinov3", opts.dinov3_weights, cfg.model.weights),
        }
        return cls(
            len(classes),
            cfg.train.tau,
            opts.stability_weight,
            opts.stability_ramp,
            opts.query_lr_mult,
            students,
            weights,
            class_concepts(table),
            opts.text_queries,
        )

    def model_spec(self, base: ModelSpec) -> ModelSpec:
        """Both students side by side (the configured backbone and head do not apply), with the concepts
        from which the CLIP student's text queries are encoded when the model is built."""
        from rsseg_cli.models.co2s import co2s_spec

        return co2s_spec(base, self.students, self.concepts, self.text_queries)

    def model_weights(self, weights: str) -> dict[str, str]:
        return dict(self.weights)

    def describe(self, cfg) -> str:
        return f"students {self.students['clip']['backbone']} + {self.students['dinov3']['backbone']}"

    def lr_multiplier(self, group: str, head_lr_mult: float) -> float:
        part = group.rsplit(".", 1)[-1]
        if part == "backbone":
            return 1.0
        return self.query_lr_mult if part == "queries" else head_lr_mult

    def begin_step(self, step: int, total: int) -> None:
        self.weight_now = stability_weight(step, total, self.stability, self.ramp)

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        x, mask = labeled["image"], labeled["mask"]
        u = unlabeled
        n, ignore = len(x), u["ignore"]
        # CutMix pastes from a second, independent unlabeled batch ("mix", the release's second loader);
        # without one (a direct call) from the batch partner. The strong views are mixed before the forward;
        # their targets follow once both batches' pseudo-labels exist.
        other = u.get("mix")
        view1 = mix(u["strong1"], other["strong1"] if other else partner(u["strong1"]), u["box1"])
        view2 = mix(u["strong2"], other["strong2"] if other else partner(u["strong2"]), u["box2"])
        out = student(
            torch.cat([x, u["weak"]]),
            strong=torch.cat([view1, view2]),
            n_labeled=n,
            mix_weak=other["weak"] if other else None,
        )

        losses, logs, weak = {}, {}, {}
        for name, o in out.items():
            logits_x, logits_w = o["main"].split([n, len(u["weak"])])
            weak[name] = logits_w
            confidence, pseudo = logits_w.detach().float().softmax(dim=1).max(dim=1)
            source = None
            if other:  # each student pseudo-labels the pasted images itself, without gradient
                conf_o, pseudo_o = o["mix"].float().softmax(dim=1).max(dim=1)
                source = (pseudo_o, conf_o, other["ignore"])
            logits_s1, logits_s2 = o["strong"].chunk(2)
            loss_x = supervised_loss(logits_x, mask)
            loss_s1 = unsupervised_loss(
                logits_s1, *mixed_targets(u["box1"], pseudo, confidence, ignore, source), self.tau
            )
            loss_s2 = unsupervised_loss(
                logits_s2, *mixed_targets(u["box2"], pseudo, confidence, ignore, source), self.tau
            )
            loss_fp = unsupervised_loss(o["fp"], pseudo, confidence, ignore, self.tau)
            losses[name] = (loss_x + 0.25 * loss_s1 + 0.25 * loss_s2 + 0.5 * loss_fp) / 2
            logs[f"{name}_x"] = loss_x.detach()
            logs[f"{name}_u"] = ((loss_s1 + loss_s2) / 2).detach()
            logs[f"{name}_fp"] = loss_fp.detach()
            logs[f"{name}_confident"] = confident_share(confidence, ignore, self.tau)
        clip_from_dino, dino_from_clip = stability_terms(weak["clip"], weak["dinov3"], ignore, self.tau)
        loss_sta = clip_from_dino + dino_from_clip
        loss = losses["clip"] + losses["dinov3"] + self.weight_now * loss_sta
        logs["loss_sta"] = loss_sta.detach()
        logs["clip_sta"] = clip_from_dino.detach()
        logs["dinov3_sta"] = dino_from_clip.detach()
        logs["w_sta"] = torch.tensor(self.weight_now)
        return StepOutput(loss, logs)


def _student_weights(name: str, weights: str | None, model_weights: str) -> str:
    return own_weights(weights, model_weights, f"the Co2S {name} student", f"train.co2s.{name}_weights")
