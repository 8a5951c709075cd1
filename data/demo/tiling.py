"""Geometry helpers of the demo builder: seeds, Voronoi cells, Lloyd steps, contiguity.

Everything here works in a local metric frame (:class:`LocalFrame`, metres east
and north of the district's centre), so that distances and Voronoi cells are not
distorted by degrees of longitude being shorter than degrees of latitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8
#: Width (m) of the strip used to measure shared borders between float geometries.
TOUCH_M = 0.01


@dataclass(frozen=True)
class LocalFrame:
    """An equirectangular frame in metres around (``lon0``, ``lat0``); fine for a district."""

    lon0: float
    lat0: float

    @property
    def kx(self) -> float:
        """Metres per degree of longitude at ``lat0``."""
        return math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0))

    @property
    def ky(self) -> float:
        """Metres per degree of latitude."""
        return math.radians(1.0) * EARTH_RADIUS_M

    def to_local(self, geom: BaseGeometry) -> BaseGeometry:
        """``geom`` from (lon, lat) degrees to local metres."""
        offset = np.array([self.lon0, self.lat0])
        scale = np.array([self.kx, self.ky])
        return shapely.transform(geom, lambda xy: (xy - offset) * scale)

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        """``geom`` from local metres back to (lon, lat) degrees."""
        offset = np.array([self.lon0, self.lat0])
        scale = np.array([self.kx, self.ky])
        return shapely.transform(geom, lambda xy: xy / scale + offset)

    def point_to_local(self, lon: float, lat: float) -> tuple[float, float]:
        """One (lon, lat) point in local metres."""
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky


def sample_inside(area: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside ``area`` (rejection sampling on its bounds).

    Returns
    -------
    ndarray of shape (n, 2)
    """
    xmin, ymin, xmax, ymax = area.bounds
    shapely.prepare(area)
    found: list[np.ndarray] = []
    total = 0
    while total < n:
        xy = rng.uniform((xmin, ymin), (xmax, ymax), size=(max(64, 2 * n), 2))
        xy = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]
        found.append(xy)
        total += len(xy)
    return np.concatenate(found)[:n]


def farthest_points(candidates: np.ndarray, fixed: np.ndarray, k: int) -> np.ndarray:
    """Greedy farthest-point sampling: ``k`` candidates, each as far as possible from
    ``fixed`` and from those already picked (the first candidate starts when ``fixed`` is empty).

    Returns
    -------
    ndarray of shape (k, 2)
    """
    if k <= 0:
        return np.empty((0, 2))
    picked: list[int] = []
    if len(fixed):
        dist = np.min(np.linalg.norm(candidates[:, None, :] - fixed[None, :, :], axis=2), axis=1)
    else:
        picked.append(0)
        dist = np.linalg.norm(candidates - candidates[0], axis=1)
    while len(picked) < k:
        i = int(np.argmax(dist))
        picked.append(i)
        dist = np.minimum(dist, np.linalg.norm(candidates - candidates[i], axis=1))
    return candidates[picked]


def voronoi_cells(seeds: np.ndarray, parent: BaseGeometry) -> list[BaseGeometry]:
    """The Voronoi cells of ``seeds`` clipped to ``parent``, in the order of ``seeds``."""
    if len(seeds) == 1:
        return [parent]
    xmin, ymin, xmax, ymax = parent.bounds
    pad = max(xmax - xmin, ymax - ymin) + 1.0
    frame = shapely.box(xmin - pad, ymin - pad, xmax + pad, ymax + pad)
    diagram = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=frame, ordered=True)
    cells = list(shapely.get_parts(diagram))
    if len(cells) != len(seeds):
        raise ValueError(f"{len(seeds)} seeds gave {len(cells)} Voronoi cells (duplicate seeds?)")
    return [shapely.intersection(cell, parent) for cell in cells]


def _inner_point(cell: BaseGeometry, parent: BaseGeometry) -> tuple[float, float]:
    centroid = cell.centroid
    if not cell.is_empty and parent.covers(centroid):
        return centroid.x, centroid.y
    parts = sorted(shapely.get_parts(cell), key=lambda p: -p.area)
    rep = parts[0].representative_point() if parts else parent.representative_point()
    return rep.x, rep.y


def lloyd(seeds: np.ndarray, movable: np.ndarray, parent: BaseGeometry,
          iterations: int) -> np.ndarray:
    """Lloyd relaxation: move each ``movable`` seed to the centroid of its clipped cell.

    Fixed seeds (``movable`` False) stay put. A centroid that falls outside ``parent``
    is replaced by a point inside the cell's largest part.
    """
    seeds = seeds.copy()
    for _ in range(iterations):
        cells = voronoi_cells(seeds, parent)
        for i, cell in enumerate(cells):
            if movable[i]:
                seeds[i] = _inner_point(cell, parent)
    return seeds


def _border(a: BaseGeometry, b: BaseGeometry) -> float:
    """Length of the border ``a`` shares with ``b`` (within :data:`TOUCH_M`)."""
    return float(shapely.intersection(a.boundary, b.buffer(TOUCH_M)).length)


def make_contiguous(cells: Mapping[str, BaseGeometry]) -> dict[str, BaseGeometry]:
    """One polygon per cell: a cell's stray pieces go to the neighbour sharing the longest border.

    Each cell keeps its largest piece; every other piece is merged into the sibling
    it shares the longest border with (ties: the smaller key). Pieces
    touching no sibling stay where they are. Repeats until nothing moves.
    """
    out = {key: geom for key, geom in cells.items()}
    keys = sorted(out)
    for _ in range(4 * len(keys) + 4):
        moved = False
        for key in keys:
            parts = sorted(shapely.get_parts(out[key]), key=lambda p: -p.area)
            parts = [p for p in parts if p.area > 0]
            if len(parts) <= 1:
                continue
            keep = [parts[0]]
            for piece in parts[1:]:
                borders = [(-_border(piece, out[other]), other)
                           for other in keys if other != key]
                best = min(borders, default=None)
                if best is None or best[0] >= 0:
                    keep.append(piece)
                    continue
                out[best[1]] = shapely.union(out[best[1]], piece)
                moved = True
            out[key] = shapely.union_all(keep)
        if not moved:
            break
    return out


def largest_part(geom: BaseGeometry) -> Polygon:
    """The largest polygon of ``geom``."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon)]
    return max(parts, key=lambda p: p.area)


def covers_point(geom: BaseGeometry, xy: tuple[float, float]) -> bool:
    """Whether ``geom`` covers the point ``xy``."""
    return bool(geom.covers(Point(xy)))
