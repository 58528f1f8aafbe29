"""Deterministic synthetic multispectral scene plus label raster, for the demo, the tests and benchmarks.

The landscape (lakes and rivers, forest, grassland, bare soil, agricultural parcels, towns with buildings
and streets, a road network) is a pure function of the arguments and of *global* pixel coordinates.  The
scene is rendered and written in 512 x 512 blocks on a fixed grid, so:

* nothing of full-scene size is ever allocated (the benchmark scene is 20000 x 20000 x 4 uint16 = 3.2 GB);
* the output does not depend on block order, and smooth fields are continuous across block seams;
* only small global tables (parcels, building cells, road and river polylines) live for the whole call.

Smooth fields are value noise: pseudo-random values on integer lattices obtained by *hashing* the lattice
coordinates (so any block can evaluate any lattice point without a stored low-resolution grid) and
interpolated bilinearly with smoothstep weights (C1, so the hillshade computed from elevation derivatives
shows no lattice lines).  Per-pixel sensor noise comes from ``np.random.default_rng([seed, row, col])``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from rsseg_cli.data.classes import CLASS_TAG
from rsseg_cli.errors import UserError

__all__ = ["SAMPLE_CLASSES", "SampleScene", "generate_sample", "sample_total_blocks"]

SAMPLE_CLASSES: list[dict] = [
    {
        "id": 0,
        "name": "water",
        "color": "#1f78b4",
        "concepts": ["water", "lake", "river", "pond", "reservoir"],
    },
    {
        "id": 1,
        "name": "forest",
        "color": "#1b5e20",
        "concepts": ["forest", "woodland", "trees", "tree canopy", "woods"],
    },
    {
        "id": 2,
        "name": "grassland",
        "color": "#9ccc65",
        "concepts": ["grassland", "meadow", "pasture", "lawn", "grass"],
    },
    {
        "id": 3,
        "name": "cropland",
        "color": "#ffd54f",
        "concepts": ["cropland", "farmland", "agricultural field", "crop field", "arable land"],
    },
    {
        "id": 4,
        "name": "bare_soil",
        "color": "#a1887f",
        "concepts": ["bare soil", "bare ground", "exposed earth", "sand", "fallow field"],
    },
    {
        "id": 5,
        "name": "building",
        "color": "#e53935",
        "concepts": ["building", "house", "roof", "rooftop", "built-up area"],
    },
    {
        "id": 6,
        "name": "road",
        "color": "#616161",
        "concepts": ["road", "street", "highway", "asphalt", "paved road"],
    },
]

WATER, FOREST, GRASS, CROP, BARE, BUILDING, ROAD = range(7)
LABEL_NODATA = 255
BLOCK = 512  # render/write block and GeoTIFF tile size; blocks sit on a fixed grid anchored at (0, 0)


@dataclass(frozen=True)
class SampleScene:
    scene: Path  # the image GeoTIFF
    labels: Path  # the label GeoTIFF (uint8 class ids, nodata 255)


def sample_total_blocks(height: int, width: int) -> int:
    """Number of blocks (and on_block calls) generate_sample uses for a scene of this size."""
    return math.ceil(height / BLOCK) * math.ceil(width / BLOCK)


# --------------------------------------------------------------------------------------------------
# Spectra.  Reflectance (0..1) at (blue, green, red, nir, swir1, swir2); other bands are interpolated.
# --------------------------------------------------------------------------------------------------
_WL = np.array([490.0, 560.0, 665.0, 842.0, 1610.0, 2190.0])
_BAND_WL = {"blue": 490.0, "green": 560.0, "red": 665.0, "nir": 842.0, "swir1": 1610.0, "swir2": 2190.0}
_BAND_ORDER = ["red", "green", "blue", "nir", "swir1", "swir2"]

# Rows of the spectra table.  0..6 are the class means; the others are variants used by objects.
_SPECTRA: dict[str, tuple[list[float], list[float]]] = {
    # name: (mean, variation direction scaled by a regional field t in [-1, 1])
    "water": ([0.042, 0.040, 0.022, 0.012, 0.006, 0.004], [0.010, 0.016, 0.012, 0.005, 0.002, 0.001]),
    "forest": ([0.022, 0.045, 0.026, 0.290, 0.140, 0.062], [0.004, 0.010, 0.004, 0.070, 0.030, 0.012]),
    "grass": ([0.040, 0.078, 0.058, 0.280, 0.225, 0.125], [0.008, 0.008, 0.020, -0.050, 0.035, 0.035]),
    "crop": ([0.035, 0.075, 0.040, 0.420, 0.220, 0.100], [0.0] * 6),
    "bare": ([0.095, 0.128, 0.158, 0.230, 0.320, 0.270], [0.030, 0.035, 0.045, 0.050, 0.050, 0.045]),
    "building": ([0.150, 0.160, 0.170, 0.200, 0.230, 0.210], [0.0] * 6),
    "road": ([0.070, 0.075, 0.080, 0.092, 0.110, 0.100], [0.006, 0.006, 0.006, 0.006, 0.008, 0.008]),
    "river": ([0.048, 0.056, 0.040, 0.022, 0.010, 0.006], [0.010, 0.015, 0.015, 0.006, 0.002, 0.001]),
    "roof_tile": ([0.055, 0.070, 0.190, 0.270, 0.300, 0.230], [0.0] * 6),
    "roof_grey": ([0.150, 0.160, 0.170, 0.200, 0.230, 0.210], [0.0] * 6),
    "roof_white": ([0.420, 0.440, 0.450, 0.470, 0.430, 0.380], [0.0] * 6),
    "roof_dark": ([0.065, 0.068, 0.072, 0.085, 0.095, 0.090], [0.0] * 6),
    "roof_metal": ([0.140, 0.150, 0.145, 0.160, 0.150, 0.130], [0.0] * 6),
    "road_gravel": ([0.130, 0.142, 0.155, 0.185, 0.225, 0.205], [0.010] * 6),
    "street": ([0.095, 0.100, 0.105, 0.115, 0.130, 0.120], [0.006] * 6),
}
_ROW = {name: i for i, name in enumerate(_SPECTRA)}
_ROOFS = ["roof_tile", "roof_grey", "roof_white", "roof_dark", "roof_metal"]
_ROOF_P = [0.36, 0.24, 0.12, 0.18, 0.10]
_ROOF_PITCHED = np.array([True, True, False, True, False])
_N_FIXED = len(_SPECTRA)

# Crop stages an agricultural sub-parcel is drawn from (class, spectrum, row-stripe amplitude range).
_CROP_STAGES: list[tuple[int, list[float], tuple[float, float], float]] = [
    # (class, mean spectrum, stripe amplitude range, probability)
    (CROP, [0.030, 0.075, 0.035, 0.450, 0.210, 0.090], (0.03, 0.08), 0.40),  # green, dense
    (CROP, [0.060, 0.105, 0.120, 0.320, 0.310, 0.210], (0.02, 0.05), 0.18),  # ripening / yellow
    (CROP, [0.060, 0.092, 0.090, 0.320, 0.265, 0.180], (0.10, 0.18), 0.12),  # young rows on soil
    (CROP, [0.080, 0.110, 0.125, 0.250, 0.300, 0.235], (0.04, 0.08), 0.06),  # stubble after harvest
    (GRASS, [0.038, 0.082, 0.052, 0.330, 0.220, 0.115], (0.00, 0.02), 0.12),  # meadow
    (BARE, [0.068, 0.090, 0.108, 0.190, 0.280, 0.245], (0.03, 0.07), 0.12),  # ploughed / fallow
]

# Per-class texture amplitudes (fine canopy-scale, medium, regional) of the multiplicative brightness.
_TEX = np.array(
    [
        [0.010, 0.030, 0.10],  # water: smooth
        [0.220, 0.100, 0.12],  # forest: rough canopy
        [0.040, 0.070, 0.12],  # grassland
        [0.030, 0.050, 0.06],  # cropland
        [0.050, 0.090, 0.12],  # bare soil
        [0.015, 0.000, 0.04],  # building
        [0.030, 0.020, 0.05],  # road
    ],
    dtype=np.float32,
)


def _band_names(bands: int) -> list[str]:
    return [_BAND_ORDER[i] if i < 6 else f"b{i + 1}" for i in range(bands)]


def _band_wavelengths(bands: int) -> np.ndarray:
    """Centre wavelengths: the six named bands, then red-edge-like and further bands for the b7.. extras."""
    wl = [_BAND_WL[n] for n in _BAND_ORDER[: min(bands, 6)]]
    extra = bands - len(wl)
    if extra > 0:
        seq = [705.0, 740.0, 783.0, 865.0, 945.0]
        more = list(np.linspace(1000.0, 2100.0, max(extra - len(seq), 0)))
        wl += (seq + more)[:extra]
    return np.array(wl)


def _to_bands(spec: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """Resample (..., 6) spectra at the output band wavelengths by linear interpolation."""
    flat = spec.reshape(-1, 6)
    out = np.stack([np.interp(wl, _WL, row) for row in flat]) if len(flat) else np.zeros((0, len(wl)))
    return out.reshape(*spec.shape[:-1], len(wl))


# --------------------------------------------------------------------------------------------------
# Hash-based value noise evaluated from global coordinates.
# --------------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PY = np.uint64(0x9E3779B97F4A7C15)
_PX = np.uint64(0xC2B2AE3D27D4EB4F)


def _key(*parts: int) -> int:
    """Mix integers into a 64-bit key (splitmix64 in Python ints; no overflow warnings)."""
    h = 0x243F6A8885A308D3
    for p in parts:
        h = ((h ^ (p & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h


def _lattice(key: int, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) at integer lattice points (broadcast iy, ix); a pure hash of the point."""
    z = iy.astype(np.uint64) * _PY + ix.astype(np.uint64) * _PX + np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 / (1 << 24)) - np.float32(1.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _lattice_coords(key: int, c: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    # A per-key offset so that octaves/fields do not share lattice lines at the scene origin.
    off = (key >> 20) % 100003 / 100003.0 * 997.0
    f = c / cell + off
    i = np.floor(f)
    return i.astype(np.int64), _fade(f - i).astype(np.float32)


def _noise_grid(key: int, ys: np.ndarray, xs: np.ndarray, cell: float) -> np.ndarray:
    """Value noise on the grid ys x xs (ascending global pixel coordinates) -> float32 (len(ys), len(xs))."""
    iy, wy = _lattice_coords(key, ys, cell)
    ix, wx = _lattice_coords(key, xs, cell)
    i0, j0 = int(iy[0]), int(ix[0])
    lat = _lattice(key, np.arange(i0, int(iy[-1]) + 2)[:, None], np.arange(j0, int(ix[-1]) + 2)[None, :])
    jx = ix - j0
    a = lat[:, jx]
    tmp = a + (lat[:, jx + 1] - a) * wx  # interpolate along x on the few lattice rows first (separable)
    iyl = iy - i0
    top = tmp[iyl]
    return top + (tmp[iyl + 1] - top) * wy[:, None]


def _noise_pts(key: int, py: np.ndarray, px: np.ndarray, cell: float) -> np.ndarray:
    """The same value noise at scattered points (used for per-object decisions in the global tables)."""
    iy, wy = _lattice_coords(key, py, cell)
    ix, wx = _lattice_coords(key, px, cell)
    v00, v01 = _lattice(key, iy, ix), _lattice(key, iy, ix + 1)
    v10, v11 = _lattice(key, iy + 1, ix), _lattice(key, iy + 1, ix + 1)
    top = v00 + (v01 - v00) * wx
    bot = v10 + (v11 - v10) * wx
    return top + (bot - top) * wy


def _fbm(
    key: int, ys: np.ndarray, xs: np.ndarray, cells: list[float], amps: list[float], pts: bool = False
) -> np.ndarray:
    """Sum of octaves, normalised by the amplitude sum (values roughly in [-0.7, 0.7])."""
    fn = _noise_pts if pts else _noise_grid
    out = None
    for o, (c, a) in enumerate(zip(cells, amps, strict=True)):
        n = fn(_key(key, o), ys, xs, c)
        n *= np.float32(a)
        out = n if out is None else out + n
    return out / np.float32(sum(amps))


# --------------------------------------------------------------------------------------------------
# The global layout: small tables and thresholds shared by all blocks.
# --------------------------------------------------------------------------------------------------
@dataclass
class _Layout:
    height: int
    width: int
    seed: int
    k: float  # landscape feature scale (1 for scenes >= 1024 px, smaller for tiny scenes)
    kb: float  # urban feature scale
    keys: dict[str, int]
    e_cells: list[float]
    e_amps: list[float]
    v_cells: list[float]
    v_amps: list[float]
    water_thr: float
    forest_thr: float
    bare_thr: float
    tree_thr: float
    shade_gain: float
    # agricultural parcels: horizontal strips, each cut into fields, each field cut into 1-3 sub-fields
    strip_edges: np.ndarray
    col_edges: np.ndarray
    strip_offset: np.ndarray
    parcel_ag: np.ndarray
    parcel_split: np.ndarray
    parcel_margin: np.ndarray
    sub_label: np.ndarray
    sub_row: np.ndarray
    sub_cos: np.ndarray
    sub_sin: np.ndarray
    sub_freq: np.ndarray
    sub_phase: np.ndarray
    sub_amp: np.ndarray
    # towns: city blocks of 4 x 4 building cells; streets along the city-block edges
    cell: int
    city: int
    street_w: int
    grid_off: tuple[int, int]
    block_urban: np.ndarray  # (BY + 1, BX + 1), padded so that the neighbour below/right can be looked up
    cell_tables: dict[str, np.ndarray]
    # road and river polylines as segments (ay, ax, by, bx, half width)
    roads: np.ndarray
    road_row: np.ndarray
    rivers: np.ndarray
    # nodata swath edge and haze
    wedge_t: float
    wedge_flip: tuple[bool, bool]
    haze: np.ndarray  # (bands,)
    haze_dir: tuple[float, float]
    spectra: np.ndarray  # (bands, rows) means
    spec_dir: np.ndarray  # (bands, rows) variation directions
    tex: np.ndarray  # (7, 3)


def _layout_rng(seed: int, part: int) -> np.random.Generator:
    # A distinct first word keeps these streams apart from the per-block ones ([seed, row, col]).
    return np.random.default_rng([seed, 0x5CE7E, part])


def _make_parcels(h: int, w: int, k: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    lo, hi = max(60.0 * k, 12.0), max(300.0 * k, 40.0)
    edges = [-float(rng.uniform(0, hi))]
    while edges[-1] < h:
        edges.append(edges[-1] + float(rng.uniform(lo, hi)))
    strip_edges = np.round(edges).astype(np.int64)
    cols: list[np.ndarray] = []
    for _ in range(len(strip_edges) - 1):
        xe = [-float(rng.uniform(0, hi))]
        while xe[-1] < w:
            xe.append(xe[-1] + float(rng.uniform(lo, hi)))
        cols.append(np.round(xe).astype(np.int64))
    width = max(len(c) for c in cols)
    col_edges = np.full((len(cols), width), 1 << 40, dtype=np.int64)  # sentinel beyond any scene
    for r, c in enumerate(cols):
        col_edges[r, : len(c)] = c
    counts = np.array([len(c) - 1 for c in cols])
    strip_offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # Parcel rectangles (for centres and visible areas).
    r_idx = np.repeat(np.arange(len(cols)), counts)
    c_idx = np.concatenate([np.arange(n) for n in counts])
    y0, y1 = strip_edges[r_idx], strip_edges[r_idx + 1]
    x0, x1 = col_edges[r_idx, c_idx], col_edges[r_idx, c_idx + 1]
    return {
        "strip_edges": strip_edges,
        "col_edges": col_edges,
        "strip_offset": strip_offset,
        "y0": y0,
        "y1": y1,
        "x0": x0,
        "x1": x1,
    }


def _segments_from_polyline(pts: np.ndarray, half: np.ndarray) -> np.ndarray:
    """(n, 2) vertices and (n - 1,) half widths -> (n - 1, 5) segments (ay, ax, by, bx, half)."""
    return np.column_stack([pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1], half])


def _make_roads(h: int, w: int, kb: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
        rows.append(np.full(len(pts) - 1, _ROW["road_gravel" if gravel else "road"]))
    return np.concatenate(segs), np.concatenate(rows)


def _make_rivers(h: int, w: int, k: float, rng: np.random.Generator) -> np.ndarray:
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


def _segment_dist_min(segs: np.ndarray, py: np.ndarray, px: np.ndarray, chunk: int = 256) -> np.ndarray:
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


def _build_layout(h: int, w: int, bands: int, seed: int) -> _Layout:
    k = float(np.clip(min(h, w) / 1024.0, 0.25, 1.0))
    kb = float(np.clip(min(h, w) / 1024.0, 0.5, 1.0))
    keys = {
        name: _key(seed, i)
        for i, name in enumerate(["elev", "veg", "agri", "urban", "hi", "mid", "reg", "t"])
    }
    e_cells = [c * k for c in (512.0, 256.0, 128.0, 64.0, 32.0)]
    e_amps = [1.0, 0.5, 0.25, 0.12, 0.06]
    v_cells = [max(c * k, 3.0) for c in (384.0, 192.0, 96.0, 48.0, 24.0, 12.0, 6.0)]
    v_amps = [1.0, 0.6, 0.35, 0.2, 0.12, 0.07, 0.04]

    # Thresholds from quantiles over a coarse sample of the scene, so class shares are stable for any
    # size and seed (an absolute threshold could leave a small scene without water or forest).
    st = max(1, math.ceil(math.sqrt(h * w / 262144)))
    sy, sx = np.arange(0, h, st) + 0.5, np.arange(0, w, st) + 0.5
    e_s = _fbm(keys["elev"], sy, sx, e_cells, e_amps)
    v_s = _fbm(keys["veg"], sy, sx, v_cells, v_amps)
    water_thr = float(np.quantile(e_s, 0.065))
    forest_thr = float(np.quantile(v_s, 0.42))
    bare_thr = float(np.quantile(v_s, 0.07))
    tree_thr = float(np.quantile(v_s, 0.85))  # tree clumps in town gardens
    # Hillshade gain so that the shading spread is the same whatever the feature scale k.
    gy, gx = np.gradient(e_s.astype(np.float64), st)
    slope = (gy + gx).ravel()
    shade_gain = 0.1 / max(float(np.std(slope)), 1e-9)

    rivers = _make_rivers(h, w, k, _layout_rng(seed, 4))
    roads, road_row = _make_roads(h, w, kb, _layout_rng(seed, 3))

    # --- agricultural parcels ---
    rng = _layout_rng(seed, 1)
    par = _make_parcels(h, w, k, rng)
    n_par = len(par["y0"])
    vy0, vy1 = np.clip(par["y0"], 0, h), np.clip(par["y1"], 0, h)
    vx0, vx1 = np.clip(par["x0"], 0, w), np.clip(par["x1"], 0, w)
    area = (vy1 - vy0) * (vx1 - vx0)
    cy, cx = (vy0 + vy1) / 2.0, (vx0 + vx1) / 2.0
    agri = _fbm(keys["agri"], cy, cx, [640.0 * k, 320.0 * k], [1.0, 0.5], pts=True)
    order = np.argsort(-agri, kind="stable")
    cum = np.cumsum(area[order])
    parcel_ag = np.zeros(n_par, dtype=bool)
    parcel_ag[order[cum <= 0.40 * h * w]] = True  # whole rectangles, so field edges stay straight
    hs = (par["y1"] - par["y0"]).astype(np.float64)
    split = rng.choice([1, 2, 3], size=n_par, p=[0.55, 0.3, 0.15])
    split = np.where(hs / split >= 30 * k, split, 1)
    margin = rng.choice([0, 1, 2], size=n_par, p=[0.6, 0.15, 0.25])
    n_sub = 3 * n_par
    stage_p = np.array([s[3] for s in _CROP_STAGES])
    stage = rng.choice(len(_CROP_STAGES), size=n_sub, p=stage_p / stage_p.sum())
    sub_label = np.array([s[0] for s in _CROP_STAGES], dtype=np.uint8)[stage]
    base = np.array([s[1] for s in _CROP_STAGES])[stage]
    sub_spec = base * rng.uniform(0.88, 1.12, (n_sub, 1)) * rng.uniform(0.94, 1.06, (n_sub, 6))
    amp_lo = np.array([s[2][0] for s in _CROP_STAGES])[stage]
    amp_hi = np.array([s[2][1] for s in _CROP_STAGES])[stage]
    sub_amp = rng.uniform(amp_lo, amp_hi)
    # Rows mostly run along the field's long axis (the phase below varies with y for theta = 0, giving
    # rows parallel to x); some fields are sown at an arbitrary angle.
    wide = np.repeat((par["x1"] - par["x0"]) >= (par["y1"] - par["y0"]) / split, 3)
    theta = np.where(wide, 0.0, np.pi / 2) + rng.normal(0.0, 0.03, n_sub)
    theta = np.where(rng.random(n_sub) < 0.2, rng.uniform(0, np.pi, n_sub), theta)
    period = rng.uniform(5.0, 10.0, n_sub)

    # --- towns ---
    rng = _layout_rng(seed, 2)
    cell = max(round(48 * kb), 16)
    city = 4 * cell
    street_w = max(round(7 * kb), 3)
    goy, gox = (int(v) for v in rng.integers(0, city, 2))
    n_by, n_bx = (h + goy) // city + 1, (w + gox) // city + 1
    by0 = np.arange(n_by) * city - goy
    bx0 = np.arange(n_bx) * city - gox
    bvy0, bvy1 = np.clip(by0, 0, h), np.clip(by0 + city, 0, h)
    bvx0, bvx1 = np.clip(bx0, 0, w), np.clip(bx0 + city, 0, w)
    bcy, bcx = (bvy0 + bvy1) / 2.0, (bvx0 + bvx1) / 2.0
    barea = np.outer(bvy1 - bvy0, bvx1 - bvx0).ravel().astype(np.float64)
    gcy, gcx = np.repeat(bcy, n_bx), np.tile(bcx, n_by)
    urb = _fbm(keys["urban"], gcy, gcx, [700.0 * k, 350.0 * k], [1.0, 0.4], pts=True)
    e_c = _fbm(keys["elev"], gcy, gcx, e_cells, e_amps, pts=True)
    dist_river = _segment_dist_min(rivers, gcy, gcx)
    ok = (e_c > water_thr + 0.06) & (dist_river > 0.75 * city) & (barea > 0)
    urb = np.where(ok, urb, -np.inf)
    order = np.argsort(-urb, kind="stable")
    target, cum, chosen = 0.13 * h * w, 0.0, []
    for i in order:
        if not np.isfinite(urb[i]) or cum >= target:
            break
        if cum + barea[i] <= 1.6 * target:  # tiny scenes: do not let one block cover the whole scene
            chosen.append(i)
            cum += barea[i]
    block_urban = np.zeros((n_by + 1, n_bx + 1), dtype=bool)
    flat = np.zeros(n_by * n_bx, dtype=bool)
    flat[np.array(chosen, dtype=np.int64)] = True
    block_urban[:n_by, :n_bx] = flat.reshape(n_by, n_bx)

    n_cy, n_cx = n_by * 4, n_bx * 4
    shape = (n_cy, n_cx)
    ri = np.arange(n_cy)[:, None] % 4
    ci = np.arange(n_cx)[None, :] % 4
    # Keep each building and its shadow inside its cell and clear of the streets on the block edges.
    m0y = np.where(ri == 0, street_w + 2, 2) + np.zeros(shape, dtype=np.int64)
    m1y = np.where(ri == 3, street_w + 2, 1) + np.zeros(shape, dtype=np.int64)
    m0x = np.where(ci == 0, street_w + 2, 2) + np.zeros(shape, dtype=np.int64)
    m1x = np.where(ci == 3, street_w + 2, 1) + np.zeros(shape, dtype=np.int64)
    sh = np.maximum(np.round(rng.uniform(2.0, 6.0, shape) * kb), 1).astype(np.int64)
    avail_y = cell - m0y - m1y - sh
    avail_x = cell - m0x - m1x - sh
    lo_b = max(round(8 * kb), 4)
    hb = np.clip(np.round(rng.triangular(8, 30, 40, shape) * kb).astype(np.int64), lo_b, avail_y)
    wb = np.clip(np.round(rng.triangular(8, 30, 40, shape) * kb).astype(np.int64), lo_b, avail_x)
    oy = m0y + np.floor(rng.random(shape) * (avail_y - hb + 1)).astype(np.int64)
    ox = m0x + np.floor(rng.random(shape) * (avail_x - wb + 1)).astype(np.int64)
    material = rng.choice(len(_ROOFS), size=shape, p=_ROOF_P)
    cell_tables = {
        "present": rng.random(shape) < 0.86,
        "oy": oy,
        "ox": ox,
        "hb": hb,
        "wb": wb,
        "sh": sh,
        "row": np.array([_ROW[r] for r in _ROOFS])[material],
        "pitched": _ROOF_PITCHED[material] & (rng.random(shape) < 0.75),
        "gain": rng.uniform(0.88, 1.12, shape).astype(np.float32),
        "ground": np.where(rng.random(shape) < 0.12, BARE, GRASS).astype(np.uint8),
    }

    # --- spectra table: fixed rows, then one row per agricultural sub-parcel ---
    wl = _band_wavelengths(bands)
    fixed_mean = np.array([m for m, _ in _SPECTRA.values()])
    fixed_dir = np.array([d for _, d in _SPECTRA.values()])
    mean = np.concatenate([fixed_mean, sub_spec])
    direction = np.concatenate([fixed_dir, np.zeros_like(sub_spec)])
    spectra = _to_bands(mean, wl).T.astype(np.float32)
    spec_dir = _to_bands(direction, wl).T.astype(np.float32)

    rng = _layout_rng(seed, 5)
    frac = float(rng.uniform(0.04, 0.07))
    flips = (bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    haze_amp = float(rng.uniform(0.5, 1.0))
    haze = (0.02 * haze_amp * (490.0 / wl) ** 2).astype(np.float32)  # path radiance ~ lambda^-2
    ang = float(rng.uniform(0, 2 * np.pi))

    return _Layout(
        height=h,
        width=w,
        seed=seed,
        k=k,
        kb=kb,
        keys=keys,
        e_cells=e_cells,
        e_amps=e_amps,
        v_cells=v_cells,
        v_amps=v_amps,
        water_thr=water_thr,
        forest_thr=forest_thr,
        bare_thr=bare_thr,
        tree_thr=tree_thr,
        shade_gain=shade_gain,
        strip_edges=par["strip_edges"],
        col_edges=par["col_edges"],
        strip_offset=par["strip_offset"],
        parcel_ag=parcel_ag,
        parcel_split=split.astype(np.int64),
        parcel_margin=margin.astype(np.int64),
        sub_label=sub_label,
        sub_row=(_N_FIXED + np.arange(n_sub)).astype(np.int32),
        sub_cos=np.cos(theta).astype(np.float32),
        sub_sin=np.sin(theta).astype(np.float32),
        sub_freq=(2 * np.pi / period).astype(np.float32),
        sub_phase=rng.uniform(0, 2 * np.pi, n_sub).astype(np.float32),
        sub_amp=sub_amp.astype(np.float32),
        cell=cell,
        city=city,
        street_w=street_w,
        grid_off=(goy, gox),
        block_urban=block_urban,
        cell_tables=cell_tables,
        roads=roads,
        road_row=road_row.astype(np.int32),
        rivers=rivers,
        wedge_t=math.sqrt(2.0 * frac),  # the triangle u + v < t covers t^2 / 2 of the scene
        wedge_flip=flips,
        haze=haze,
        haze_dir=(math.cos(ang), math.sin(ang)),
        spectra=spectra,
        spec_dir=spec_dir,
        tex=_TEX,
    )


# --------------------------------------------------------------------------------------------------
# Rendering one block.
# --------------------------------------------------------------------------------------------------
def _segment_hits(
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


def _render_block(
    lay: _Layout, y0: int, x0: int, h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance (bands, h, w) float32, class ids (h, w) uint8 and nodata mask for one block."""
    ys = np.arange(y0, y0 + h) + 0.5
    xs = np.arange(x0, x0 + w) + 0.5
    yi = np.arange(y0, y0 + h)
    xi = np.arange(x0, x0 + w)

    # Elevation with a one-pixel halo, for the hillshade derivatives.
    ys_h = np.arange(y0 - 1, y0 + h + 1) + 0.5
    xs_h = np.arange(x0 - 1, x0 + w + 1) + 0.5
    e_h = _fbm(lay.keys["elev"], ys_h, xs_h, lay.e_cells, lay.e_amps)
    e = e_h[1:-1, 1:-1]
    # Sun from the north-west (top-left): slopes rising towards the south-east face the sun.
    slope = (e_h[2:, 1:-1] - e_h[:-2, 1:-1] + e_h[1:-1, 2:] - e_h[1:-1, :-2]) * np.float32(0.5)
    shade = np.clip(1.0 + np.float32(lay.shade_gain) * slope, 0.75, 1.2).astype(np.float32)
    v = _fbm(lay.keys["veg"], ys, xs, lay.v_cells, lay.v_amps)

    # Natural land cover from the vegetation field.
    lab = np.full((h, w), GRASS, dtype=np.uint8)
    lab[v > lay.forest_thr] = FOREST
    lab[v < lay.bare_thr] = BARE
    row = lab.astype(np.int32)  # spectra row; class means are rows 0..6
    gain = np.ones((h, w), dtype=np.float32)  # multiplicative effects other than texture/shading

    # Agricultural parcels (whole rectangles from the global tables).
    r_of_y = np.searchsorted(lay.strip_edges, yi, side="right") - 1
    starts = np.flatnonzero(np.diff(r_of_y, prepend=-1))
    sid = np.empty((h, w), dtype=np.int64)
    edge = np.empty((h, w), dtype=np.int64)
    ag = np.empty((h, w), dtype=bool)
    for s, e_end in zip(starts, [*starts[1:], h], strict=True):
        r = r_of_y[s]
        ce = lay.col_edges[r]
        c = np.searchsorted(ce, xi, side="right") - 1
        pid = lay.strip_offset[r] + c
        hs = lay.strip_edges[r + 1] - lay.strip_edges[r]
        ly = yi[s:e_end] - lay.strip_edges[r]
        lx = xi - ce[c]
        wp = ce[c + 1] - ce[c]
        ns = lay.parcel_split[pid]
        sub = np.minimum((ly[:, None] * ns[None, :]) // hs, ns[None, :] - 1)
        sid[s:e_end] = pid[None, :] * 3 + sub
        edge[s:e_end] = (
            np.minimum(np.minimum(ly, hs - 1 - ly)[:, None], np.minimum(lx, wp - 1 - lx)[None, :])
            - lay.parcel_margin[pid][None, :]
        )
        ag[s:e_end] = lay.parcel_ag[pid][None, :]
    if ag.any():
        lab[ag] = lay.sub_label[sid[ag]]
        row[ag] = lay.sub_row[sid[ag]]
        # Sowing/ploughing rows at a per-field orientation and period.
        phase = (
            ys.astype(np.float32)[:, None] * lay.sub_cos[sid]
            + xs.astype(np.float32)[None, :] * lay.sub_sin[sid]
        ) * lay.sub_freq[sid] + lay.sub_phase[sid]
        stripes = 1.0 + lay.sub_amp[sid] * np.sin(phase)
        gain = np.where(ag, stripes, gain).astype(np.float32)
        margin = ag & (edge < 0)  # grassy field margins
        lab[margin] = GRASS
        row[margin] = GRASS
        gain[margin] = 1.0

    # Towns: city blocks with streets on their edges and one building (+ shadow) per cell.
    goy, gox = lay.grid_off
    gy, gx = yi + goy, xi + gox
    byi, bxi = gy // lay.city, gx // lay.city
    if lay.block_urban[byi[0] : byi[-1] + 1, bxi[0] : bxi[-1] + 1].any():
        urban = lay.block_urban[byi[:, None], bxi[None, :]]
        uy, ux = gy - byi * lay.city, gx - bxi * lay.city
        below = lay.block_urban[byi[:, None] + 1, bxi[None, :]]
        right = lay.block_urban[byi[:, None], bxi[None, :] + 1]
        sw = lay.street_w
        street = (uy[:, None] < sw) | (ux[None, :] < sw)
        street |= ((uy >= lay.city - sw)[:, None] & ~below) | ((ux >= lay.city - sw)[None, :] & ~right)
        street &= urban
        cyi, cxi = gy // lay.cell, gx // lay.cell
        ly = (gy - cyi * lay.cell)[:, None]
        lx = (gx - cxi * lay.cell)[None, :]
        t = lay.cell_tables
        flat = cyi[:, None] * t["oy"].shape[1] + cxi[None, :]

        def cellv(name: str) -> np.ndarray:
            return t[name].ravel()[flat]

        oy, ox, hb, wb, sh = cellv("oy"), cellv("ox"), cellv("hb"), cellv("wb"), cellv("sh")
        in_b = (ly >= oy) & (ly < oy + hb) & (lx >= ox) & (lx < ox + wb)
        in_s = (ly >= oy + sh) & (ly < oy + hb + sh) & (lx >= ox + sh) & (lx < ox + wb + sh)
        present = urban & cellv("present")
        building = present & in_b
        shadow = present & in_s & ~in_b
        ground = urban & ~building
        gl = np.where(v > np.float32(lay.tree_thr), np.uint8(FOREST), cellv("ground"))
        lab[ground] = gl[ground]
        row[ground] = gl[ground]
        gain[urban] = 1.0
        lab[building] = BUILDING
        row[building] = cellv("row")[building]
        # Pitched roofs: the half facing away from the sun is darker.
        along_x = wb >= hb
        far = np.where(along_x, (ly - oy) * 2 >= hb, (lx - ox) * 2 >= wb)
        roof = np.where(cellv("pitched") & far, np.float32(0.8), np.float32(1.06)) * cellv("gain")
        gain = np.where(building, roof, gain).astype(np.float32)
        gain[shadow] *= np.float32(0.5)
        lab[street] = ROAD
        row[street] = _ROW["street"]
        gain[street] = 1.0

    # Water: lakes where the elevation is low, then the rivers.
    water = e < np.float32(lay.water_thr)
    lab[water] = WATER
    row[water] = WATER
    for _, rs, cs, hit in _segment_hits(lay.rivers, y0, x0, h, w):
        lab[rs, cs][hit] = WATER
        row[rs, cs][hit] = _ROW["river"]
        water[rs, cs] |= hit
    gain[water] = 1.0
    shade[water] = 1.0  # a lake surface is flat

    # Roads last: they cross everything (bridges over rivers).
    for i, rs, cs, hit in _segment_hits(lay.roads, y0, x0, h, w):
        lab[rs, cs][hit] = ROAD
        row[rs, cs][hit] = lay.road_row[i]
        gain[rs, cs][hit] = 1.0

    # Multi-scale texture: canopy-scale, medium and regional brightness, amplitudes per class.
    tex = lay.tex[lab]
    hi = _noise_grid(lay.keys["hi"], ys, xs, 2.5)
    mid = _noise_grid(lay.keys["mid"], ys, xs, 14.0)
    reg = _fbm(lay.keys["reg"], ys, xs, [256.0 * lay.k, 96.0 * lay.k], [1.0, 0.5])
    gain *= 1.0 + tex[..., 0] * hi + tex[..., 1] * mid + tex[..., 2] * reg
    gain *= shade
    t_var = _fbm(lay.keys["t"], ys, xs, [300.0 * lay.k, 120.0 * lay.k], [1.0, 0.5]) * np.float32(1.4)

    refl = np.take(lay.spectra, row, axis=1)
    refl += np.take(lay.spec_dir, row, axis=1) * t_var[None]
    refl *= gain[None]
    # Gentle haze: additive path radiance, stronger in the blue, increasing across the scene.
    cy_, cx_ = lay.haze_dir
    ramp = (
        np.float32(cy_) * (ys / lay.height)[:, None] + np.float32(cx_) * (xs / lay.width)[None, :]
    ).astype(np.float32)
    ramp = 0.5 + 0.5 * ramp
    refl += lay.haze[:, None, None] * ramp[None]
    # Sensor noise: a floor plus a signal-dependent part.
    noise = rng.standard_normal(refl.shape, dtype=np.float32)
    refl += noise * (np.float32(0.003) + np.float32(0.015) * np.abs(refl))

    # Nodata: a diagonal swath edge across one corner.
    u = (xs / lay.width).astype(np.float32)
    vv = (ys / lay.height).astype(np.float32)
    if lay.wedge_flip[0]:
        u = 1.0 - u
    if lay.wedge_flip[1]:
        vv = 1.0 - vv
    nodata = (vv[:, None] + u[None, :]) < np.float32(lay.wedge_t)
    lab[nodata] = LABEL_NODATA
    return refl, lab, nodata


# --------------------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------------------
_DTYPES = {"uint8", "uint16", "int16", "float32"}


def _default_nodata(dtype: str) -> float:
    return {"uint8": 0, "uint16": 0, "int16": -32768, "float32": float("nan")}[dtype]


def _check_nodata(dtype: str, nodata: float) -> float:
    if dtype == "float32":
        return float(nodata)
    info = np.iinfo(dtype)
    if not math.isfinite(nodata) or nodata != int(nodata) or not info.min <= nodata <= info.max:
        raise UserError(
            f"nodata {nodata!r} is not a valid {dtype} value; use an integer in [{info.min}, {info.max}]."
        )
    return int(nodata)


def _to_dtype(refl: np.ndarray, nodata_mask: np.ndarray, dtype: str, nodata: float) -> np.ndarray:
    """Scale reflectance to the output type; valid pixels are kept away from the nodata value."""
    if dtype == "float32":
        out = np.clip(refl, 0.0, 1.0).astype(np.float32)
        if not math.isnan(nodata):
            hit = out == np.float32(nodata)
            out[hit] = np.nextafter(np.float32(nodata), np.float32(2.0 if nodata < 1.0 else -1.0))
        out[:, nodata_mask] = np.float32(nodata)
        return out
    scale = {"uint8": 255.0 * 2.0, "uint16": 10000.0, "int16": 10000.0}[dtype]  # uint8: display gain
    info = np.iinfo(dtype)
    out = np.rint(refl * np.float32(scale))
    np.clip(out, max(info.min, 0), info.max, out=out)  # reflectance is never negative
    out = out.astype(dtype)
    hit = out == nodata
    if hit.any():
        out[hit] = nodata + 1 if nodata < info.max else nodata - 1
    out[:, nodata_mask] = nodata
    return out


def _transform(crs: CRS, resolution: float | None) -> Affine:
    if crs.is_geographic:
        res = 1e-5 if resolution is None else resolution
        return from_origin(15.0, 47.0, res, res)
    res = 1.0 if resolution is None else resolution
    return from_origin(500000.0, 5500000.0, res, res)


def _hex_rgb(color: str) -> tuple[int, int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def generate_sample(
    out_dir: Path,
    *,
    height: int = 4096,
    width: int = 4096,
    bands: int = 4,
    dtype: str = "uint16",
    crs: str = "EPSG:32633",
    resolution: float | None = None,
    nodata: float | None = None,
    seed: int = 0,
    name: str = "scene",
    on_block: Callable[[int], None] | None = None,
) -> SampleScene:
    """Write ``out_dir/{name}.tif`` (image) and ``out_dir/{name}_labels.tif`` (uint8 classes, nodata 255).

    Deterministic in its arguments; rendered and written block by block (see the module docstring).
    Each file is written under a hidden ``.partial`` name and renamed into place only when complete.
    """
    if height < 1 or width < 1:
        raise UserError(f"Scene size must be at least 1 x 1 pixels, got {height} x {width}.")
    if bands < 1:
        raise UserError(f"bands must be at least 1, got {bands}.")
    if dtype not in _DTYPES:
        raise UserError(f"dtype {dtype!r} is not supported; use one of {', '.join(sorted(_DTYPES))}.")
    if seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}.")
    if not name or Path(name).name != name or name.startswith("."):
        raise UserError(f"name {name!r} must be a plain file name without a folder.")
    if resolution is not None and not (math.isfinite(resolution) and resolution > 0):
        raise UserError(f"resolution must be a positive number, got {resolution}.")
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception as exc:  # rasterio raises CRSError, pyproj-style inputs may raise others
        raise UserError(
            f"Cannot parse CRS {crs!r}: {exc}. Use e.g. EPSG:32633, a WKT or a PROJ string."
        ) from exc
    nd = _check_nodata(dtype, _default_nodata(dtype) if nodata is None else nodata)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final_img, final_lab = out_dir / f"{name}.tif", out_dir / f"{name}_labels.tif"
    tmp_img, tmp_lab = out_dir / f".{name}.tif.partial", out_dir / f".{name}_labels.tif.partial"

    lay = _build_layout(height, width, bands, seed)
    transform = _transform(crs_obj, resolution)
    common = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "crs": crs_obj,
        "transform": transform,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "bigtiff": "IF_SAFER",
    }
    img_profile = {
        **common,
        "count": bands,
        "dtype": dtype,
        "nodata": nd,
        "predictor": 3 if dtype == "float32" else 2,
        "interleave": "pixel",
        # RGB photometric stores the colour interpretation in the TIFF itself (no .aux.xml side file).
        "photometric": "RGB" if bands >= 3 else "MINISBLACK",
    }
    lab_profile = {**common, "count": 1, "dtype": "uint8", "nodata": LABEL_NODATA, "predictor": 2}
    colormap = {c["id"]: _hex_rgb(c["color"]) for c in SAMPLE_CLASSES}
    colormap[LABEL_NODATA] = (0, 0, 0, 255)
    names = _band_names(bands)

    done = False
    try:
        # PAM off: everything must live inside the TIFFs, so a rename moves the whole result.
        with (
            rasterio.Env(GDAL_PAM_ENABLED="NO"),
            rasterio.open(tmp_img, "w", **img_profile) as dst,
            rasterio.open(tmp_lab, "w", **lab_profile) as dlab,
        ):
            dst.descriptions = tuple(names)
            if bands >= 3:
                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + [
                    ColorInterp.undefined
                ] * (bands - 3)
            dlab.set_band_description(1, "class")
            dlab.write_colormap(1, colormap)
            # Names and colours travel with the labels, so `rsseg tile` needs no class table for the sample.
            class_table = [{"id": c["id"], "name": c["name"], "color": c["color"]} for c in SAMPLE_CLASSES]
            dlab.update_tags(**{CLASS_TAG: json.dumps(class_table)})
            for by in range(math.ceil(height / BLOCK)):
                for bx in range(math.ceil(width / BLOCK)):
                    y0, x0 = by * BLOCK, bx * BLOCK
                    h, w = min(BLOCK, height - y0), min(BLOCK, width - x0)
                    # Sensor noise seeded per block, so the result does not depend on block order.
                    rng = np.random.default_rng([seed, by, bx])
                    refl, lab, nd_mask = _render_block(lay, y0, x0, h, w, rng)
                    window = Window(x0, y0, w, h)
                    dst.write(_to_dtype(refl, nd_mask, dtype, nd), window=window)
                    dlab.write(lab, 1, window=window)
                    if on_block is not None:
                        on_block(1)
        os.replace(tmp_lab, final_lab)
        os.replace(tmp_img, final_img)
        done = True
    finally:
        if not done:
            for p in (tmp_img, tmp_lab):
                p.unlink(missing_ok=True)
    return SampleScene(scene=final_img, labels=final_lab)
