import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsseg_cli.geo.grid import axis_starts, window_grid


def test_axis_starts_policies():
    assert axis_starts(10, 4, 4, "pad") == [0, 4, 8]
    assert axis_starts(10, 4, 4, "snap") == [0, 4, 6]
    assert axis_starts(10, 4, 4, "drop") == [0, 4]
    assert axis_starts(8, 4, 4, "snap") == [0, 4]
    assert axis_starts(3, 4, 4, "pad") == [0]
    assert axis_starts(3, 4, 4, "drop") == []
    assert axis_starts(10, 4, 3, "pad") == [0, 3, 6]  # 6 + 4 reaches the end
    assert axis_starts(11, 4, 3, "pad") == [0, 3, 6, 9]
    assert axis_starts(9, 4, 4, "pad") == [0, 4, 8]  # a last strip one pixel wide


def test_snap_refuses_too_small_axis():
    with pytest.raises(ValueError):
        axis_starts(3, 4, 4, "snap")


@given(
    length=st.integers(1, 300),
    size=st.integers(1, 64),
    stride=st.integers(1, 80),
    edge=st.sampled_from(["pad", "snap", "drop"]),
)
def test_cores_partition_the_covered_pixels(length, size, stride, edge):
    """Every covered pixel lies in exactly one window core; pad and snap cover every pixel."""
    if edge == "snap" and size > length:
        return
    grid = window_grid(length, size, size, stride, edge)
    count = np.zeros(length, int)
    covered = np.zeros(length, bool)
    seen_rows = set()
    for w in grid:
        if w.row in seen_rows:
            continue
        seen_rows.add(w.row)
        r0, r1, _, _ = w.core
        assert w.row <= r0 <= r1 <= min(w.row + w.height, length)
        count[r0:r1] += 1
        covered[w.row : min(w.row + w.height, length)] = True
        if edge != "pad":
            assert w.row + w.height <= length  # snap and drop stay inside
    assert (count[covered] == 1).all()
    assert (count[~covered] == 0).all()
    if edge in ("pad", "snap") and stride <= size:
        assert covered.all()


def test_grid_is_row_major_and_square():
    grid = window_grid(100, 130, 64, 64, "pad")
    assert [(w.row, w.col) for w in grid] == [(0, 0), (0, 64), (0, 128), (64, 0), (64, 64), (64, 128)]
    assert all(w.height == w.width == 64 for w in grid)
    inner = grid[2].inner(100, 130)
    assert (inner.width, inner.height) == (2, 64)
