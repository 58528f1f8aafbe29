"""Polygonizing one window core into pieces, in scene pixel coordinates, with zonal sums of the confidence.

Pieces are built in pixel coordinates (x = column, y = row, pixel edges on whole numbers), not in map
coordinates: every coordinate is then an exact small integer, so the pieces of one region cut by a window
seam share their seam edges exactly and union without slivers. Map coordinates are applied once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine

CHUNK_VERTICES = 500_000


@dataclass(frozen=True)
class Pieces:
    """Polygons in scene pixel coordinates, their class, and the sum of the confidence band (uint8 units)
    over their pixels (zeros when no probability raster is read)."""

    geoms: np.ndarray  # object array of shapely Polygons
    class_id: np.ndarray  # int64
    conf_sum: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.geoms)

    def take(self, index: np.ndarray) -> Pieces:
        return Pieces(self.geoms[index], self.class_id[index], self.conf_sum[index])

    @staticmethod
    def empty() -> Pieces:
        return Pieces(np.empty(0, dtype=object), np.empty(0, np.int64), np.empty(0, np.int64))

    @staticmethod
    def concat(parts: list[Pieces]) -> Pieces:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Pieces.empty()
        if len(parts) == 1:
            return parts[0]
        return Pieces(
            np.concatenate([p.geoms for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.conf_sum for p in parts]),
        )


def polygonize_core(
    classes: np.ndarray, select: np.ndarray, row0: int, col0: int, confidence: np.ndarray | None = None
) -> Pieces:
    """Polygons of the 4-connected regions of equal class among the selected pixels of a core."""
    shapes = features.shapes(classes, mask=select, connectivity=4, transform=Affine.translation(col0, row0))
    table = summed_area_table(confidence) if confidence is not None else None
    # GDAL returns GeoJSON-like dicts of Python tuples (~100 bytes a vertex); they are converted to shapely
    # in chunks of CHUNK_VERTICES so that a window with millions of vertices never holds them all as tuples.
    chunks: list[Pieces] = []
    rings: list = []
    rings_per_polygon: list[int] = []
    values: list[float] = []
    vertices = 0
    for geom, value in shapes:
        coords = geom["coordinates"]
        rings.extend(coords)
        rings_per_polygon.append(len(coords))
        values.append(value)
        vertices += sum(map(len, coords))
        if vertices >= CHUNK_VERTICES:
            chunks.append(_build(rings, rings_per_polygon, values, row0, col0, table))
            rings, rings_per_polygon, values, vertices = [], [], [], 0
    if values:
        chunks.append(_build(rings, rings_per_polygon, values, row0, col0, table))
    return Pieces.concat(chunks)


def _build(
    rings: list,
    rings_per_polygon: list[int],
    values: list[float],
    row0: int,
    col0: int,
    table: np.ndarray | None,
) -> Pieces:
    """Shapely polygons from GeoJSON-like rings in two vectorized calls (one coordinate array), instead of
    one Python object per polygon; and their zonal sums when a summed-area table is given."""
    ring_len = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
    xy = np.array(list(chain.from_iterable(rings)), dtype=np.float64).reshape(-1, 2)
    ring_of_vertex = np.repeat(np.arange(len(rings)), ring_len)
    polygon_of_ring = np.repeat(np.arange(len(values)), rings_per_polygon)
    geoms = shapely.polygons(shapely.linearrings(xy, indices=ring_of_vertex), indices=polygon_of_ring)
    if table is None:
        conf_sum = np.zeros(len(values), np.int64)
    else:
        local = xy.astype(np.int64) - np.array([col0, row0], dtype=np.int64)
        conf_sum = polygon_sums(local, ring_of_vertex, polygon_of_ring, table)
    return Pieces(geoms, np.asarray(values, dtype=np.int64), conf_sum)


def summed_area_table(values: np.ndarray) -> np.ndarray:
    """S[r, c] = sum of values[:r, :c], in unsigned integers that may wrap around.

    Wrapping is harmless: every sum taken from the table is a difference of table entries, exact modulo
    2**bits, and the true sums are known to fit (uint32 as long as 255 x pixels < 2**32, i.e. 4096^2 cores),
    which halves the table's memory against int64.
    """
    h, w = values.shape
    dtype = np.uint32 if int(values.max(initial=0)) * h * w < 2**32 else np.uint64
    table = np.zeros((h + 1, w + 1), dtype=dtype)
    table[1:, 1:] = values
    np.cumsum(table, axis=0, out=table)
    np.cumsum(table, axis=1, out=table)
    return table


def polygon_sums(
    xy: np.ndarray, ring_of_vertex: np.ndarray, polygon_of_ring: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """Sum of a raster over each polygon's pixels, from its rings' vertical edges (Green's theorem).

    For a ring whose edges lie on pixel boundaries, the sum over the pixels it encloses is
    +- sum over its vertical edges (x, ya) -> (x, yb) of S[yb, x] - S[ya, x]; the sign is that of the ring's
    signed area, which is the same formula with a raster of ones. Holes are subtracted from the exterior.
    This replaces rasterizing the polygons (a label raster per core), at the cost of one table per core.
    """
    n_rings = len(polygon_of_ring)
    same_ring = ring_of_vertex[:-1] == ring_of_vertex[1:]
    edge = np.flatnonzero(same_ring & (xy[:-1, 0] == xy[1:, 0]))
    x, ya, yb = xy[edge, 0], xy[edge, 1], xy[edge + 1, 1]
    ring = ring_of_vertex[edge]
    diff = table[yb, x] - table[ya, x]  # modulo 2**bits
    total = np.zeros(n_rings, dtype=table.dtype)
    np.add.at(total, ring, diff)
    signed_area = np.bincount(ring, weights=(x * (yb - ya)).astype(np.float64), minlength=n_rings)
    inside = np.where(signed_area > 0, total, table.dtype.type(0) - total).astype(np.int64)
    first = np.r_[True, polygon_of_ring[1:] != polygon_of_ring[:-1]]  # the exterior ring comes first
    signed = np.where(first, inside, -inside)
    return np.bincount(polygon_of_ring, weights=signed.astype(np.float64)).round().astype(np.int64)
