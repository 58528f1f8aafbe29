"""UniMatch V2 (methods.md): EMA teacher, two CutMixed strong views, complementary feature dropout.

The EMA teacher pseudo-labels the weak view. The student runs once on the labeled batch and once on
cat(strong1, strong2), where the encoder features of strong1 are multiplied by a Bernoulli(0.5) channel mask
(scaled x2) and those of strong2 by its complement (2 - mask), the same mask on every tapped block, and a
random half of the pairs keeps all channels. loss = (L_x + (L_s1 + L_s2) / 2) / 2.
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


def complementary_dropout(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Features of cat(strong1, strong2) -> the same features with complementary channel masks."""
    pairs, channels = features[0].shape[0] // 2, features[0].shape[1]
    device, dtype = features[0].device, features[0].dtype
    mask1 = torch.bernoulli(torch.full((pairs, channels), 0.5, device=device)) * 2.0
    mask2 = 2.0 - mask1
    kept = torch.randperm(pairs, device=device)[: pairs // 2]
    mask1[kept] = 1.0
    mask2[kept] = 1.0
    masks = torch.cat([mask1, mask2]).to(dtype)[:, :, None, None]
    return [f * masks for f in features]


class UniMatchV2(Method):
    name = "unimatch-v2"

    def step(self, student, teacher, labeled, unlabeled) -> StepOutput:
        x, mask = labeled["image"], labeled["mask"]
        u = unlabeled
        confidence, pseudo = pseudo_label(teacher, u["weak"])

        view1, *targets1 = cutmix(u["strong1"], u["box1"], pseudo, confidence, u["ignore"])
        view2, *targets2 = cutmix(u["strong2"], u["box2"], pseudo, confidence, u["ignore"])

        logits_x = student(x)
        logits_s1, logits_s2 = student(
            torch.cat([view1, view2]), feature_transform=complementary_dropout
        ).chunk(2)
        loss_x = supervised_loss(logits_x, mask)
        loss_s1 = unsupervised_loss(logits_s1, *targets1, self.tau)
        loss_s2 = unsupervised_loss(logits_s2, *targets2, self.tau)
        loss = (loss_x + (loss_s1 + loss_s2) / 2) / 2
        return StepOutput(
            loss,
            {
                "loss_x": loss_x.detach(),
                "loss_u": ((loss_s1 + loss_s2) / 2).detach(),
                "confident": confident_share(targets1[1], targets1[2], self.tau),
            },
        )
