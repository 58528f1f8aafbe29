"""Scenes shaped like the ones users bring: a Landsat-style clip whose tilted footprint leaves a zero collar
and carries no nodata tag, and normal scenes of the same texture without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import write_raster


def footprint(h: int, w: int, angle_deg: float = 12.0, fill: float = 0.93) -> np.ndarray:
    """True inside a rotated rectangle centred in an (h, w) grid, like a WRS-2 path/row inside its UTM box."""
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.deg2rad(angle_deg)
    dr, dc = rows - (h - 1) / 2, cols - (w - 1) / 2
    u = dc * np.cos(a) + dr * np.sin(a)
    v = -dc * np.sin(a) + dr * np.cos(a)
    return (np.abs(u) < fill * w / 2) & (np.abs(v) < fill * h / 2)


def texture(h: int, w: int, bands: int, dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """Reflectance-like values (7000..20000 as Landsat Collection 2 DNs), never 0, different per band."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(rows / (7 + 2 * b)) + np.cos(cols / (11 + b)) for b in range(bands)])
    data = 12000 + 2500 * base + rng.normal(0, 300, (bands, h, w)) + 800 * np.arange(bands)[:, None, None]
    return np.clip(data, 7000, 20000).astype(dtype)


def landsat_clip(path: Path, h: int = 200, w: int = 240, bands: int = 4, dtype: str = "uint16", **kw) -> Path:
    """A tilted footprint with a zero fill collar (~16 % of the pixels) and no nodata tag."""
    data = texture(h, w, bands, dtype)
    data[:, ~footprint(h, w)] = 0
    return write_raster(path, data, **kw)


def collar_share(h: int = 200, w: int = 240) -> float:
    return float(1.0 - footprint(h, w).mean())
