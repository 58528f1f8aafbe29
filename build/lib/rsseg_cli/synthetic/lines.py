"""Roads and rivers: polylines stored as thick segments, and distances from pixels to them.

A segment is a row (ay, ax, by, bx, half width) in global pixel coordinates.  The polylines are drawn once
per scene (small tables, kept for the whole call); each block then rasterizes only the segments whose
bounding boxes touch it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from rsseg_cli.synthetic.spectra import ROW

__all__ = ["make_rivers", "make_roads", "segment_dist_min", "segment_hits"]


def _segments_from_polyline(pts: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(n, 2) vertices and (n - 1,) half widths -> (n - 1, 5) segments (ay, ax, by, bx, half)."""
    return np.column_stack([pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1], half])


def make_roads(h: int, w: int, kb: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Several long roads from one scene edge to another, each 1-3 straight legs, 4-12 px wide."""
    n = max(3 if min(h, w) >= 512 else 2, round((h + w) / 1100))  # tiny scenes: fewer, not wall-to-wall
    segs, rows = [], []

    def edge_point(side: int) -> np.ndarray:
        t = rng.uniform(0.05, 0.95)
        pad = 0.02 * max(h, w)  # start slightly outside so that the road reaches the edge
        return np.array([[-pad, t * w], [t * h, w + pad], [h + pad, t * w], [t * h, -pad]][side])

    for _ in range(n):
        side_a = int(rng.integers(4))
        side_b = (side_a + 2) % 4 if rng.random() < 0.65 else (side_a + int(rng.choice([1, 3]))) % 4
        a, b = edge_point(side_a), edge_point(side_b)
        nbend = int(rng.integers(0, 3))
        length = float(np.hypot(*(b - a)))
        normal = np.array([-(b - a)[1], (b - a)[0]]) / max(length, 1e-9)
        fr = np.sort(rng.uniform(0.2, 0.8, nbend))
        mids = [a + f * (b - a) + normal * rng.normal(0.0, 0.07 * length) for f in fr]
        pts = np.array([a, *mids, b])
        width = max(float(rng.uniform(4.0, 12.0)) * kb, 3.0)
        segs.append(_segments_from_polyline(pts, np.full(len(pts) - 1, width / 2)))
        gravel = width < 6.5 and rng.random() < 0.5  # narrow roads are often gravel tracks
        rows.append(np.full(len(pts) - 1, ROW["road_gravel" if gravel else "road"]))
    return np.concatenate(segs), np.concatenate(rows)


def make_rivers(h: int, w: int, k: float, rng: np.random.Generator) -> np.ndarray:
    """One or two meandering rivers crossing the scene, as short thick segments."""
    n = 1 if max(h, w) < 3000 else 2
    step = max(32.0 * k, 6.0)
    segs = []
    for _ in range(n):
        across = rng.random() < 0.5  # flows left->right or top->bottom
        main = rng.uniform(-0.45, 0.45) + (0.0 if across else np.pi / 2)
        start = (
            np.array([rng.uniform(0.15, 0.85) * h, -step])
            if across
            else np.array([-step, rng.uniform(0.15, 0.85) * w])
        )
        width0 = max(float(rng.uniform(14.0, 26.0)) * k, 4.0)
        phi, psi, chi = rng.uniform(0, 2 * np.pi, 3)
        pts, halves = [start], []
        p = start
        for _ in range(int(6 * (h + w) / step)):
            # Meander phase with random speed, a slowly varying meander amplitude and a little jitter.
            phi += rng.uniform(0.12, 0.35)
            psi += rng.uniform(0.02, 0.08)
            chi += rng.uniform(0.01, 0.05)
            theta = main + (0.75 + 0.35 * np.sin(chi)) * np.sin(phi) + rng.normal(0.0, 0.05)
            p = p + step * np.array([np.sin(theta), np.cos(theta)])
            pts.append(p)
            halves.append(width0 * (1.0 + 0.25 * np.sin(psi)) / 2)
            if not (-2 * step <= p[0] <= h + 2 * step and -2 * step <= p[1] <= w + 2 * step):
                break
        segs.append(_segments_from_polyline(np.array(pts), np.array(halves)))
    return np.concatenate(segs)


def segment_dist_min(segs: np.ndarray, py: np.ndarray, px: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Minimum distance from points to any segment minus its half width (<= 0 inside)."""
    best = np.full(py.shape, np.inf)
    for s in range(0, len(segs), chunk):
        ay, ax, by, bx, r = (segs[s : s + chunk, i][None, :] for i in range(5))
        dy, dx = by - ay, bx - ax
        l2 = np.maximum(dy * dy + dx * dx, 1e-9)
        t = np.clip(((py[:, None] - ay) * dy + (px[:, None] - ax) * dx) / l2, 0.0, 1.0)
        d = np.hypot(py[:, None] - ay - t * dy, px[:, None] - ax - t * dx) - r
        best = np.minimum(best, d.min(axis=1))
    return best


def segment_hits(
    segs: np.ndarray, y0: int, x0: int, h: int, w: int
) -> Iterator[tuple[int, slice, slice, np.ndarray]]:
    """Yield (segment index, row slice, col slice, hit mask) for the segments that touch the block.

    Distances are computed only in each segment's bounding box (expanded by its half width) clipped to the
    block, so many short river segments stay cheap.
    """
    ay, ax, by, bx, r = segs.T
    ymin, ymax = np.minimum(ay, by) - r, np.maximum(ay, by) + r
    xmin, xmax = np.minimum(ax, bx) - r, np.maximum(ax, bx) + r
    sel = np.nonzero((ymax >= y0) & (ymin < y0 + h) & (xmax >= x0) & (xmin < x0 + w))[0]
    for i in sel:
        ry0, ry1 = max(math.floor(ymin[i]), y0), min(math.ceil(ymax[i]) + 1, y0 + h)
        rx0, rx1 = max(math.floor(xmin[i]), x0), min(math.ceil(xmax[i]) + 1, x0 + w)
        if ry0 >= ry1 or rx0 >= rx1:
            continue
        yy = (np.arange(ry0, ry1) + 0.5)[:, None] - ay[i]
        xx = (np.arange(rx0, rx1) + 0.5)[None, :] - ax[i]
        dy, dx = by[i] - ay[i], bx[i] - ax[i]
        l2 = max(dy * dy + dx * dx, 1e-9)
        t = np.clip((yy * dy + xx * dx) / l2, 0.0, 1.0)
        d2 = (yy - t * dy) ** 2 + (xx - t * dx) ** 2
        yield int(i), slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0), d2 <= r[i] * r[i]
