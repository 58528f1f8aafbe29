"""Labeled units: the pieces of labels the label-aware split hands to train, val or test.

A unit is a connected label region (a digitized polygon, or touching polygons, or a region of a class map),
found on the coarse cell grid of `label_cells`. Regions larger than a spatial block (dense labels, long
polygons) are cut along a block grid aligned in map coordinates, so a class map gives block-sized units and a
few sparse polygons stay whole. When there are too few units for the split fractions, the blocks are halved
(down to `min_side` pixels): a scene with four polygons then gets pieces of them in val instead of no val.

Scenes of one CRS that overlap (two dates of one place) must not put one place in two splits: units of
different scenes whose map boxes overlap substantially are merged into one unit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from affine import Affine
from scipy import ndimage
from shapely import STRtree, box

from rsseg_cli.data.label_cells import LabelCells

log = logging.getLogger("rsseg")

# Units of two scenes are "the same place" when their boxes overlap by more than this share of the smaller.
SAME_PLACE = 0.25


@dataclass
class Units:
    grids: dict[str, np.ndarray]  # per scene: unit index of each cell (int32), -1 where nothing is labeled
    vectors: np.ndarray  # (units, classes) labeled pixels per class
    region: np.ndarray  # (units,) the connected region (before cutting) each unit comes from
    side: int  # block side in pixels used for cutting

    def __len__(self) -> int:
        return len(self.vectors)


def find_units(
    cells: dict[str, LabelCells],
    transforms: dict[str, Affine],
    groups: dict[str, str],
    num_classes: int,
    side: int,
    min_side: int,
    needed: int,
) -> Units:
    """Units for blocks of `side` pixels, halving the blocks while there are fewer than `needed` units."""
    units = _units(cells, transforms, groups, num_classes, side)
    first, first_count = side, len(units)
    while len(units) < needed and side > min_side:
        side = max(min_side, side // 2)
        units = _units(cells, transforms, groups, num_classes, side)
    if side != first:
        log.info(
            "split: %d labeled units with %d px blocks; cut labels into %d px blocks for %d units",
            first_count,
            first,
            side,
            len(units),
        )
    return units


def _units(
    cells: dict[str, LabelCells],
    transforms: dict[str, Affine],
    groups: dict[str, str],
    num_classes: int,
    side: int,
) -> Units:
    origins = _group_origins(cells, transforms, groups)
    grids: dict[str, np.ndarray] = {}
    vectors: list[np.ndarray] = []
    regions: list[np.ndarray] = []
    boxes: list[tuple[str, np.ndarray]] = []  # per scene: map boxes of its units
    offset = region_offset = 0
    for name, lc in cells.items():
        labeled = lc.labeled_grid()
        grid = np.full(labeled.shape, -1, np.int32)
        comp, n = ndimage.label(labeled, structure=np.ones((3, 3), bool))
        if n == 0:
            grids[name] = grid
            continue
        rows, cols = np.nonzero(labeled)
        region = comp[rows, cols].astype(np.int64) - 1
        # Regions larger than a block are cut along the block grid; smaller ones stay whole even where they
        # straddle a block line (cutting them would only lose pixels to the split gap).
        extent = np.array(
            [(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(comp)]
        )
        cut = (extent.max(axis=1) * lc.cell > side)[region]
        bx, by = _block_index(rows, cols, lc.cell, transforms[name], origins[groups[name]], side)
        key = np.stack([region, np.where(cut, bx, 0), np.where(cut, by, 0)], axis=1)
        _, local = np.unique(key, axis=0, return_inverse=True)
        local = local.ravel()
        count = int(local.max()) + 1
        grid[rows, cols] = local + offset
        grids[name] = grid
        table = lc.table()
        unit_of = grid.ravel()[table.cells] - offset
        vec = np.zeros((count, num_classes), np.int64)
        np.add.at(vec, (unit_of, table.classes), table.counts)
        vectors.append(vec)
        reg = np.zeros(count, np.int64)
        reg[local] = region + region_offset
        regions.append(reg)
        boxes.append((name, _unit_boxes(rows, cols, local, count, lc.cell, transforms[name])))
        offset += count
        region_offset += n
    if not vectors:
        return Units(grids, np.zeros((0, num_classes), np.int64), np.zeros(0, np.int64), side)
    units = Units(grids, np.concatenate(vectors), np.concatenate(regions), side)
    return _merge_same_place(units, boxes, groups)


def _group_origins(
    cells: dict[str, LabelCells], transforms: dict[str, Affine], groups: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """The top-left map corner of each group of scenes: the origin of its block grid."""
    origins: dict[str, tuple[float, float]] = {}
    for name, lc in cells.items():
        t = transforms[name]
        xs, ys = zip(*(t * (c, r) for r in (0, lc.height) for c in (0, lc.width)))
        ox, oy = origins.get(groups[name], (np.inf, -np.inf))
        origins[groups[name]] = (min(ox, *xs), max(oy, *ys))
    return origins


def _block_index(
    rows: np.ndarray, cols: np.ndarray, cell: int, t: Affine, origin: tuple[float, float], side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Block column and row of each cell's centre, on a map-aligned grid of `side`-pixel blocks."""
    x = t.c + t.a * (cols + 0.5) * cell + t.b * (rows + 0.5) * cell
    y = t.f + t.d * (cols + 0.5) * cell + t.e * (rows + 0.5) * cell
    size = side * max(abs(t.a), abs(t.e), 1e-12)
    return ((x - origin[0]) // size).astype(np.int64), ((origin[1] - y) // size).astype(np.int64)


def _unit_boxes(
    rows: np.ndarray, cols: np.ndarray, unit: np.ndarray, count: int, cell: int, t: Affine
) -> np.ndarray:
    """Map boxes (xmin, ymin, xmax, ymax) of units, from the pixel extent of their cells."""
    r0 = np.full(count, np.iinfo(np.int64).max)
    c0 = r0.copy()
    r1 = np.full(count, -1)
    c1 = r1.copy()
    np.minimum.at(r0, unit, rows)
    np.minimum.at(c0, unit, cols)
    np.maximum.at(r1, unit, rows + 1)
    np.maximum.at(c1, unit, cols + 1)
    corners = [t * (c * cell, r * cell) for c, r in ((c0, r0), (c1, r0), (c0, r1), (c1, r1))]
    xs = np.stack([c[0] for c in corners])
    ys = np.stack([c[1] for c in corners])
    return np.stack([xs.min(0), ys.min(0), xs.max(0), ys.max(0)], axis=1)


def _merge_same_place(units: Units, boxes: list[tuple[str, np.ndarray]], groups: dict[str, str]) -> Units:
    """Merge units of different scenes of one group that cover the same place."""
    if len(boxes) < 2:
        return units
    parent = np.arange(len(units))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    starts = np.cumsum([0] + [len(b) for _, b in boxes])
    by_group: dict[str, list[int]] = {}
    for k, (name, _) in enumerate(boxes):
        by_group.setdefault(groups[name], []).append(k)
    merged = False
    for members in by_group.values():
        if len(members) < 2:
            continue
        geoms, owner = [], []
        for k in members:
            for j, b in enumerate(boxes[k][1]):
                geoms.append(box(*b))
                owner.append((k, starts[k] + j))
        tree = STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for a, b in zip(left.tolist(), right.tolist()):
            (ka, ua), (kb, ub) = owner[a], owner[b]
            if ka == kb or a >= b:
                continue
            overlap = geoms[a].intersection(geoms[b]).area
            if overlap > SAME_PLACE * min(geoms[a].area, geoms[b].area):
                parent[root(ua)] = root(ub)
                merged = True
    if not merged:
        return units
    roots = np.array([root(i) for i in range(len(units))])
    _, new = np.unique(roots, return_inverse=True)
    vectors = np.zeros((int(new.max()) + 1, units.vectors.shape[1]), np.int64)
    np.add.at(vectors, new, units.vectors)
    region = np.zeros(len(vectors), np.int64)
    region[new] = units.region
    grids = {n: np.where(g >= 0, new[np.maximum(g, 0)], -1).astype(np.int32) for n, g in units.grids.items()}
    return Units(grids, vectors, region, units.side)
