"""The global layout of a sample scene: the small tables and thresholds that every block is rendered from.

Agricultural parcels, towns (city blocks, building cells, streets), roads, rivers, the nodata swath edge,
the haze and the spectra table are drawn once per call from the seed.  They are small (no full-scene
array), and a block needs nothing else but its own sensor noise, so blocks can be rendered in any order.
Each part draws from its own random stream, so that e.g. more roads would not move the rivers.  The order
of the draws within a stream is part of the scene's definition: reordering them changes every scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsseg_cli.synthetic.classes import BARE, GRASS
from rsseg_cli.synthetic.lines import make_rivers, make_roads, segment_dist_min
from rsseg_cli.synthetic.noise import fbm, key
from rsseg_cli.synthetic.spectra import (
    CROP_STAGES,
    N_FIXED,
    ROOF_P,
    ROOF_PITCHED,
    ROOFS,
    ROW,
    SPECTRA,
    TEX,
    band_wavelengths,
    to_bands,
)

__all__ = ["Layout", "build_layout"]

# The random stream of each part of the layout (see _layout_rng).
_PARCELS, _TOWNS, _ROADS, _RIVERS, _SCENE = 1, 2, 3, 4, 5


@dataclass
class Layout:
    """Everything a block is rendered from, besides its own sensor noise (see build_layout)."""

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
    """Horizontal strips of random height, each cut into fields of random width; edges in global pixels."""
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


def _fields(h: int, w: int, k: float, agri_key: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Agricultural parcels and their sub-fields: Layout fields, and the sub-fields' (n, 6) spectra."""
    par = _make_parcels(h, w, k, rng)
    n_par = len(par["y0"])
    vy0, vy1 = np.clip(par["y0"], 0, h), np.clip(par["y1"], 0, h)
    vx0, vx1 = np.clip(par["x0"], 0, w), np.clip(par["x1"], 0, w)
    area = (vy1 - vy0) * (vx1 - vx0)
    cy, cx = (vy0 + vy1) / 2.0, (vx0 + vx1) / 2.0
    agri = fbm(agri_key, cy, cx, [640.0 * k, 320.0 * k], [1.0, 0.5], pts=True)
    order = np.argsort(-agri, kind="stable")
    cum = np.cumsum(area[order])
    parcel_ag = np.zeros(n_par, dtype=bool)
    parcel_ag[order[cum <= 0.40 * h * w]] = True  # whole rectangles, so field edges stay straight
    hs = (par["y1"] - par["y0"]).astype(np.float64)
    split = rng.choice([1, 2, 3], size=n_par, p=[0.55, 0.3, 0.15])
    split = np.where(hs / split >= 30 * k, split, 1)
    margin = rng.choice([0, 1, 2], size=n_par, p=[0.6, 0.15, 0.25])
    n_sub = 3 * n_par
    stage_p = np.array([s[3] for s in CROP_STAGES])
    stage = rng.choice(len(CROP_STAGES), size=n_sub, p=stage_p / stage_p.sum())
    sub_label = np.array([s[0] for s in CROP_STAGES], dtype=np.uint8)[stage]
    base = np.array([s[1] for s in CROP_STAGES])[stage]
    sub_spec = base * rng.uniform(0.88, 1.12, (n_sub, 1)) * rng.uniform(0.94, 1.06, (n_sub, 6))
    amp_lo = np.array([s[2][0] for s in CROP_STAGES])[stage]
    amp_hi = np.array([s[2][1] for s in CROP_STAGES])[stage]
    sub_amp = rng.uniform(amp_lo, amp_hi)
    # Rows mostly run along the field's long axis (the phase below varies with y for theta = 0, giving
    # rows parallel to x); some fields are sown at an arbitrary angle.
    wide = np.repeat((par["x1"] - par["x0"]) >= (par["y1"] - par["y0"]) / split, 3)
    theta = np.where(wide, 0.0, np.pi / 2) + rng.normal(0.0, 0.03, n_sub)
    theta = np.where(rng.random(n_sub) < 0.2, rng.uniform(0, np.pi, n_sub), theta)
    period = rng.uniform(5.0, 10.0, n_sub)
    fields = {
        "strip_edges": par["strip_edges"],
        "col_edges": par["col_edges"],
        "strip_offset": par["strip_offset"],
        "parcel_ag": parcel_ag,
        "parcel_split": split.astype(np.int64),
        "parcel_margin": margin.astype(np.int64),
        "sub_label": sub_label,
        # Each sub-field has its own row in the spectra table, after the fixed rows.
        "sub_row": (N_FIXED + np.arange(n_sub)).astype(np.int32),
        "sub_cos": np.cos(theta).astype(np.float32),
        "sub_sin": np.sin(theta).astype(np.float32),
        "sub_freq": (2 * np.pi / period).astype(np.float32),
        "sub_amp": sub_amp.astype(np.float32),
    }
    return fields, sub_spec


