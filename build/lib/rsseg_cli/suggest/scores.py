"""Per-pixel uncertainty of blended predictions, and how a strategy combines it into one score.

Every component lies in [0, 1], so that they can be averaged and compared across models with different
numbers of classes:
- entropy: H(p) / log K of the blended probabilities (1: all classes equally likely);
- margin: 1 - (p_first - p_second) (1: the two best classes tie);
- disagreement: the Jensen-Shannon divergence of two predictions (Co2S's students, or an EMA teacher and its
  student) or of the TTA views, over its maximum (see suggest.scorer), blended like the probabilities.
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("entropy", "margin", "disagreement", "hybrid", "random")
COMPONENTS = ("entropy", "margin", "disagreement")


def entropy(probs: np.ndarray) -> np.ndarray:
    """(K, h, w) probabilities -> (h, w) normalized entropy."""
    k = probs.shape[0]
    p = np.clip(probs, 1e-12, 1.0)
    h = -(p * np.log(p)).sum(axis=0)
    return (h / np.log(k)).astype(np.float32) if k > 1 else np.zeros(probs.shape[1:], np.float32)


def margin(probs: np.ndarray) -> np.ndarray:
    """(K, h, w) -> (h, w): 1 minus the gap between the two most probable classes."""
    if probs.shape[0] < 2:
        return np.zeros(probs.shape[1:], np.float32)
    top2 = np.partition(probs, probs.shape[0] - 2, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def components(probs: np.ndarray, disagreement: np.ndarray | None) -> dict[str, np.ndarray]:
    out = {"entropy": entropy(probs), "margin": margin(probs)}
    if disagreement is not None:
        out["disagreement"] = np.clip(disagreement, 0.0, 1.0).astype(np.float32)
    return out


def combine(parts: dict[str, np.ndarray], strategy: str) -> np.ndarray:
    """The score a strategy ranks by. hybrid: the mean of entropy and disagreement (what the model does not
    know, and where its two views of it differ). random scores nothing (selection draws at random)."""
    if strategy in ("entropy", "margin", "disagreement"):
        return parts[strategy]
    if strategy == "hybrid":
        return (parts["entropy"] + parts["disagreement"]) / 2
    if strategy == "random":
        return np.zeros_like(parts["entropy"])
    raise ValueError(f"unknown strategy {strategy!r}")


def needs_disagreement(strategy: str) -> bool:
    return strategy in ("disagreement", "hybrid")
