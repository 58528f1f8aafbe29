"""Rendering one block of the sample scene from the layout: land cover, spectra, texture, shading, noise.

A block is a window (y0, x0, h, w) in global pixel coordinates.  Every smooth field is evaluated from
global coordinates (synthetic.noise) and every object comes from the layout's global tables, so blocks
join without seams and in any order.  The painting order is the z-order of the landscape: natural cover,
then fields, towns, water, and roads last (bridges cross rivers).
"""

from __future__ import annotations

import numpy as np

from rsseg_cli.synthetic.classes import BARE, BUILDING, FOREST, GRASS, LABEL_NODATA, ROAD, WATER
from rsseg_cli.synthetic.layout import Layout
from rsseg_cli.synthetic.lines import segment_hits
from rsseg_cli.synthetic.noise import fbm, noise_grid
from rsseg_cli.synthetic.spectra import ROW

__all__ = ["render_block"]


def render_block(
    lay: Layout, y0: int, x0: int, h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance (bands, h, w) float32, class ids (h, w) uint8 and nodata mask for one block.

    `rng` draws the sensor noise only; the caller seeds it per block (see synthetic.write).
    """
    ys = np.arange(y0, y0 + h) + 0.5  # pixel centres
    xs = np.arange(x0, x0 + w) + 0.5
    yi = np.arange(y0, y0 + h)
    xi = np.arange(x0, x0 + w)

    e, shade = _terrain(lay, y0, x0, h, w)
    v = fbm(lay.keys["veg"], ys, xs, lay.v_cells, lay.v_amps)

    # Natural land cover from the vegetation field.
    lab = np.full((h, w), GRASS, dtype=np.uint8)
    lab[v > lay.forest_thr] = FOREST
    lab[v < lay.bare_thr] = BARE
    row = lab.astype(np.int32)  # spectra row; class means are rows 0..6
    gain = np.ones((h, w), dtype=np.float32)  # multiplicative effects other than texture/shading

    gain = _paint_fields(lay, lab, row, gain, ys, xs, yi, xi)
    gain = _paint_towns(lay, lab, row, gain, v, yi, xi)
    _paint_water_and_roads(lay, lab, row, gain, shade, e, (y0, x0, h, w))
    refl = _reflectance(lay, lab, row, gain, shade, ys, xs, rng)

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


def _terrain(lay: Layout, y0: int, x0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (h, w) and the hillshade gain, from elevation with a one-pixel halo for the derivatives."""
    ys_h = np.arange(y0 - 1, y0 + h + 1) + 0.5
    xs_h = np.arange(x0 - 1, x0 + w + 1) + 0.5
    e_h = fbm(lay.keys["elev"], ys_h, xs_h, lay.e_cells, lay.e_amps)
    e = e_h[1:-1, 1:-1]
    # Sun from the north-west (top-left): slopes rising towards the south-east face the sun.
    slope = (e_h[2:, 1:-1] - e_h[:-2, 1:-1] + e_h[1:-1, 2:] - e_h[1:-1, :-2]) * np.float32(0.5)
    shade = np.clip(1.0 + np.float32(lay.shade_gain) * slope, 0.75, 1.2).astype(np.float32)
    return e, shade


def _paint_fields(
    lay: Layout,
    lab: np.ndarray,
    row: np.ndarray,
    gain: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    yi: np.ndarray,
    xi: np.ndarray,
) -> np.ndarray:
    """Agricultural parcels (whole rectangles from the global tables) into lab and row; returns the gain."""
    h, w = lab.shape
    r_of_y = np.searchsorted(lay.strip_edges, yi, side="right") - 1
    # The block's rows fall into a few strips; each strip has its own column edges.
    starts = np.flatnonzero(np.diff(r_of_y, prepend=-1))
    sid = np.empty((h, w), dtype=np.int64)  # sub-field id: parcel * 3 + sub-field
    edge = np.empty((h, w), dtype=np.int64)  # distance to the parcel edge minus its margin
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
    return gain


def _paint_towns(
    lay: Layout,
    lab: np.ndarray,
    row: np.ndarray,
    gain: np.ndarray,
    v: np.ndarray,
    yi: np.ndarray,
    xi: np.ndarray,
) -> np.ndarray:
    """Towns: city blocks with streets on their edges and one building (+ shadow) per cell; returns the gain."""
    goy, gox = lay.grid_off
    gy, gx = yi + goy, xi + gox
    byi, bxi = gy // lay.city, gx // lay.city
    if not lay.block_urban[byi[0] : byi[-1] + 1, bxi[0] : bxi[-1] + 1].any():
        return gain  # most blocks of a scene are rural: skip the per-pixel cell lookups
    urban = lay.block_urban[byi[:, None], bxi[None, :]]
    uy, ux = gy - byi * lay.city, gx - bxi * lay.city
    below = lay.block_urban[byi[:, None] + 1, bxi[None, :]]
    right = lay.block_urban[byi[:, None], bxi[None, :] + 1]
    sw = lay.street_w
    # Streets on the top and left edge of every urban block, and on the bottom/right edge where the
    # neighbouring block is not urban (so that two urban blocks share one street, not two).
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
    row[street] = ROW["street"]
    gain[street] = 1.0
    return gain


def _paint_water_and_roads(
    lay: Layout,
    lab: np.ndarray,
    row: np.ndarray,
    gain: np.ndarray,
    shade: np.ndarray,
    e: np.ndarray,
    window: tuple[int, int, int, int],
) -> None:
    """Lakes where the elevation is low, then the rivers, then the roads (in place)."""
    y0, x0, h, w = window
    water = e < np.float32(lay.water_thr)
    lab[water] = WATER
    row[water] = WATER
    for _, rs, cs, hit in segment_hits(lay.rivers, y0, x0, h, w):
        lab[rs, cs][hit] = WATER
        row[rs, cs][hit] = ROW["river"]
        water[rs, cs] |= hit
    gain[water] = 1.0
    shade[water] = 1.0  # a lake surface is flat

    # Roads last: they cross everything (bridges over rivers).
    for i, rs, cs, hit in segment_hits(lay.roads, y0, x0, h, w):
        lab[rs, cs][hit] = ROAD
        row[rs, cs][hit] = lay.road_row[i]
        gain[rs, cs][hit] = 1.0


def _reflectance(
    lay: Layout,
    lab: np.ndarray,
    row: np.ndarray,
    gain: np.ndarray,
    shade: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Reflectance (bands, h, w): spectra rows times texture, shading and stripes, plus haze and noise."""
    # Multi-scale texture: canopy-scale, medium and regional brightness, amplitudes per class.
    tex = lay.tex[lab]
    hi = noise_grid(lay.keys["hi"], ys, xs, 2.5)
    mid = noise_grid(lay.keys["mid"], ys, xs, 14.0)
    reg = fbm(lay.keys["reg"], ys, xs, [256.0 * lay.k, 96.0 * lay.k], [1.0, 0.5])
    gain *= 1.0 + tex[..., 0] * hi + tex[..., 1] * mid + tex[..., 2] * reg
    gain *= shade
    # A regional field moves each class's spectrum along its variation direction (e.g. drier grass).
    t_var = fbm(lay.keys["t"], ys, xs, [300.0 * lay.k, 120.0 * lay.k], [1.0, 0.5]) * np.float32(1.4)

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
    return refl
