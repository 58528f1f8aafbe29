"""Merging the pieces of regions that cross window seams, so each region comes out as one polygon.

A piece whose bounds reach an internal edge of its core (a seam, not the scene border) may continue in the
neighbouring core; it is kept aside. Pieces that touch no seam are complete and go straight out.

Which kept pieces belong together is read from their coordinates, not from geometric predicates: two pieces
of the same class are one 4-connected region exactly when their boundaries share a stretch of a seam line.
Each kept piece lists the unit-length steps of its boundary that lie on its core's seams (pixel coordinates
are integers, so a step is a line and a position), and pieces on the two sides of the same step are joined.
Steps that only meet at a corner share no step, so diagonal neighbours stay apart, as in a whole-scene
polygonization.

Cores are processed row by row. At the end of a row the pieces are grouped (connected components of the
joins) and a group is complete unless one of its pieces reaches the seam below the row; complete groups are
unioned once, the others are carried, unmerged, into the next row. What is held is one row of seam pieces
plus the regions still open below it, never the whole scene, and each region is unioned exactly once.
"""

from __future__ import annotations

import numpy as np
import shapely

from rsseg_cli.vectorize.polygonize import Pieces
from rsseg_cli.vectorize.trace import union_pixel_groups
from rsseg_cli.vectorize.windows import Core

# Vertices of the groups traced at once (the tracing needs about 150 bytes a vertex).
TRACE_BATCH = 1_000_000


