"""Scenes shaped like the ones analysts bring: a few digitized polygons, a ragged nodata edge.

Built on the sample scene (its imagery and class map), so that the shapes are realistic and a model can learn
from them: `digitize_polygons` draws boxes inside homogeneous areas of the class map, as someone digitizing
training areas in QGIS does; `ragged_edge` blanks the scene outside a tilted, jagged footprint (a Landsat
path/row clip) and tags nodata. Tests and `bench/split_bench.py` use them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio

from rsseg_cli.atomic import atomic_file
from rsseg_cli.synthetic.classes import SAMPLE_CLASSES


def digitize_polygons(
    labels: Path,
    out: Path,
    count: int,
    *,
    seed: int = 0,
    half_size: tuple[int, int] = (4, 14),
    purity: float = 0.9,
    field: str = "class",
    classes: list[int] | None = None,
) -> Path:
    """Write `count` polygons (a GeoPackage with the class name in `field`) digitized over the class map
    `labels`: boxes of half-size within `half_size` pixels, at least `purity` of one class, taken class by
    class in turn so that every class present gets some (as an analyst digitizes)."""
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    with rasterio.open(labels) as src:
        cmap = src.read(1)
        t, crs = src.transform, src.crs
    names = {c["id"]: c["name"] for c in SAMPLE_CLASSES}
    present = [k for k in np.unique(cmap).tolist() if k in names and (classes is None or k in classes)]
    h, w = cmap.shape
    rows, kinds, taken = [], [], np.zeros_like(cmap, bool)
    attempts = 0
    while len(rows) < count and attempts < 200 * count:
        k = present[attempts % len(present)]  # class by class in turn (a class without room is skipped)
        attempts += 1
        # A random pixel of class k, by rejection (no list of every pixel of the class in memory).
        ys, xs = rng.integers(0, h, 4096), rng.integers(0, w, 4096)
        hits = np.flatnonzero(cmap[ys, xs] == k)
        if not len(hits):
            continue
        cy, cx = int(ys[hits[0]]), int(xs[hits[0]])
        s = int(rng.integers(half_size[0], half_size[1] + 1))
        while s >= half_size[0]:
            r0, r1, c0, c1 = max(cy - s, 0), min(cy + s + 1, h), max(cx - s, 0), min(cx + s + 1, w)
            patch = cmap[r0:r1, c0:c1]
            if (patch == k).mean() >= purity and not taken[r0:r1, c0:c1].any():
                break
            s -= 2
        else:
            continue
        taken[max(r0 - 2, 0) : r1 + 2, max(c0 - 2, 0) : c1 + 2] = True
        x0, y0 = t * (c0, r1)
        x1, y1 = t * (c1, r0)
        rows.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        kinds.append(names[k])
    frame = gpd.GeoDataFrame({field: kinds}, geometry=rows, crs=crs)
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.partial.gpkg")  # GDAL wants the .gpkg extension
    tmp.unlink(missing_ok=True)
    try:
        frame.to_file(tmp, driver="GPKG", layer=out.stem)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def ragged_edge(scene: Path, out: Path, *, seed: int = 0, angle: float = 12.0, inset: float = 0.12) -> Path:
    """A copy of `scene` with everything outside a tilted footprint with jagged edges set to nodata 0."""
    rng = np.random.default_rng(seed)
    with rasterio.open(scene) as src:
        data = src.read()
        profile = src.profile
        descriptions = src.descriptions
    _, h, w = data.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    a = math.radians(angle)
    u = (cols - w / 2) * math.cos(a) + (rows - h / 2) * math.sin(a)
    v = -(cols - w / 2) * math.sin(a) + (rows - h / 2) * math.cos(a)
    # A jagged edge: the footprint's half-widths wobble by a few pixels from row to row, as in scan lines.
    jag = np.repeat(rng.integers(-3, 4, size=(h, 1)), w, axis=1)
    inside = (np.abs(u) + jag < w * (0.5 - inset)) & (np.abs(v) < h * (0.5 - inset / 2))
    data[:, ~inside] = 0
    data[:, inside] = np.maximum(data[:, inside], 1)  # 0 now means nodata only
    profile.update(nodata=0)
    out = Path(out)
    with atomic_file(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
    return out
