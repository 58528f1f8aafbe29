"""What every method shares: the step interface and the semi-supervised loss pieces (methods.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.augment import mix, partner

if TYPE_CHECKING:
    from rsseg_cli.config import Config, TrainConfig
    from rsseg_cli.models.spec import ModelSpec, WeightsArg


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    """The plug-in protocol of a training method.

    Class attributes say what the method needs: `options` (its configuration section, train.<section>),
    `defaults` (train.* settings where its paper differs from the shared defaults), and its batch needs
    (`uses_unlabeled`, `uses_ema`, `mix_from_second_batch`). `model_spec` extends the model spec with the method's own parts.
    """

    name: ClassVar[str]
    options: ClassVar[type[BaseModel] | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    uses_unlabeled: ClassVar[bool] = True
    uses_ema: ClassVar[bool] = True
    # True: the unlabeled batch carries a second, independent one under "mix" to paste CutMix boxes from.
    mix_from_second_batch: ClassVar[bool] = False

    def __init__(self, num_classes: int, tau: float = 0.95):
        self.num_classes = num_classes
        self.tau = tau

    @classmethod
    def section(cls) -> str:
        """The key of the method's configuration section under train (rs-mtdf -> rs_mtdf)."""
        return cls.name.replace("-", "_")

    @classmethod
    def check_options(cls, options: BaseModel) -> None:
        """Reject settings of the method's own section that only make sense with the method chosen
        (raise ValueError with the reason); called when the configuration is parsed."""

    @classmethod
    def from_config(
        cls, cfg: Config, classes: Sequence[dict], in_chans: int, band_map: Sequence[int | None]
    ) -> Method:
        """The method as a run's configuration describes it (methods with teachers load them here)."""
        return cls(num_classes=len(classes), tau=cfg.train.tau)

    def model_spec(self, base: ModelSpec) -> ModelSpec:
        """The spec of the model this method trains, from the configured one (e.g. RS-MTDF's fusion parts)."""
        return base

    def model_weights(self, weights: str) -> WeightsArg:
        """The pretrained weights to build the model with, from model.weights (per component for models
        with several backbones)."""
        return weights

    def labeled_stream(self, train: TrainConfig) -> tuple[int, int | None]:
        """(labeled chips per step and process, labeled samples an epoch holds at least; None: one pass over
        the labeled chips). The semi-supervised recipes draw train.batch_size; the supervised baseline's
        recipe is its own (methods.md)."""
        return train.batch_size, None

    def cutmix_partner_problem(self, batch: int, pool: int) -> str | None:
        """Why CutMix would paste an image onto itself with this unlabeled batch and pool (None: it will not)."""
        if not self.uses_unlabeled:
            return None
        if self.mix_from_second_batch and pool < 2:
            return (
                f"only one unlabeled chip: {self.name}'s CutMix pastes from the same chip (another augmentation "
                "of it). Add unlabeled chips for the mixing to mean anything."
            )
        if not self.mix_from_second_batch and batch < 2:
            return (
                f"train.batch_size_unlabeled is 1: {self.name} pastes each CutMix box from the same image, so "
                "the strong views are not mixed. Use 2 or more unlabeled chips per step."
            )
        return None

    def describe(self, cfg: Config) -> str:
        """The model as the run log names it."""
        m = cfg.model
        extra = ", ".join(f"{k} {v}" for k, v in m.backbone_kwargs.items())
        return f"{m.backbone} ({extra + ', ' if extra else ''}weights {m.weights})"

    def setup(self, device: torch.device, precision: str) -> None:
        """Move whatever the method owns besides the model (frozen teachers) to the training device."""

    def lr_multiplier(self, group: str, head_lr_mult: float) -> float:
        """Learning rate of an optimizer group relative to train.lr: the backbone learns at lr, the rest
        (head, fusion modules) at lr x head_lr_mult."""
        return 1.0 if group == "backbone" else head_lr_mult

    def begin_step(self, step: int, total: int) -> None:
        """Called before each step (schedules inside a method, such as Co2S's stability ramp)."""

    def step(
        self, student: nn.Module, teacher: nn.Module | None, labeled: dict, unlabeled: dict | None
    ) -> StepOutput:
        raise NotImplementedError


def supervised_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labeled pixels (255 ignored); 0 with a gradient when a batch has none."""
    if not (mask != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)


@torch.no_grad()
def pseudo_label(teacher: nn.Module, weak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's confidence and class on the weak view."""
    probs = teacher(weak).float().softmax(dim=1)
    confidence, label = probs.max(dim=1)
    return confidence, label


def unsupervised_loss(
    logits: torch.Tensor, pseudo: torch.Tensor, confidence: torch.Tensor, ignore: torch.Tensor, tau: float
) -> torch.Tensor:
    """Per-pixel cross-entropy against the pseudo-label, counted where confidence >= tau and not ignored,
    summed and divided by the number of non-ignored pixels."""
    loss = F.cross_entropy(logits.float(), pseudo, reduction="none")
    keep = (confidence >= tau) & ~ignore
    return (loss * keep).sum() / (~ignore).sum().clamp(min=1)


def confident_share(confidence: torch.Tensor, ignore: torch.Tensor, tau: float) -> torch.Tensor:
    """Share of non-ignored unlabeled pixels whose pseudo-label passes the threshold (shown in progress)."""
    valid = ~ignore
    return ((confidence >= tau) & valid).sum() / valid.sum().clamp(min=1)


def cutmix(
    strong: torch.Tensor,
    box: torch.Tensor,
    pseudo: torch.Tensor,
    confidence: torch.Tensor,
    ignore: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste each sample's batch partner inside `box`: its strong view with its pseudo-label, confidence and
    ignore mask, so the targets follow the pixels."""
    return (mix(strong, partner(strong), box), *mixed_targets(box, pseudo, confidence, ignore))


def mixed_targets(
    box: torch.Tensor,
    pseudo: torch.Tensor,
    confidence: torch.Tensor,
    ignore: torch.Tensor,
    source: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The targets of a view CutMixed with `box` (for methods that mix the images before pseudo-labelling):
    inside the box those of the pasted image, `source` = its (pseudo, confidence, ignore), by default the
    batch partner's."""
    own = (pseudo, confidence, ignore)
    pasted = source if source is not None else [partner(t) for t in own]
    return tuple(mix(t, o, box) for t, o in zip(own, pasted))  # type: ignore[return-value]


def own_weights(weights: str | None, model_weights: str, what: str, key: str) -> str:
    """The weights of a model a method adds (a teacher, a second student): its own setting, or model.weights
    when that is 'hub' or 'none' (a local file of the main model cannot be another model's)."""
    if weights is not None:
        return weights
    if model_weights in ("hub", "none"):
        return model_weights
    from rsseg_cli.errors import UserError

    raise UserError(
        f"model.weights is a local file, so {what} needs its own: --set {key}=/path/to/weights (or hub / none)."
    )
