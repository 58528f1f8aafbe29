"""Pick `budget` windows that are uncertain AND diverse, never overlapping each other.

Uncertainty alone picks the same confusing thing ten times (ten neighbouring windows of one river bank); the
selection is therefore the greedy "uncertainty-weighted core-set": the pool of the most uncertain eligible
windows is scanned, and each pick maximizes

    gain = score / max score  x  (distance to the nearest labeled or picked window / its maximum) ** diversity

where the distance mixes feature space (pooled backbone features, L2-normalized) and space (window centres
over the scene diagonal; other scenes count as far). `diversity` 0 is plain top-N uncertainty. A window that
overlaps a pick leaves the pool, so picks never overlap; when the pool runs dry the next best eligible windows
fill the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pool:
    """Eligible windows of all scenes, flattened."""

    scene: np.ndarray  # (N,) scene index
    rows: np.ndarray
    cols: np.ndarray
    size: int
    score: np.ndarray  # (N,) the ranking score (uncertainty x valid fraction)
    diagonal: np.ndarray  # (N,) diagonal of the window's scene, in px
    base: np.ndarray | None = None  # (N,) mean per-pixel score of the window
    share: np.ndarray | None = None  # (N,) its valid fraction

    def __len__(self) -> int:
        return len(self.score)

    def overlaps(self, i: int) -> np.ndarray:
        return (
            (self.scene == self.scene[i])
            & (np.abs(self.rows - self.rows[i]) < self.size)
            & (np.abs(self.cols - self.cols[i]) < self.size)
        )

    def spatial_distance(self, i: int) -> np.ndarray:
        d = np.hypot(self.rows - self.rows[i], self.cols - self.cols[i]) / self.diagonal
        return np.where(self.scene == self.scene[i], np.minimum(d, 1.0), 1.0)


def top_pool(score: np.ndarray, size: int) -> np.ndarray:
    """Indices of the `size` best scores, best first (stable for ties: earlier windows first)."""
    order = np.argsort(-score, kind="stable")
    return order[:size]


def select(
    pool: Pool,
    budget: int,
    eligible: np.ndarray,
    features: np.ndarray | None = None,
    known: np.ndarray | None = None,
    diversity: float = 1.0,
    feature_weight: float = 0.7,
) -> list[int]:
    """Indices into `pool` of the picks, in pick order. `eligible` (N,) bool: windows that may be picked;
    `features` (N, D) of the pool's windows; `known` indices of pool windows already labeled (ineligible,
    but they count as picked for the distance, so picks go where the labels are not)."""
    n = len(pool)
    available = np.asarray(eligible, bool).copy()
    unit = _unit(features) if features is not None else None

    def distance(i: int) -> np.ndarray:
        d = pool.spatial_distance(i)
        if unit is not None:
            d = feature_weight * np.linalg.norm(unit - unit[i], axis=1) / 2 + (1 - feature_weight) * d
        return d

    # Distance of every window to the nearest labeled / picked one; inf: nothing yet (score decides alone).
    nearest = np.full(n, np.inf)
    for i in known if known is not None else []:
        nearest = np.minimum(nearest, distance(int(i)))
    top = float(pool.score[available].max()) if available.any() else 0.0
    best = top if top > 0 else 1.0
    picks: list[int] = []
    while len(picks) < budget and available.any():
        gain = pool.score / best
        if diversity > 0 and np.isfinite(nearest[available]).any():
            spread = nearest / max(float(nearest[available].max()), 1e-12)
            gain = gain * np.power(np.clip(spread, 0.0, 1.0), diversity)
        i = int(np.flatnonzero(available)[np.argmax(gain[available])])
        picks.append(i)
        available &= ~pool.overlaps(i)
        nearest = np.minimum(nearest, distance(i))
    return picks


def random_picks(pool: Pool, budget: int, eligible: np.ndarray, rng: np.random.Generator) -> list[int]:
    """The baseline: eligible windows in random order, skipping those that overlap an earlier pick."""
    available = np.asarray(eligible, bool).copy()
    picks: list[int] = []
    for i in rng.permutation(np.flatnonzero(available)):
        if len(picks) == budget:
            break
        if available[i]:
            picks.append(int(i))
            available &= ~pool.overlaps(int(i))
    return picks


def nearest_distance(features: np.ndarray, known: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per row of `features`, the distance to the nearest row of `known` (unit vectors, over 2, so in [0, 1]),
    over the largest one: 1 = the least like anything labeled. In chunks, so memory stays bounded."""
    a, b = _unit(features), _unit(known)
    out = np.empty(len(a))
    for i in range(0, len(a), chunk):
        out[i : i + chunk] = np.sqrt(np.clip(2.0 - 2.0 * (a[i : i + chunk] @ b.T), 0.0, 4.0)).min(axis=1) / 2
    return out / max(float(out.max()), 1e-12) if len(out) else out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
    """Cluster labels of the rows of `x` (k-means++ seeding, Lloyd iterations), vectorized."""
    n = len(x)
    k = max(1, min(k, n))
    centres = [x[rng.integers(n)]]
    nearest = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = nearest.sum()
        i = int(rng.choice(n, p=nearest / total)) if total > 0 else int(rng.integers(n))
        centres.append(x[i])
        nearest = np.minimum(nearest, ((x - x[i]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.zeros(n, int)
    for _ in range(iterations):
        d = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
        new = d.argmin(1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def typicality(x: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """Inverse mean distance to the nearest `neighbours` rows (TypiClust's density): high = typical."""
    if len(x) < 2:
        return np.ones(len(x))
    d = np.sqrt(np.clip((x**2).sum(1)[:, None] - 2 * x @ x.T + (x**2).sum(1)[None, :], 0, None))
    k = min(neighbours, len(x) - 1)
    near = np.partition(d, k, axis=1)[:, 1 : k + 1]  # column 0 is the row itself
    return 1.0 / (near.mean(1) + 1e-12)


def select_clusters(
    pool: Pool,
    budget: int,
    eligible: np.ndarray,
    features: np.ndarray,
    known: np.ndarray,
    rng: np.random.Generator,
    uncertainty_weight: float = 1.0,
) -> list[int]:
    """Low-budget batch selection: cluster the windows (eligible and labeled) into |labeled| + budget groups;
    visit the groups no labeled window falls in, largest first (what the labels do not cover yet), then the
    rest; from each take the window with the best typicality x uncertainty^uncertainty_weight (both relative
    to the group's best). With a few labels, typical windows of uncovered groups teach more than the most
    confusing ones (Hacohen et al. 2022, TypiClust); uncertainty decides within a group."""
    unit = _unit(features)
    labels = kmeans(unit, len(known) + budget, rng)
    covered = set(labels[known].tolist())
    sizes = np.bincount(labels[eligible], minlength=labels.max() + 1)
    order = sorted((c for c in range(len(sizes)) if sizes[c]), key=lambda c: (c in covered, -sizes[c]))
    available = np.asarray(eligible, bool).copy()
    picks: list[int] = []
    while len(picks) < budget and available.any():
        progressed = False
        for c in order:
            if len(picks) == budget:
                break
            members = np.flatnonzero(available & (labels == c))
            if not len(members):
                continue
            typical = typicality(unit[members])
            score = pool.score[members]
            gain = typical / typical.max() * np.power(score / max(score.max(), 1e-12), uncertainty_weight)
            i = int(members[np.argmax(gain)])
            picks.append(i)
            available &= ~pool.overlaps(i)
            progressed = True
        if not progressed:
            break
    return picks
