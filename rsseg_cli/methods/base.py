"""What every method shares: the step interface and the semi-supervised loss pieces (methods.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.augment import mix, partner

if TYPE_CHECKING:
    from rsseg_cli.config import Config


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    name: ClassVar[str]
    uses_unlabeled: ClassVar[bool] = True
    uses_ema: ClassVar[bool] = True

    def __init__(self, num_classes: int, tau: float = 0.95):
        self.num_classes = num_classes
        self.tau = tau

    @classmethod
    def from_config(
        cls, cfg: Config, classes: Sequence[dict], in_chans: int, band_map: Sequence[int | None]
    ) -> Method:
        """The method as a run's configuration describes it (methods with teachers load them here)."""
        return cls(num_classes=len(classes), tau=cfg.train.tau)

    def model_extras(self) -> dict[str, Any]:
        """Entries this method adds to the checkpoint's model config (e.g. RS-MTDF's fusion modules)."""
        return {}

    def build_model(self, config: dict[str, Any], resuming: bool) -> nn.Module | None:
        """A model of the method's own (Co2S's two students), or None for the configured segmenter. It may
        complete `config` with resolved values; it is what rebuilds the model from a checkpoint."""
        return None

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
    box: torch.Tensor, pseudo: torch.Tensor, confidence: torch.Tensor, ignore: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The targets of a view CutMixed with `box` (for methods that mix the images before pseudo-labelling)."""
    return tuple(mix(t, partner(t), box) for t in (pseudo, confidence, ignore))  # type: ignore[return-value]


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
