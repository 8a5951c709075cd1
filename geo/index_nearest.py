"""Nearest grid boundary in metres, for points that no grid covers (``AssignmentIndex.nearest``).

Candidates come from an STRtree query with a box that surely holds every point
within ``max_m`` metres. For each (point, grid) pair the nearest point of every
boundary segment is found in a local tangent plane at the point (degrees scaled
by the WGS-84 meridional and prime-vertical radii there), and the distance to the
best one is measured on the WGS-84 ellipsoid (``pyproj.Geod``), as PostGIS's
``ST_Distance(geography, geography)`` does. Within a few hundred metres the two
agree to well under a millimetre.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod

from geo.index_pip import F8, I8, RingTable, expand

_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_GEOD = Geod(ellps="WGS84")
#: Fewest metres in a degree of latitude, and in a degree of longitude at the equator.
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_319.0
#: Triples (pair, segment) handled at once, to bound memory.
_CHUNK = 2_000_000


def candidate_pairs(tree: shapely.STRtree, tree_grid: I8, px: F8, py: F8,
                    max_m: float) -> tuple[I8, I8]:
    """(point index, grid) pairs whose grid may lie within ``max_m`` metres of the point."""
    dlat = max_m / _M_PER_DEG_LAT * 1.001 + 1e-9
    lat_far = np.minimum(np.abs(py) + dlat, 89.99)
    dlon = max_m / (_M_PER_DEG_LON * np.cos(np.radians(lat_far))) * 1.001 + 1e-9
    boxes = shapely.box(px - dlon, py - dlat, px + dlon, py + dlat)
    point_idx, tree_idx = tree.query(boxes, predicate="intersects")
    return point_idx.astype(np.int64), tree_grid[tree_idx]


def _radii(lat: F8) -> tuple[F8, F8]:
    s2 = np.sin(np.radians(lat)) ** 2
    w = 1 - _E2 * s2
    per_rad = math.pi / 180
    m = _A * (1 - _E2) / w ** 1.5 * per_rad
    n = _A / np.sqrt(w) * np.cos(np.radians(lat)) * per_rad
    return n, m


def boundary_distance(table: RingTable, px: F8, py: F8, grid: I8) -> F8:
    """Geodesic metres from each point to the boundary of its paired grid (inf if none)."""
    out = np.full(len(px), np.inf)
    counts = table.seg_ptr[grid + 1] - table.seg_ptr[grid]
    # Split the pairs so that no chunk expands to more than _CHUNK triples.
    ends = np.cumsum(counts)
    cut = np.searchsorted(ends, np.arange(_CHUNK, int(ends[-1]) if len(ends) else 0, _CHUNK))
    for lo, hi in zip(np.r_[0, cut], np.r_[cut, len(px)], strict=True):
        if hi > lo:
            out[lo:hi] = _distance_chunk(table, px[lo:hi], py[lo:hi], grid[lo:hi])
    return out


def _distance_chunk(table: RingTable, px: F8, py: F8, grid: I8) -> F8:
    out = np.full(len(px), np.inf)
    pair, k = expand(table.seg_ptr[grid + 1] - table.seg_ptr[grid])
    if len(pair) == 0:
        return out
    seg = table.seg_ptr[grid[pair]] + k
    kx, ky = _radii(py)
    kx, ky = kx[pair], ky[pair]
    x1, y1 = table.x1[seg], table.y1[seg]
    ax, ay = (x1 - px[pair]) * kx, (y1 - py[pair]) * ky
    bx, by = (table.x2[seg] - x1) * kx, (table.y2[seg] - y1) * ky
    t = np.clip(-(ax * bx + ay * by) / (bx * bx + by * by), 0.0, 1.0)
    d2 = (ax + t * bx) ** 2 + (ay + t * by) ** 2
    order = np.lexsort((d2, pair))
    first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    best_pair, best_t, best_seg = pair[first], t[first], seg[first]
    qx = table.x1[best_seg] + best_t * (table.x2[best_seg] - table.x1[best_seg])
    qy = table.y1[best_seg] + best_t * (table.y2[best_seg] - table.y1[best_seg])
    _, _, dist = _GEOD.inv(px[best_pair], py[best_pair], qx, qy)
    out[best_pair] = np.asarray(dist, dtype=np.float64)
    return out


def pick(n_points: int, point: I8, grid: I8, dist: F8,
         max_m: float) -> tuple[NDArray[np.int64], F8]:
    """Per point the grid with the least (distance to the millimetre, rank) within ``max_m``."""
    best = np.full(n_points, -1, dtype=np.int64)
    best_d = np.full(n_points, np.nan)
    ok = dist <= max_m
    point, grid, dist = point[ok], grid[ok], dist[ok]
    if len(point) == 0:
        return best, best_d
    order = np.lexsort((grid, np.round(dist, 3), point))
    first = order[np.r_[True, point[order][1:] != point[order][:-1]]]
    best[point[first]] = grid[first]
    best_d[point[first]] = dist[first]
    return best, best_d
