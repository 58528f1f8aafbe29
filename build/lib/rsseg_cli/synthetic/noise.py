"""Hash-based value noise evaluated from global pixel coordinates.

Values on integer lattices come from *hashing* the lattice coordinates, so any block of the scene can
evaluate any lattice point without a stored low-resolution grid, and block seams are invisible.  They are
interpolated bilinearly with smoothstep weights (C1, so a hillshade computed from elevation derivatives
shows no lattice lines).  All arithmetic is fixed (uint64 hashing, float32 interpolation): changing it
changes every generated scene.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fbm", "key", "noise_grid", "noise_pts"]

_MASK64 = (1 << 64) - 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PY = np.uint64(0x9E3779B97F4A7C15)
_PX = np.uint64(0xC2B2AE3D27D4EB4F)


def key(*parts: int) -> int:
    """Mix integers into a 64-bit key (splitmix64 in Python ints; no overflow warnings)."""
    h = 0x243F6A8885A308D3
    for p in parts:
        h = ((h ^ (p & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h


def _lattice(k: int, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) at integer lattice points (broadcast iy, ix); a pure hash of the point."""
    z = iy.astype(np.uint64) * _PY + ix.astype(np.uint64) * _PX + np.uint64(k)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _lattice_coords(k: int, c: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    # A per-key offset so that octaves/fields do not share lattice lines at the scene origin.
    off = (k >> 20) % 100003 / 100003.0 * 997.0
    f = c / cell + off
    i = np.floor(f)
    return i.astype(np.int64), _fade(f - i).astype(np.float32)


def noise_grid(k: int, ys: np.ndarray, xs: np.ndarray, cell: float) -> np.ndarray:
    """Value noise on the grid ys x xs (ascending global pixel coordinates) -> float32 (len(ys), len(xs))."""
    iy, wy = _lattice_coords(k, ys, cell)
    ix, wx = _lattice_coords(k, xs, cell)
    i0, j0 = int(iy[0]), int(ix[0])
    lat = _lattice(k, np.arange(i0, int(iy[-1]) + 2)[:, None], np.arange(j0, int(ix[-1]) + 2)[None, :])
    jx = ix - j0
    a = lat[:, jx]
    tmp = a + (lat[:, jx + 1] - a) * wx  # interpolate along x on the few lattice rows first (separable)
    iyl = iy - i0
    top = tmp[iyl]
    return top + (tmp[iyl + 1] - top) * wy[:, None]


def noise_pts(k: int, py: np.ndarray, px: np.ndarray, cell: float) -> np.ndarray:
    """The same value noise at scattered points (used for per-object decisions in the global tables)."""
    iy, wy = _lattice_coords(k, py, cell)
    ix, wx = _lattice_coords(k, px, cell)
    v00, v01 = _lattice(k, iy, ix), _lattice(k, iy, ix + 1)
    v10, v11 = _lattice(k, iy + 1, ix), _lattice(k, iy + 1, ix + 1)
    top = v00 + (v01 - v00) * wx
    bot = v10 + (v11 - v10) * wx
    return top + (bot - top) * wy


def fbm(
    k: int, ys: np.ndarray, xs: np.ndarray, cells: list[float], amps: list[float], pts: bool = False
) -> np.ndarray:
    """Sum of octaves, normalised by the amplitude sum (values roughly in [-0.7, 0.7]).

    On the grid ys x xs, or at the points (ys[i], xs[i]) when `pts`.
    """
    fn = noise_pts if pts else noise_grid
    out = None
    for o, (c, a) in enumerate(zip(cells, amps, strict=True)):
        n = fn(key(k, o), ys, xs, c)
        n *= np.float32(a)
        out = n if out is None else out + n
    return out / np.float32(sum(amps))
