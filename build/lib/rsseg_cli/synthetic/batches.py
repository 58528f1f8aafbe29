"""A seeded synthetic training batch, as the training loaders give them, for tests and benchmarks.

Random pixels: method tests need a fixed batch to check that a loss falls, and benchmarks only need the
shapes.  The tensors are a pure function of the arguments (a private torch.Generator, so the global RNG is
left alone and the result does not depend on what ran before).
"""

from __future__ import annotations

import torch

__all__ = ["synthetic_batch"]


def synthetic_batch(
    n: int = 2,
    bands: int = 4,
    size: int = 32,
    classes: int = 7,
    device: torch.device | str | None = None,
    *,
    seed: int = 1,
    box: tuple[int, int] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A labeled batch (image, mask) and an unlabeled one (weak, strong1, strong2, ignore, box1, box2).

    Images are (n, bands, size, size) standard normal, masks (n, size, size) ids in [0, classes).  The
    CutMix region box1 is the square rows/cols [box[0], box[1]) of every sample; box2 is its mirror, for
    the second strong view.  The default box, 8:20 whatever the size, is the one the method tests were
    written against (their expected losses depend on it).  The tensors are drawn on the CPU (identical on
    every device), then moved to `device`.
    """
    lo, hi = (8, 20) if box is None else box
    g = torch.Generator().manual_seed(seed)
    mix = torch.zeros(n, size, size, dtype=torch.bool)
    mix[:, lo:hi, lo:hi] = True
    # The draw order (image, mask, weak, strong1, strong2) fixes the tensors for a seed: keep it.
    labeled = {
        "image": torch.randn(n, bands, size, size, generator=g),
        "mask": torch.randint(0, classes, (n, size, size), generator=g),
    }
    unlabeled = {
        "weak": torch.randn(n, bands, size, size, generator=g),
        "strong1": torch.randn(n, bands, size, size, generator=g),
        "strong2": torch.randn(n, bands, size, size, generator=g),
        "ignore": torch.zeros(n, size, size, dtype=torch.bool),
        "box1": mix,
        "box2": mix.flip(-1),
    }
    if device is not None:
        labeled = {k: v.to(device) for k, v in labeled.items()}
        unlabeled = {k: v.to(device) for k, v in unlabeled.items()}
    return labeled, unlabeled
