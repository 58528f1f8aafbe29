"""Supervised baseline ("OnlySup"): the same model, labeled chips only, with the released supervised recipe's
batch and epoch (methods.md): both UniMatch V2's and RS-MTDF's supervised scripts double the batch and repeat
the labeled list until an epoch holds at least 3000 samples. One pass over a few labeled chips per epoch at the
semi-supervised batch would under-train the baseline and inflate every semi-supervised gain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from rsseg_cli.config import Strict
from rsseg_cli.methods.base import Method, StepOutput, supervised_loss

if TYPE_CHECKING:
    from rsseg_cli.config import TrainConfig


class SupervisedConfig(Strict):
    """The supervised baseline's batch and epoch (the released supervised recipes)."""

    batch_multiplier: int = Field(
        default=2, ge=1, description="labeled chips per step = train.batch_size x this (the recipes: 2)"
    )
    epoch_samples: int = Field(
        default=3000,
        ge=1,
        description="an epoch is max(labeled chips, this) samples, the chips repeating (1: one pass)",
    )


class Supervised(Method):
    name = "supervised"
    options = SupervisedConfig
    uses_unlabeled = False
    uses_ema = False

    def labeled_stream(self, train: TrainConfig) -> tuple[int, int | None]:
        own: SupervisedConfig = getattr(train, self.section(), None) or SupervisedConfig()
        return train.batch_size * own.batch_multiplier, own.epoch_samples

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        loss_x = supervised_loss(student(labeled["image"]), labeled["mask"])
        return StepOutput(loss_x, {"loss_x": loss_x.detach()})
