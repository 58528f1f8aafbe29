"""Exact union of pixel polygons that share seam edges, by cancelling the shared edges and tracing rings.

GEOS's general overlay (shapely.union_all) is exact here too, but it nodes every edge of every piece; for a
region that spans the scene (one class surrounding the others, millions of vertices) that dominated the run
time and the peak memory. Pixel pieces have far more structure:
- every edge is axis-parallel between integer vertices, and two pieces of a region only share stretches of
  the window seams, where one piece runs each unit step one way and its neighbour the other way;
- with rings oriented so the region is on their left, the union's boundary is every edge of every piece
  except those shared steps, and it splits into rings by following each edge to the edge that leaves its
  end vertex. Where two edges leave a vertex (the region touches itself diagonally) the right turn is
  taken: each ring then hugs one 4-connected patch of the background, so no ring passes a vertex twice
  (valid as OGC requires; a hole may touch the shell or another hole at a point);
- a group is one region (its pieces are joined through shared edges), so exactly one ring, the one around
  the outside, is counterclockwise: the shell. All others are holes.
All of it is numpy over all groups at once: cancellation by key lookup, ring order by pointer doubling.
On the 16384^2 benchmark mask (bench/vectorize_bench.py) the last row's unions, three regions of 0.5 to 1.4
million vertices among them, took 29.6 s with shapely.union_all and 2.8 s traced.
Groups where a check fails (not one shell, a vertex without a way out) are left to shapely.union_all.
"""

from __future__ import annotations

import numpy as np
import shapely

# Edge directions are coded 0: +x, 1: +y, 2: -x, 3: -y, so that turning right is +3 (mod 4).
_DX = np.array([1, 0, -1, 0], dtype=np.int32)
_DY = np.array([0, 1, 0, -1], dtype=np.int32)


