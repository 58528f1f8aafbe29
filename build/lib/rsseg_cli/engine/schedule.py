"""Learning-rate schedule and the EMA teacher, as the recipes specify."""

from __future__ import annotations

import copy

import torch
from torch import nn


def poly_lr(base: float, step: int, total: int, power: float = 0.9) -> float:
    """lr * (1 - step / total) ^ 0.9, per iteration."""
    return base * (1.0 - min(step, total) / total) ** power


class EMATeacher:
    """A frozen copy of the student updated as decay * teacher + (1 - decay) * student, with
    decay = min(1 - 1 / (step + 1), cap), applied to parameters and buffers after each step."""

    def __init__(self, student: nn.Module, cap: float):
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cap = cap

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        decay = min(1.0 - 1.0 / (step + 1), self.cap)
        for t, s in zip(self.model.parameters(), student.parameters()):
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        for t, s in zip(self.model.buffers(), student.buffers()):
            if t.dtype.is_floating_point:
                t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
            else:
                t.copy_(s)
