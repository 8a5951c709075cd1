"""Point-in-polygon that gives PostGIS's ``ST_Covers(polygon, point)`` answer, bit for bit.

PostGIS 3.3 (before the interval tree of 3.5) answers ``ST_Covers`` for a point
and a (multi)polygon with Dan Sunday's winding number (``point_in_ring`` in
``lwgeom_functions_analytic.c``), in plain double arithmetic:

* ``side = (x2-x1)*(py-y1) - (px-x1)*(y2-y1)``; a segment with ``side == 0.0`` whose
  bounding box holds the point puts the point *on* the ring (covered);
* otherwise an upward segment with ``y1 <= py < y2`` and ``side > 0`` adds one, a
  downward one with ``y2 <= py < y1`` and ``side < 0`` takes one away; a non-zero
  winding number is inside; zero-length segments are skipped;
* a part covers the point when it is on its exterior ring, or inside it and the
  first hole (in stored order) that is not "outside" is not "inside"; a
  multipolygon covers the point when one of its parts does;
* before all that, a point outside the polygon's stored bounding box (float32,
  rounded outwards) is not covered: this matters only where the products above
  underflow, e.g. ``x = -5e-324`` next to an edge on ``x = 0``.

Numpy evaluates the same expressions in the same order in IEEE double (no fused
multiply-add), so a point a hair off a slanted edge lands on the same side as in
PostGIS, where GEOS's robust predicates could disagree. Only the segments whose
``y`` range holds the point can change the answer, so the segments are kept in
horizontal slabs (one per raster row and polygon) and a pair (point, polygon)
only reads its slab.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

F8 = NDArray[np.float64]
I8 = NDArray[np.int64]

_POLYGON = 3


@dataclass
class RingTable:
    """Every non-degenerate segment of a list of (multi)polygons, with its ring and part.

    Segments are stored grid by grid (``seg_ptr``), ring by ring, in the stored
    vertex order, so the segments of one ring are contiguous and ring ids grow
    with the ring order inside a part (exterior first, then the holes).
    """

    x1: F8
    y1: F8
    x2: F8
    y2: F8
    seg_grid: I8
    seg_ring: I8
    ring_part: I8
    ring_hole: NDArray[np.bool_]
    seg_ptr: I8
    n_parts: int
    fbox: F8

    @classmethod
    def from_geoms(cls, geoms: Sequence[BaseGeometry | None]) -> RingTable:
        """Segments of ``geoms`` (polygonal parts only; anything else covers nothing)."""
        arr = np.asarray(list(geoms), dtype=object)
        n = len(arr)
        if n:
            parts, part_geom = shapely.get_parts(arr, return_index=True)
        else:
            parts, part_geom = np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
        keep = shapely.get_type_id(parts) == _POLYGON
        keep &= ~shapely.is_empty(parts)
        parts, part_geom = parts[keep], part_geom[keep]
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        first = np.ones(len(ring_part), dtype=bool)
        first[1:] = ring_part[1:] != ring_part[:-1]
        coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
        start = np.flatnonzero(coord_ring[1:] == coord_ring[:-1])
        x1, y1 = coords[start, 0], coords[start, 1]
        x2, y2 = coords[start + 1, 0], coords[start + 1, 1]
        real = (x1 != x2) | (y1 != y2)  # PostGIS skips zero-length segments
        start = start[real]
        seg_ring = coord_ring[start].astype(np.int64)
        seg_grid = part_geom[ring_part[seg_ring]].astype(np.int64)
        seg_ptr = np.searchsorted(seg_grid, np.arange(n + 1)).astype(np.int64)
        return cls(x1=x1[real], y1=y1[real], x2=x2[real], y2=y2[real], seg_grid=seg_grid,
                   seg_ring=seg_ring, ring_part=ring_part.astype(np.int64),
                   ring_hole=~first, seg_ptr=seg_ptr,
                   n_parts=len(parts), fbox=float_box(shapely.bounds(arr).reshape(-1, 4)))

    def __len__(self) -> int:
        return len(self.x1)


@dataclass
class Slabs:
    """For each (grid, raster row) the segments whose ``y`` range meets the row (CSR)."""

    keys: I8
    ptr: I8
    seg: I8
    n_rows: int

    @classmethod
    def build(cls, table: RingTable, y0: float, h: float, n_rows: int,
              margin: float) -> Slabs:
        """Slab lists for rows of height ``h`` starting at ``y0``, widened by ``margin``."""
        lo = np.minimum(table.y1, table.y2) - margin
        hi = np.maximum(table.y1, table.y2) + margin
        r_lo = np.clip(np.floor((lo - y0) / h), 0, max(n_rows - 1, 0)).astype(np.int64)
        r_hi = np.clip(np.floor((hi - y0) / h), 0, max(n_rows - 1, 0)).astype(np.int64)
        seg, offset = expand(r_hi - r_lo + 1)
        keys = table.seg_grid[seg] * n_rows + r_lo[seg] + offset
        order = np.argsort(keys, kind="stable")  # segment order kept inside a slab
        keys, seg = keys[order], seg[order]
        uniq, first = np.unique(keys, return_index=True)
        ptr = np.r_[first, len(keys)].astype(np.int64)
        return cls(keys=uniq.astype(np.int64), ptr=ptr, seg=seg.astype(np.int64),
                   n_rows=n_rows)


def float_box(bounds: F8) -> F8:
    """Bounding boxes as PostGIS stores them: float32, minima rounded down, maxima up."""
    out = np.asarray(bounds, dtype=np.float64).copy()
    for cols, toward in (([0, 1], -np.inf), ([2, 3], np.inf)):
        with np.errstate(invalid="ignore", over="ignore"):
            f = out[:, cols].astype(np.float32)
            worse = (f.astype(np.float64) > out[:, cols]) if toward < 0 else (
                f.astype(np.float64) < out[:, cols])
        f[worse] = np.nextafter(f[worse], np.float32(toward))
        out[:, cols] = f.astype(np.float64)
    return out


def expand(counts: I8) -> tuple[I8, I8]:
    """``(owner, k)`` for ``k in range(counts[owner])`` of every owner, flattened."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(total, dtype=np.int64) - starts[owner]