def _towns(
    h: int,
    w: int,
    k: float,
    kb: float,
    keys: dict[str, int],
    elev: tuple[list[float], list[float], float],
    rivers: np.ndarray,
    rng: np.random.Generator,
) -> dict:
    """Urban city blocks on a grid, and one building (or none) per cell: Layout fields.

    `elev` is (cells, amplitudes, water threshold) of the elevation field: towns avoid lakes and rivers.
    """
    e_cells, e_amps, water_thr = elev
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
    urb = fbm(keys["urban"], gcy, gcx, [700.0 * k, 350.0 * k], [1.0, 0.4], pts=True)
    e_c = fbm(keys["elev"], gcy, gcx, e_cells, e_amps, pts=True)
    dist_river = segment_dist_min(rivers, gcy, gcx)
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
    material = rng.choice(len(ROOFS), size=shape, p=ROOF_P)
    cell_tables = {
        "present": rng.random(shape) < 0.86,
        "oy": oy,
        "ox": ox,
        "hb": hb,
        "wb": wb,
        "sh": sh,
        "row": np.array([ROW[r] for r in ROOFS])[material],
        "pitched": ROOF_PITCHED[material] & (rng.random(shape) < 0.75),
        "gain": rng.uniform(0.88, 1.12, shape).astype(np.float32),
        "ground": np.where(rng.random(shape) < 0.12, BARE, GRASS).astype(np.uint8),
    }
    return {
        "cell": cell,
        "city": city,
        "street_w": street_w,
        "grid_off": (goy, gox),
        "block_urban": block_urban,
        "cell_tables": cell_tables,
    }


def build_layout(h: int, w: int, bands: int, seed: int) -> Layout:
    """The layout of an h x w scene with `bands` bands; a pure function of its arguments."""
    k = float(np.clip(min(h, w) / 1024.0, 0.25, 1.0))
    kb = float(np.clip(min(h, w) / 1024.0, 0.5, 1.0))
    keys = {
        name: key(seed, i) for i, name in enumerate(["elev", "veg", "agri", "urban", "hi", "mid", "reg", "t"])
    }
    e_cells = [c * k for c in (512.0, 256.0, 128.0, 64.0, 32.0)]
    e_amps = [1.0, 0.5, 0.25, 0.12, 0.06]
    v_cells = [max(c * k, 3.0) for c in (384.0, 192.0, 96.0, 48.0, 24.0, 12.0, 6.0)]
    v_amps = [1.0, 0.6, 0.35, 0.2, 0.12, 0.07, 0.04]

    # Thresholds from quantiles over a coarse sample of the scene, so class shares are stable for any
    # size and seed (an absolute threshold could leave a small scene without water or forest).
    st = max(1, math.ceil(math.sqrt(h * w / 262144)))
    sy, sx = np.arange(0, h, st) + 0.5, np.arange(0, w, st) + 0.5
    e_s = fbm(keys["elev"], sy, sx, e_cells, e_amps)
    v_s = fbm(keys["veg"], sy, sx, v_cells, v_amps)
    water_thr = float(np.quantile(e_s, 0.065))
    # Hillshade gain so that the shading spread is the same whatever the feature scale k.
    gy, gx = np.gradient(e_s.astype(np.float64), st)
    slope = (gy + gx).ravel()

    rivers = make_rivers(h, w, k, _layout_rng(seed, _RIVERS))
    roads, road_row = make_roads(h, w, kb, _layout_rng(seed, _ROADS))
    fields, sub_spec = _fields(h, w, k, keys["agri"], _layout_rng(seed, _PARCELS))
    towns = _towns(h, w, k, kb, keys, (e_cells, e_amps, water_thr), rivers, _layout_rng(seed, _TOWNS))

    # Spectra table: the fixed rows, then one row per agricultural sub-field, at the output bands.
    wl = band_wavelengths(bands)
    fixed_mean = np.array([m for m, _ in SPECTRA.values()])
    fixed_dir = np.array([d for _, d in SPECTRA.values()])
    mean = np.concatenate([fixed_mean, sub_spec])
    direction = np.concatenate([fixed_dir, np.zeros_like(sub_spec)])

    rng = _layout_rng(seed, _SCENE)
    frac = float(rng.uniform(0.04, 0.07))
    flips = (bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    haze_amp = float(rng.uniform(0.5, 1.0))
    ang = float(rng.uniform(0, 2 * np.pi))
    # The sowing-row phases come last from this stream (not from the parcels' one): part of the definition.
    sub_phase = rng.uniform(0, 2 * np.pi, len(sub_spec)).astype(np.float32)

    return Layout(
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
        forest_thr=float(np.quantile(v_s, 0.42)),
        bare_thr=float(np.quantile(v_s, 0.07)),
        tree_thr=float(np.quantile(v_s, 0.85)),  # tree clumps in town gardens
        shade_gain=0.1 / max(float(np.std(slope)), 1e-9),
        **fields,
        sub_phase=sub_phase,
        **towns,
        roads=roads,
        road_row=road_row.astype(np.int32),
        rivers=rivers,
        wedge_t=math.sqrt(2.0 * frac),  # the triangle u + v < t covers t^2 / 2 of the scene
        wedge_flip=flips,
        haze=(0.02 * haze_amp * (490.0 / wl) ** 2).astype(np.float32),  # path radiance ~ lambda^-2
        haze_dir=(math.cos(ang), math.sin(ang)),
        spectra=to_bands(mean, wl).T.astype(np.float32),
        spec_dir=to_bands(direction, wl).T.astype(np.float32),
        tex=TEX,
    )
