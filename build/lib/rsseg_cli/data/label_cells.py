"""Where a scene's labeled pixels are, on a coarse grid of cells.

The label-aware split needs the shape of the labels (which polygons or label regions exist, which classes
each holds) without keeping the label raster in memory. Tiling reads every window anyway; each window adds
the labeled pixels of its core (cores partition the scene, so no pixel is counted twice) to a grid of cells
of `cell` x `cell` pixels. The grid has at most `MAX_CELLS_SIDE` cells per side whatever the scene size, and
only labeled cells are stored, so memory follows the labels, capped by the grid, never the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# 1024 cells per side: a 10980 px Sentinel-2 tile gets 11 px cells, small scenes 1 px cells (exact units).
MAX_CELLS_SIDE = 1024


def cell_size(height: int, width: int) -> int:
    return max(1, math.ceil(max(height, width) / MAX_CELLS_SIDE))


@dataclass(frozen=True)
class CellCounts:
    """Labeled pixels of one window's core per (cell, class), cells as flat indexes of the scene's grid."""

    cells: np.ndarray  # int64
    classes: np.ndarray  # int64
    counts: np.ndarray  # int64


def count_cells(
    mask: np.ndarray, row0: int, col0: int, cell: int, grid_width: int, num_classes: int
) -> CellCounts:
    """Count the labeled pixels (ids < num_classes) of `mask`, whose top-left pixel is scene pixel
    (row0, col0), per cell and class."""
    rows, cols = np.nonzero(mask < num_classes)
    if not len(rows):
        empty = np.zeros(0, np.int64)
        return CellCounts(empty, empty, empty)
    cls = mask[rows, cols].astype(np.int64)
    flat = ((rows + row0) // cell).astype(np.int64) * grid_width + (cols + col0) // cell
    key = flat * num_classes + cls
    keys, counts = np.unique(key, return_counts=True)
    return CellCounts(keys // num_classes, keys % num_classes, counts.astype(np.int64))


@dataclass
class LabelCells:
    """The labeled cells of one scene, accumulated window by window (from one thread)."""

    height: int
    width: int
    num_classes: int
    cell: int = 0
    _parts: list[CellCounts] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.cell = self.cell or cell_size(self.height, self.width)

    @property
    def shape(self) -> tuple[int, int]:
        return math.ceil(self.height / self.cell), math.ceil(self.width / self.cell)

    def add(self, counts: CellCounts) -> None:
        if len(counts.cells):
            self._parts.append(counts)

    def table(self) -> CellCounts:
        """All labeled (cell, class) pairs with their pixel counts, each pair once."""
        if not self._parts:
            empty = np.zeros(0, np.int64)
            return CellCounts(empty, empty, empty)
        cells = np.concatenate([p.cells for p in self._parts])
        classes = np.concatenate([p.classes for p in self._parts])
        counts = np.concatenate([p.counts for p in self._parts])
        key = cells * self.num_classes + classes
        keys, inverse = np.unique(key, return_inverse=True)
        summed = np.bincount(inverse, weights=counts).astype(np.int64)
        # Windows were added in order; keep the merged table only, so memory does not double later.
        merged = CellCounts(keys // self.num_classes, keys % self.num_classes, summed)
        self._parts = [merged]
        return merged

    def labeled_grid(self) -> np.ndarray:
        """A boolean grid: which cells hold at least one labeled pixel."""
        grid = np.zeros(self.shape, bool)
        grid.ravel()[self.table().cells] = True
        return grid
