"""Candidate windows of one scene and what the stream tells about each: their per-pixel uncertainty summed
over the window, their valid pixels, their predicted class pixels.

Candidates are the windows `rsseg tile` would cut (the dataset's chip size, stride and edge policy), so a
suggested square becomes exactly one chip when it is labeled and tiled again. The stream hands finished rows
of a column band to `add`; each quantity is summed over the blocks between consecutive window edges
(np.add.reduceat on both axes), and a window's sum is read from the running sums of those few blocks: no
per-window loop, and memory in blocks, never in pixels of the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsseg_cli.geo.grid import EdgePolicy, axis_starts
from rsseg_cli.suggest.scores import COMPONENTS, combine, components


@dataclass
class SceneCandidates:
    scene: str
    height: int
    width: int
    size: int
    rows: np.ndarray  # (N,) top row of each window
    cols: np.ndarray  # (N,) left column
    num_classes: int
    strategy: str
    valid: np.ndarray = field(init=False)  # (N,) valid pixels inside the window
    sums: dict[str, np.ndarray] = field(init=False)  # component -> (N,) sum over valid pixels
    class_pixels: np.ndarray = field(init=False)  # (N, K) valid pixels predicted as each class
    has_disagreement: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        n = len(self.rows)
        self.valid = np.zeros(n, np.float64)
        self.sums = {k: np.zeros(n, np.float64) for k in (*COMPONENTS, "score")}
        self.class_pixels = np.zeros((n, self.num_classes), np.int64)

    @classmethod
    def grid(
        cls, scene: str, height: int, width: int, size: int, stride: int, edge: EdgePolicy, num_classes: int,
        strategy: str,
    ) -> SceneCandidates:  # fmt: skip
        rows = np.asarray(axis_starts(height, size, stride, edge), np.int64)
        cols = np.asarray(axis_starts(width, size, stride, edge), np.int64)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        return cls(scene, height, width, size, rr.ravel(), cc.ravel(), num_classes, strategy)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def valid_fraction(self) -> np.ndarray:
        return self.valid / float(self.size * self.size)

    def mean(self, name: str) -> np.ndarray:
        """Mean of a component (or 'score') over each window's valid pixels."""
        return self.sums[name] / np.maximum(self.valid, 1.0)

    def class_shares(self) -> np.ndarray:
        return self.class_pixels / np.maximum(self.valid, 1.0)[:, None]

    def add(self, r0: int, r1: int, c0: int, c1: int, probs: np.ndarray, valid: np.ndarray,
            disagreement: np.ndarray | None) -> np.ndarray:  # fmt: skip
        """Rows [r0, r1) x columns [c0, c1) of the scene: blended probabilities (K, h, w), validity (h, w) and
        the blended disagreement (h, w) or None. Returns the per-pixel score (NaN where invalid)."""
        parts = components(probs, disagreement)
        self.has_disagreement = self.has_disagreement or disagreement is not None
        score = combine(parts, self.strategy) if disagreement is not None or self.strategy in (
            "entropy", "margin", "random") else parts["entropy"]  # fmt: skip
        hit = np.flatnonzero(
            (self.rows < r1) & (self.rows + self.size > r0) & (self.cols < c1) & (self.cols + self.size > c0)
        )
        if hit.size:
            ra, rb = np.maximum(self.rows[hit], r0) - r0, np.minimum(self.rows[hit] + self.size, r1) - r0
            ca, cb = np.maximum(self.cols[hit], c0) - c0, np.minimum(self.cols[hit] + self.size, c1) - c0
            row_edges = np.unique(np.concatenate([[0], ra, rb]))
            col_edges = np.unique(np.concatenate([[0], ca, cb]))
            index = (np.searchsorted(row_edges, ra), np.searchsorted(row_edges, rb),
                     np.searchsorted(col_edges, ca), np.searchsorted(col_edges, cb))  # fmt: skip
            v = valid.astype(np.float32)

            def window_sums(q: np.ndarray) -> np.ndarray:
                return _window_sums(q, row_edges, col_edges, index)

            self.valid[hit] += window_sums(v)
            for name, values in (*parts.items(), ("score", score)):
                self.sums[name][hit] += window_sums(values * v)
            predicted = probs.argmax(axis=0)
            for k in range(self.num_classes):
                self.class_pixels[hit, k] += np.rint(window_sums((predicted == k) & valid)).astype(np.int64)
        return np.where(valid, score, np.nan).astype(np.float32)


def _window_sums(q: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray, index: tuple) -> np.ndarray:
    """Sum of q over each window [ra, rb) x [ca, cb), given as block indices between the edges."""
    h, w = q.shape
    rows, cols = row_edges[row_edges < h], col_edges[col_edges < w]
    blocks = np.add.reduceat(np.add.reduceat(q.astype(np.float64), cols, axis=1), rows, axis=0)
    integral = np.zeros((blocks.shape[0] + 1, blocks.shape[1] + 1))
    integral[1:, 1:] = blocks.cumsum(0).cumsum(1)
    ia, ib, ja, jb = index
    return integral[ib, jb] - integral[ia, jb] - integral[ib, ja] + integral[ia, ja]
