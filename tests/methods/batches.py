"""A fixed labeled + unlabeled batch, as the training loaders give them, for method tests."""

from __future__ import annotations

import torch


def fixed_batch(n: int = 2, size: int = 32, bands: int = 4, classes: int = 7) -> tuple[dict, dict]:
    """Seeded random images and masks, one CutMix box (and its mirror for a second strong view)."""
    g = torch.Generator().manual_seed(1)
    box = torch.zeros(n, size, size, dtype=torch.bool)
    box[:, 8:20, 8:20] = True
    labeled = {
        "image": torch.randn(n, bands, size, size, generator=g),
        "mask": torch.randint(0, classes, (n, size, size), generator=g),
    }
    unlabeled = {
        "weak": torch.randn(n, bands, size, size, generator=g),
        "strong1": torch.randn(n, bands, size, size, generator=g),
        "strong2": torch.randn(n, bands, size, size, generator=g),
        "ignore": torch.zeros(n, size, size, dtype=torch.bool),
        "box1": box,
        "box2": box.flip(-1),
    }
    return labeled, unlabeled