class SeamMerger:
    def __init__(self, height: int, width: int, window: int):
        self.height = height
        self.width = width
        self.window = window
        self._stride = max(height, width) + 1  # key = line * stride + position along the line
        self._pending = Pieces.empty()
        self._ids = np.empty(0, np.int64)  # global id of each pending piece (ascending)
        self._next_id = 0
        self._row: list[tuple[Pieces, np.ndarray]] = []
        # Seam steps of pending pieces: key (line, position), side (0: left/above, 1: right/below), id, class.
        self._steps = _Steps.empty()
        self._joins = np.empty((0, 2), np.int64)  # pairs of ids of pieces known to be one region

    def add(self, pieces: Pieces, core: Core) -> Pieces:
        """Keep the pieces of a core that touch one of its seams; return the complete ones."""
        if not len(pieces):
            return pieces
        minx, miny, maxx, maxy = shapely.bounds(pieces.geoms).T
        at_seam = (
            ((minx == core.col0) & (core.col0 > 0))
            | ((maxx == core.col1) & (core.col1 < self.width))
            | ((miny == core.row0) & (core.row0 > 0))
            | ((maxy == core.row1) & (core.row1 < self.height))
        )
        kept = pieces.take(at_seam)
        ids = np.arange(self._next_id, self._next_id + len(kept))
        self._next_id += len(kept)
        self._row.append((kept, ids))
        self._steps = _Steps.concat([self._steps, self._seam_steps(kept, ids, core)])
        return pieces.take(~at_seam)

    def end_row(self, row1: int) -> Pieces:
        """Join the pieces kept up to the end of a row of cores (rows < row1); return the regions that are
        complete and carry those that reach the seam at row1."""
        self._pending = Pieces.concat([self._pending, *(p for p, _ in self._row)])
        self._ids = np.concatenate([self._ids, *(i for _, i in self._row)])
        self._row = []
        if not len(self._pending):
            return Pieces.empty()
        # Every seam above row1 now has both sides; steps on the seam at row1 wait for the next row.
        last_row = row1 >= self.height
        bottom_line = self.width + 1 + row1
        ready = (
            np.ones(len(self._steps), bool) if last_row else self._steps.key // self._stride != bottom_line
        )
        self._joins = np.concatenate([self._joins, self._steps.take(ready).join()])
        self._steps = self._steps.take(~ready)

        local = np.searchsorted(self._ids, self._joins)
        labels = connected_components(len(self._ids), local[:, 0], local[:, 1])
        if last_row:
            done = np.ones(len(self._ids), bool)
        else:
            reaches_below = shapely.bounds(self._pending.geoms)[:, 3] == row1
            open_groups = np.unique(labels[reaches_below])
            done = ~np.isin(labels, open_groups)
        finished = self._union_groups(self._pending.take(done), labels[done])
        keep = ~done
        kept_ids = self._ids[keep]
        self._pending = self._pending.take(keep)
        self._ids = kept_ids
        self._joins = self._joins[np.isin(self._joins[:, 0], kept_ids)]
        self._steps = self._steps.take(np.isin(self._steps.piece, kept_ids))
        return finished

    def _union_groups(self, pieces: Pieces, labels: np.ndarray) -> Pieces:
        """One polygon per group of pieces (labels: the group of each piece)."""
        if not len(pieces):
            return pieces
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
        sizes = np.diff(np.r_[starts, len(labels)])
        out = [pieces.take(order[starts[sizes == 1]])]
        multi = np.flatnonzero(sizes > 1)
        # Groups of several pieces are traced together, in batches of about TRACE_BATCH vertices (memory
        # grows with the batch); a group the tracing refuses goes through GEOS.
        vertices = np.add.reduceat(shapely.get_num_coordinates(pieces.geoms[order]), starts)[multi]
        batch = np.cumsum(vertices) // TRACE_BATCH
        for b in np.unique(batch):
            chosen = multi[batch == b]
            members = np.concatenate([order[starts[i] : starts[i] + sizes[i]] for i in chosen])
            group = np.repeat(np.arange(len(chosen)), sizes[chosen])
            traced = union_pixel_groups(
                pieces.geoms[members], group, len(chosen), self.window, self.width, self.height
            )
            conf = np.bincount(group, weights=pieces.conf_sum[members], minlength=len(chosen))
            ok = np.flatnonzero(traced != None)  # noqa: E711 (elementwise on an object array)
            first = members[np.searchsorted(group, ok)]
            out.append(Pieces(traced[ok], pieces.class_id[first], conf[ok].round().astype(np.int64)))
            for i in np.flatnonzero(traced == None):  # noqa: E711
                out.append(union_group(pieces.take(members[group == i])))
        return Pieces.concat(out)

    def _seam_steps(self, pieces: Pieces, ids: np.ndarray, core: Core) -> _Steps:
        """The unit steps of the pieces' exterior rings that lie on the core's seams."""
        if not len(pieces):
            return _Steps.empty()
        coords, ring = shapely.get_coordinates(shapely.get_exterior_ring(pieces.geoms), return_index=True)
        a, b = coords[:-1], coords[1:]
        same = ring[:-1] == ring[1:]
        parts = []
        # (line key, on a vertical line?, line coordinate, side of the line the piece is on, seam exists)
        for vertical, at, side, exists in (
            (True, core.col0, 1, core.col0 > 0),
            (True, core.col1, 0, core.col1 < self.width),
            (False, core.row0, 1, core.row0 > 0),
            (False, core.row1, 0, core.row1 < self.height),
        ):
            if not exists:
                continue
            axis = 0 if vertical else 1  # the coordinate that is constant along the line
            on = np.flatnonzero(same & (a[:, axis] == at) & (b[:, axis] == at))
            if not len(on):
                continue
            lo = np.minimum(a[on, 1 - axis], b[on, 1 - axis]).astype(np.int64)
            hi = np.maximum(a[on, 1 - axis], b[on, 1 - axis]).astype(np.int64)
            length = hi - lo
            seg = np.repeat(np.arange(len(on)), length)
            pos = lo[seg] + np.arange(len(seg)) - np.repeat(np.cumsum(length) - length, length)
            line = at if vertical else self.width + 1 + at
            owner = ring[on][seg]
            parts.append(
                _Steps(
                    key=line * self._stride + pos,
                    side=np.full(len(pos), side, np.int8),
                    piece=ids[owner],
                    class_id=pieces.class_id[owner],
                )
            )
        return _Steps.concat(parts)