def covers_pairs(table: RingTable, slabs: Slabs, px: F8, py: F8, grid: I8,
                 row: I8) -> NDArray[np.bool_]:
    """PostGIS ``ST_Covers(geom[grid], POINT(px py))`` for each pair.

    Parameters
    ----------
    table, slabs : RingTable, Slabs
        The segments and their slab lists.
    px, py : ndarray of float64
        The points (one per pair).
    grid : ndarray of int64
        The polygon of each pair (index into the table's geometries).
    row : ndarray of int64
        The raster row of each point (``floor((py - y0) / h)``, clipped).

    Returns
    -------
    ndarray of bool
    """
    n = len(px)
    covered = np.zeros(n, dtype=bool)
    if n == 0 or len(slabs.keys) == 0:
        return covered
    box = table.fbox[grid]
    in_box = (box[:, 0] <= px) & (px <= box[:, 2]) & (box[:, 1] <= py) & (py <= box[:, 3])
    key = grid * slabs.n_rows + row
    pos = np.minimum(np.searchsorted(slabs.keys, key), len(slabs.keys) - 1)
    found = (slabs.keys[pos] == key) & in_box
    count = np.where(found, slabs.ptr[pos + 1] - slabs.ptr[pos], 0)
    pair, k = expand(count)
    if len(pair) == 0:
        return covered
    seg = slabs.seg[slabs.ptr[pos[pair]] + k]
    qx, qy = px[pair], py[pair]
    x1, y1, x2, y2 = table.x1[seg], table.y1[seg], table.x2[seg], table.y2[seg]
    side = (x2 - x1) * (qy - y1) - (qx - x1) * (y2 - y1)
    on = ((side == 0.0) & (np.minimum(x1, x2) <= qx) & (qx <= np.maximum(x1, x2))
          & (np.minimum(y1, y2) <= qy) & (qy <= np.maximum(y1, y2)))
    up = (y1 <= qy) & (qy < y2) & (side > 0)
    down = ~up & (y2 <= qy) & (qy < y1) & (side < 0)
    ring = table.seg_ring[seg]
    # Segments of one pair are in segment order, so (pair, ring) runs are contiguous.
    start = np.flatnonzero(np.r_[True, (pair[1:] != pair[:-1]) | (ring[1:] != ring[:-1])])
    g_pair, g_ring = pair[start], ring[start]
    winding = np.add.reduceat(up.astype(np.int64) - down.astype(np.int64), start)
    on_ring = np.logical_or.reduceat(on, start)
    status = np.where(on_ring, 0, np.where(winding != 0, 1, -1))  # PostGIS: 0 on, 1 in, -1 out
    part = table.ring_part[g_ring]
    hole = table.ring_hole[g_ring]
    part_key = g_pair * max(table.n_parts, 1) + part
    # The first hole (in ring order) that is not "outside" decides, as in point_in_polygon.
    h_sel = hole & (status >= 0)
    h_keys, h_first = np.unique(part_key[h_sel], return_index=True)
    h_status = status[h_sel][h_first]
    ext = ~hole & (status >= 0)
    e_keys, e_status, e_pair = part_key[ext], status[ext], g_pair[ext]
    blocked = np.zeros(len(e_keys), dtype=bool)
    if len(h_keys):
        at = np.minimum(np.searchsorted(h_keys, e_keys), len(h_keys) - 1)
        blocked = (h_keys[at] == e_keys) & (h_status[at] == 1)
    ok = (e_status == 0) | ((e_status == 1) & ~blocked)
    covered[e_pair[ok]] = True
    return covered
