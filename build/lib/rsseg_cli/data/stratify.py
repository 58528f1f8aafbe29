"""Giving units (labeled regions, blocks or scenes) to splits so that each split gets its share of every class.

Two stages. First the guarantees a few labels need: train holds every class, val every class with at least two
units, test every class with at least three (rarest classes first, train before val before test, so a unit
picked for a rare class is never taken from train). Then the remaining units go, rarest classes first, to the
split that most needs what they hold (a simple iterative stratification).
"""

from __future__ import annotations

import numpy as np

# The minimum number of units of a class for a split to be promised one of them.
PROMISED = {"train": 1, "val": 2, "test": 3}


def promise_classes(
    classes: np.ndarray, fractions: dict[str, float], rng: np.random.Generator
) -> dict[int, str]:
    """Units chosen so that each split holds the classes it is promised. `classes`: (units, classes) pixels."""
    present = classes > 0
    holders = present.sum(axis=0)
    totals = classes.sum(axis=0)
    tiebreak = rng.random(len(classes))
    order = [k for k in np.lexsort((totals, holders)) if holders[k] > 0]  # rarest classes first
    chosen: dict[int, str] = {}
    for split in ("train", "val", "test"):
        if fractions.get(split, 0) <= 0:
            continue
        for k in order:
            if holders[k] < PROMISED[split]:
                continue
            units = np.flatnonzero(present[:, k])
            if any(chosen.get(int(u)) == split for u in units):
                continue
            free = [int(u) for u in units if int(u) not in chosen]
            if not free:
                continue
            pixels = classes[free, k].astype(np.float64)
            # Train gets the largest region of the class, val and test the one closest to their share.
            cost = -pixels if split == "train" else np.abs(pixels - fractions[split] * totals[k])
            pick = free[int(np.lexsort((tiebreak[free], cost))[0])]
            chosen[pick] = split
    return chosen


def stratify(
    units: list[np.ndarray],
    fractions: dict[str, float],
    rng: np.random.Generator,
    stratify: bool,
    fixed: dict[int, str] | None = None,
) -> list[str]:
    """Give each unit to the split that most needs what it holds; `fixed` units keep their split.

    Units holding the rarest classes go first, so rare classes are spread before common ones fill the splits.
    """
    fixed = fixed or {}
    names = list(fractions)
    target = np.array([fractions[s] for s in names])
    vecs = np.stack(units).astype(np.float64)
    if not stratify:
        vecs = vecs[:, -1:]
    totals = vecs.sum(axis=0)
    totals[totals == 0] = 1.0
    shares = vecs / totals
    rarity = np.where(vecs > 0, totals, np.inf).min(axis=1)
    order = np.lexsort((rng.random(len(units)), rarity))
    have = np.zeros((len(names), vecs.shape[1]))
    choice = [""] * len(units)
    for u, s in fixed.items():
        choice[u] = s
        have[names.index(s)] += shares[u]
    for u in order:
        if choice[u]:
            continue
        weight = shares[u]
        need = target[:, None] - have  # (splits, entries): how far each split is below its target share
        score = (need * weight).sum(axis=1) / max(weight.sum(), 1e-12)
        s = int(np.argmax(score))
        have[s] += shares[u]
        choice[u] = names[s]
    # Every split asked for gets at least one unit, taken from the largest split (never a promised unit).
    for s in names:
        if s not in choice and len(units) > len(set(choice)):
            counts = {n: choice.count(n) for n in names}
            donor = max(counts, key=counts.get)
            candidates = [i for i, c in enumerate(choice) if c == donor and i not in fixed]
            if not candidates or counts[donor] < 2:
                continue
            pick = min(candidates, key=lambda i: (abs(vecs[i, -1] - np.median(vecs[candidates, -1])), i))
            choice[pick] = s
    return choice