class _Steps:
    """Unit boundary steps on seam lines, as parallel arrays."""

    def __init__(self, key: np.ndarray, side: np.ndarray, piece: np.ndarray, class_id: np.ndarray):
        self.key, self.side, self.piece, self.class_id = key, side, piece, class_id

    def __len__(self) -> int:
        return len(self.key)

    @staticmethod
    def empty() -> _Steps:
        return _Steps(
            np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.int64)
        )

    @staticmethod
    def concat(parts: list[_Steps]) -> _Steps:
        parts = [p for p in parts if len(p)]
        if not parts:
            return _Steps.empty()
        return _Steps(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("key", "side", "piece", "class_id"))
        )

    def take(self, index: np.ndarray) -> _Steps:
        return _Steps(self.key[index], self.side[index], self.piece[index], self.class_id[index])

    def join(self) -> np.ndarray:
        """Pairs of pieces on both sides of the same step with the same class (each step has at most one
        piece per side: a pixel belongs to one piece)."""
        before, after = self.take(self.side == 0), self.take(self.side == 1)
        if not len(before) or not len(after):
            return np.empty((0, 2), np.int64)
        order = np.argsort(before.key)
        keys = before.key[order]
        at = np.minimum(np.searchsorted(keys, after.key), len(keys) - 1)
        match = order[at]
        hit = (keys[at] == after.key) & (before.class_id[match] == after.class_id)
        pairs = np.column_stack([before.piece[match[hit]], after.piece[hit]])
        return np.unique(pairs, axis=0)


def union_group(group: Pieces) -> Pieces:
    """Union of the edge-adjacent pieces of one region, without the vertices the seams left in the middle of
    straight edges. Pixel coordinates are exact integers, so the union is exact."""
    parts = shapely.get_parts(shapely.union_all(group.geoms))
    parts = drop_collinear(parts)
    cid = np.full(len(parts), group.class_id[0], dtype=np.int64)
    if len(parts) == 1:
        return Pieces(parts, cid, np.array([group.conf_sum.sum()], dtype=np.int64))
    # Not expected (the pieces share seam edges), but should the union fall apart, each piece's sum goes to
    # the part that holds an inner point of it.
    tree = shapely.STRtree(parts)
    piece_idx, part_idx = tree.query(shapely.point_on_surface(group.geoms), predicate="intersects")
    first = np.r_[True, piece_idx[1:] != piece_idx[:-1]]
    conf = np.bincount(part_idx[first], weights=group.conf_sum[piece_idx[first]], minlength=len(parts))
    return Pieces(parts, cid, conf.round().astype(np.int64))


def drop_collinear(geoms: np.ndarray) -> np.ndarray:
    """Remove ring vertices that lie on a straight axis-parallel run (pixel polygons only), in numpy."""
    rings, owner = shapely.get_rings(geoms, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    closing = np.r_[ring[1:] != ring[:-1], True]
    coords, ring = coords[~closing], ring[~closing]
    starts = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    lengths = np.diff(np.r_[starts, len(ring)])
    base = np.repeat(starts, lengths)
    length = np.repeat(lengths, lengths)
    offset = np.arange(len(ring)) - base
    prev = base + (offset - 1) % length
    nxt = base + (offset + 1) % length
    x, y = coords[:, 0], coords[:, 1]
    straight = ((x[prev] == x) & (x == x[nxt])) | ((y[prev] == y) & (y == y[nxt]))
    keep = ~straight
    new_rings = shapely.linearrings(coords[keep], indices=ring[keep])
    return shapely.polygons(new_rings, indices=owner)


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (its smallest member) of each of n nodes joined by the edges a[i] - b[i]:
    min-label propagation with pointer jumping, all in numpy."""
    labels = np.arange(n)
    if not len(a):
        return labels
    while True:
        low = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new
