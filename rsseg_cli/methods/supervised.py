"""Supervised baseline ("OnlySup"): the same model and schedule, labeled chips only."""

from __future__ import annotations

from rsseg_cli.methods.base import Method, StepOutput, supervised_loss


class Supervised(Method):
    name = "supervised"
    uses_unlabeled = False
    uses_ema = False

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        loss_x = supervised_loss(student(labeled["image"]), labeled["mask"])
        return StepOutput(loss_x, {"loss_x": loss_x.detach()})
