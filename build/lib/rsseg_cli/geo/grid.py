"""The window grid shared by tiling and inference.

A grid covers a scene with windows of `size` pixels every `stride` pixels. What happens at the far edge is the
edge policy: `pad` lets the last window hang over the edge (the overhang is invalid), `snap` moves the last
window back inside the scene (it overlaps its neighbour), `drop` leaves the partial remainder out.

Each window also has a *core*: the part of the scene that it is the first window to cover. Cores partition the
covered area exactly once, which lets statistics be accumulated from overlapping windows without counting a
pixel twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rasterio.windows import Window

EdgePolicy = Literal["pad", "snap", "drop"]

# Side in pixels of the windows (or column bands) that windowed whole-raster processing reads at a time:
# streaming prediction's column bands, vectorize's windows. Memory depends on it, never on the scene; 4096
# keeps seams and halo work few while the peak stays at a few hundred MiB.
DEFAULT_WINDOW = 4096


@dataclass(frozen=True)
class GridWindow:
    row: int  # top pixel row in scene coordinates (may be >= 0 only)
    col: int
    height: int  # full window size, even where it hangs over the scene edge
    width: int
    core: tuple[int, int, int, int]  # row0, row1, col0, col1 in scene coordinates

    @property
    def window(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    def inner(self, scene_height: int, scene_width: int) -> Window:
        """The part of the window inside the scene."""
        return Window(
            self.col,
            self.row,
            min(self.width, scene_width - self.col),
            min(self.height, scene_height - self.row),
        )


def axis_starts(length: int, size: int, stride: int, edge: EdgePolicy) -> list[int]:
    """Window start offsets along one axis of `length` pixels."""
    if length <= 0:
        return []
    if size >= length:
        if size == length or edge == "pad":
            return [0]
        if edge == "snap":
            # Snapping inside is impossible; the caller is expected to refuse such a scene first.
            raise ValueError(f"window {size} is larger than the axis {length}")
        return []
    starts = list(range(0, length - size + 1, stride))
    last_end = starts[-1] + size
    if last_end < length:
        if edge == "snap":
            starts.append(length - size)
        elif edge == "pad":
            start = starts[-1] + stride
            while start < length:  # with stride > size the remainder may fall in a gap
                starts.append(start)
                if start + size >= length:
                    break
                start += stride
    return starts


def _cores(starts: list[int], size: int, length: int) -> list[tuple[int, int]]:
    """Per window, the interval no earlier window covers (windows share one size, so the previous end is
    the furthest any earlier window reaches)."""
    cores = []
    for i, start in enumerate(starts):
        begin = start if i == 0 else max(start, starts[i - 1] + size)
        end = min(start + size, length)
        cores.append((min(begin, end), end))
    return cores


def window_grid(height: int, width: int, size: int, stride: int, edge: EdgePolicy) -> list[GridWindow]:
    """All windows of the grid, row-major."""
    if stride < 1 or size < 1:
        raise ValueError("size and stride must be positive")
    rows = axis_starts(height, size, stride, edge)
    cols = axis_starts(width, size, stride, edge)
    row_cores = _cores(rows, size, height)
    col_cores = _cores(cols, size, width)
    return [
        GridWindow(r, c, size, size, (rc[0], rc[1], cc[0], cc[1]))
        for r, rc in zip(rows, row_cores)
        for c, cc in zip(cols, col_cores)
    ]