def union_pixel_groups(
    geoms: np.ndarray, group: np.ndarray, n_groups: int, window: int, width: int, height: int
) -> np.ndarray:
    """One polygon per group (object array of n_groups; None where the tracing checks failed).

    geoms: pixel polygons (integer vertices, x = column, y = row); group: the group of each, 0..n_groups-1;
    window: the core size, whose multiples inside the scene (width x height) are the only places where the
    pieces of a group share edges. Memory: about 150 bytes per vertex.
    """
    out = np.full(n_groups, None, dtype=object)
    if not len(geoms):
        return out
    rings, ring_owner = shapely.get_rings(
        shapely.orient_polygons(geoms, exterior_cw=False), return_index=True
    )
    coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    ring_group = group[ring_owner].astype(np.int64)
    del rings, ring_owner
    xy = coords.astype(np.int32)
    del coords

    # Edges between consecutive vertices of each ring (no zero-length ones): start, direction, length, group.
    i = np.flatnonzero(vertex_ring[:-1] == vertex_ring[1:])
    dx = xy[i + 1, 0] - xy[i, 0]
    dy = xy[i + 1, 1] - xy[i, 1]
    nonzero = (dx != 0) | (dy != 0)
    i, dx, dy = i[nonzero], dx[nonzero], dy[nonzero]
    x0, y0 = xy[i, 0], xy[i, 1]
    g = ring_group[vertex_ring[i]]
    del xy, vertex_ring, nonzero
    direction = np.select([dx > 0, dy > 0, dx < 0], [0, 1, 2], 3).astype(np.int8)
    length = (np.abs(dx) + np.abs(dy)).astype(np.int32)
    # Edges on seam lines are cut into unit steps (shared stretches start and end anywhere along them).
    on_seam = np.where(dx == 0, (x0 % window == 0) & (x0 > 0) & (x0 < width), False)
    on_seam |= np.where(dy == 0, (y0 % window == 0) & (y0 > 0) & (y0 < height), False)
    del dx, dy, i
    if on_seam.any():
        reps = np.where(on_seam, length, 1)
        e = np.repeat(np.arange(len(reps)), reps)
        k = (np.arange(len(e)) - np.repeat(np.cumsum(reps) - reps, reps)).astype(np.int32)
        del reps
        on_seam, direction, g = on_seam[e], direction[e], g[e]
        length = np.where(on_seam, 1, length[e]).astype(np.int32)
        x0 = x0[e] + _DX[direction] * k
        y0 = y0[e] + _DY[direction] * k
        del e, k
    x1 = x0 + _DX[direction] * length
    y1 = y0 + _DY[direction] * length
    del length

    # Vertex keys include the group, so that neighbouring groups (other classes) never interact.
    side = int(max(width, height)) + 2
    vstart = (g * side + x0) * side + y0
    vend = (g * side + x1) * side + y1
    del x1

    # Cancel the unit steps that a neighbour runs the other way.
    seam_idx = np.flatnonzero(on_seam)
    step_key = vstart[seam_idx] * 4 + direction[seam_idx]
    reverse_key = vend[seam_idx] * 4 + (direction[seam_idx] + 2) % 4
    keep = np.ones(len(vstart), dtype=bool)
    keep[seam_idx[np.isin(reverse_key, step_key)]] = False
    del seam_idx, step_key, reverse_key, on_seam
    x0, y0, y1, vstart, vend, direction, g = (
        x0[keep],
        y0[keep],
        y1[keep],
        vstart[keep],
        vend[keep],
        direction[keep],
        g[keep],
    )
    del keep
    n = len(vstart)

    # Successor of each edge: the edge leaving its end vertex; at a vertex with two, the right turn.
    order = np.argsort(vstart, kind="stable")
    sorted_start = vstart[order]
    del vstart
    lo = np.searchsorted(sorted_start, vend, side="left")
    count = np.searchsorted(sorted_start, vend, side="right") - lo
    del sorted_start, vend
    bad_group = np.zeros(n_groups, dtype=bool)
    bad_group[g[(count < 1) | (count > 2)]] = True
    nxt = order[np.minimum(lo, n - 1)]
    two = np.flatnonzero(count == 2)
    if len(two):
        first, second = order[lo[two]], order[np.minimum(lo[two] + 1, n - 1)]
        right = (direction[two] + 3) % 4
        nxt[two] = np.where(direction[first] == right, first, second)
        del first, second, right
    del order, lo, count, two
    indegree = np.bincount(nxt, minlength=n)
    bad_group[g[indegree != 1]] = True  # not a permutation: these groups go to GEOS
    del indegree
    if bad_group.any():
        broken = bad_group[g]
        nxt[broken] = np.flatnonzero(broken)  # self-loops keep nxt a permutation
        del broken

    # Rings are the cycles of nxt: their representative (smallest edge) and each edge's distance to its
    # ring's last edge, both by pointer doubling (log2 of the longest ring passes).
    rep = np.arange(n)
    jump = nxt.copy()
    while True:
        new = np.minimum(rep, rep[jump])
        if np.array_equal(new, rep):
            break
        rep = new
        jump = jump[jump]
    del jump, new
    last = nxt == rep
    succ = np.where(last, np.arange(n), nxt)
    to_end = (~last).astype(np.int64)
    del last
    while True:
        to_end += to_end[succ]
        jumped = succ[succ]
        if np.array_equal(jumped, succ):
            break
        succ = jumped
    del succ, jumped
    # Corners: edges whose direction differs from their predecessor's (drops the seam steps' midpoints).
    pred = np.empty(n, dtype=np.int64)
    pred[nxt] = np.arange(n)
    corner = direction != direction[pred]
    del pred, nxt

    # Signed area of each ring (Green: sum of x dy), its group, and which ring is the shell.
    ring_ids, ring_of_edge = np.unique(rep, return_inverse=True)
    del rep
    area = np.bincount(ring_of_edge, weights=(x0 * (y1 - y0)).astype(np.float64))
    del y1
    ring_group = g[ring_ids]
    bad_group |= np.bincount(ring_group[area > 0], minlength=n_groups) != 1
    good_ring = ~bad_group[ring_group]
    if not good_ring.any():
        return out

    # Vertices: corner start points of the good rings, ordered by (group, shell first, ring, place).
    ring_rank = np.lexsort((ring_ids, area < 0, ring_group))
    new_ring = np.empty(len(ring_ids), dtype=np.int64)
    new_ring[ring_rank] = np.arange(len(ring_ids))
    v = np.flatnonzero(corner & good_ring[ring_of_edge])
    v = v[np.lexsort((-to_end[v], new_ring[ring_of_edge[v]]))]
    _, vertex_ring = np.unique(new_ring[ring_of_edge[v]], return_inverse=True)
    built = shapely.linearrings(np.column_stack([x0[v], y0[v]]).astype(np.float64), indices=vertex_ring)
    owner = ring_group[ring_rank][np.sort(new_ring[good_ring])]
    groups_done, owner_idx = np.unique(owner, return_inverse=True)
    out[groups_done] = shapely.polygons(built, indices=owner_idx)
    return out
