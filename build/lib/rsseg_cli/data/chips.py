"""The chip record: one row of the dataset manifest."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon

SPLITS = ("train", "val", "test")


@dataclass
class Chip:
    id: str
    scene: str
    row: int  # window origin in scene pixels
    col: int
    height: int
    width: int
    corners: list[tuple[float, float]]  # footprint corners in the scene CRS (pixel units without CRS)
    valid_fraction: float
    labeled: bool
    class_pixels: np.ndarray  # labeled pixels per class id
    ignore_pixels: int
    image: str  # path relative to the dataset folder
    label: str | None
    # The part of the scene this window is the first to cover (row0, row1, col0, col1), and the labeled
    # pixels per class in it: summed over chips they count each labeled pixel of the scene once.
    core: tuple[int, int, int, int] = (0, 0, 0, 0)
    core_pixels: np.ndarray | None = None
    split: str | None = "train"  # None: dropped (buffer gap, outside every AOI)
    drop_reason: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def footprint(self) -> Polygon:
        return Polygon(self.corners)

    @property
    def center(self) -> tuple[float, float]:
        xs, ys = zip(*self.corners)
        return sum(xs) / 4.0, sum(ys) / 4.0
