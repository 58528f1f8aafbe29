"""FixMatch with an EMA teacher (methods.md).

The EMA teacher pseudo-labels the weak view; the student sees cat(labeled, one CutMixed strong view);
loss = (L_x + L_u) / 2.
"""

from __future__ import annotations

import torch

from rsseg_cli.methods.base import (
    Method,
    StepOutput,
    confident_share,
    cutmix,
    pseudo_label,
    supervised_loss,
    unsupervised_loss,
)


class FixMatch(Method):
    name = "fixmatch"

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        x, mask = labeled["image"], labeled["mask"]
        u = unlabeled
        confidence, pseudo = pseudo_label(teacher, u["weak"])
        strong, pseudo_m, conf_m, ignore_m = cutmix(u["strong1"], u["box1"], pseudo, confidence, u["ignore"])

        logits_x, logits_s = student(torch.cat([x, strong])).split([len(x), len(strong)])
        loss_x = supervised_loss(logits_x, mask)
        loss_u = unsupervised_loss(logits_s, pseudo_m, conf_m, ignore_m, self.tau)
        loss = (loss_x + loss_u) / 2
        return StepOutput(
            loss,
            {
                "loss_x": loss_x.detach(),
                "loss_u": loss_u.detach(),
                "confident": confident_share(conf_m, ignore_m, self.tau),
            },
        )
