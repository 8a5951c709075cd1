"""Balanced partitions of a parent into k contiguous grids built from H3 cells (pure).

1. **Cells**: the H3 cells (resolution chosen so that there are about 40 per
   grid wanted, 300-4,000 in all, or given) whose centres lie within one cell
   edge of the parent, clipped to the parent: their union is the parent, so
   the result has no gaps and nothing outside it.
2. **Weights**: each cell's workload (incidents counted in it, households
   spread over it by area from the current grids, or the mix of both shares).
3. **Region growing**: k seeds spread over the parent (farthest-point
   sampling of cell centres in metres from a seeded start); the region with
   the least workload so far takes the unassigned neighbour cell nearest to
   its seed, until every cell is taken (cells no region can reach join the
   nearest region).
4. **Local search**: a cell on the edge of a heavier region moves to a lighter
   neighbouring region when that lowers the sum of squared deviations of the
   regions' workloads and the region it leaves stays connected; repeated until
   no move helps (or a move budget runs out).

This runs from ``STARTS`` (4) seeds and keeps the most balanced result. Same
input and seed, same partition.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h3
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo import topology
from geo.errors import InvalidInput

MIN_CELLS, MAX_CELLS, CELLS_PER_GRID = 300, 4000, 40
#: Weight of the spread of the regions against their balance in the local search.
COMPACTNESS = 0.05
#: Region growings tried from different seeds; the most balanced one is kept.
STARTS = 4


@dataclass
class Cells:
    """The clipped cells of a parent: ids, pieces, centres (metres), neighbours."""

    ids: list[str]
    pieces: list[BaseGeometry]
    xy: np.ndarray
    neighbours: list[list[int]]
    resolution: int
    small: np.ndarray  # slivers (< 5 % of a cell): never seeds, joined to a neighbour

    def __len__(self) -> int:
        return len(self.ids)


def choose_resolution(area_m2: float, k: int) -> int:
    """The finest resolution with at most MAX_CELLS cells, aiming at ~40 cells per grid."""
    want = min(max(CELLS_PER_GRID * k, MIN_CELLS), MAX_CELLS)
    for res in range(6, 14):
        if area_m2 / h3.average_hexagon_area(res, "m^2") >= want:
            return res
    return 13


def cells_of(parent: BaseGeometry, resolution: int, meter: topology.AreaMeter) -> Cells:
    """The H3 cells covering ``parent`` (WGS-84), clipped to it."""
    edge_deg = h3.average_hexagon_edge_length(resolution, "m") / 90_000.0
    reach = parent.buffer(edge_deg * 1.5)
    found: set[str] = set()
    for part in topology.polygonal(reach).geoms:
        shape = h3.LatLngPoly([(y, x) for x, y in part.exterior.coords],
                              *[[(y, x) for x, y in ring.coords] for ring in part.interiors])
        found.update(h3.h3shape_to_cells(shape, resolution))
    ids = sorted(found)
    hexes = np.array([Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)]) for c in ids],
                     dtype=object)
    shapely.prepare(parent)
    clipped = shapely.intersection(hexes, parent)
    ids_out: list[str] = []
    pieces: list[BaseGeometry] = []
    for cell, piece in zip(ids, clipped, strict=True):
        for part in topology.polygonal(piece).geoms:  # a cell cut in two by a notch: two nodes
            if part.area > 0:
                ids_out.append(cell)
                pieces.append(part)
    ids = ids_out
    centres = meter.project(shapely.centroid(np.array(pieces, dtype=object)))
    xy = np.column_stack([shapely.get_x(centres), shapely.get_y(centres)])
    by_cell: dict[str, list[int]] = {}
    for i, c in enumerate(ids):
        by_cell.setdefault(c, []).append(i)
    pairs = np.array([(i, j) for i, c in enumerate(ids) for n in h3.grid_disk(c, 1)
                      for j in by_cell.get(n, ()) if j > i], dtype=np.int64).reshape(-1, 2)
    neighbours: list[list[int]] = [[] for _ in ids]
    for i, j in pairs[_share_edge(np.array(pieces, dtype=object), pairs, edge_deg)]:
        neighbours[int(i)].append(int(j))
        neighbours[int(j)].append(int(i))
    area = meter.areas(pieces)
    small = area < 0.05 * h3.average_hexagon_area(resolution, "m^2")
    return Cells(ids=ids, pieces=pieces, xy=xy, neighbours=neighbours, resolution=resolution,
                 small=small)


def _share_edge(pieces: np.ndarray, pairs: np.ndarray, edge_deg: float) -> np.ndarray:
    """For each pair, whether the two pieces share a stretch of edge (not just a corner)."""
    if not len(pairs):
        return np.zeros(0, dtype=bool)
    grown = shapely.buffer(pieces, 1e-9, quad_segs=1)
    band = shapely.area(shapely.intersection(grown[pairs[:, 0]], grown[pairs[:, 1]]))
    return np.asarray(band > edge_deg * 1e-10)


def _seeds(xy: np.ndarray, weights: np.ndarray, k: int, seed: int,
           small: np.ndarray) -> list[int]:
    rng = np.random.default_rng(seed)
    heavy = np.flatnonzero((weights >= np.quantile(weights, 0.5)) & ~small)
    first = int(rng.choice(heavy if len(heavy) else np.flatnonzero(~small)))
    chosen = [first]
    dist = np.linalg.norm(xy - xy[first], axis=1)
    dist[small] = -1.0
    while len(chosen) < k:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(xy - xy[nxt], axis=1))
        dist[small] = -1.0
    return chosen


def _grow(cells: Cells, weights: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    label = np.full(len(cells), -1, dtype=np.int64)
    load = np.zeros(len(seeds))
    fronts: list[list[tuple[float, int]]] = [[] for _ in seeds]

    def take(r: int, c: int) -> None:
        label[c] = r
        load[r] += weights[c]
        for n in cells.neighbours[c]:
            if label[n] < 0:
                heapq.heappush(fronts[r], (float(np.linalg.norm(cells.xy[n] -
                                                                cells.xy[seeds[r]])), n))

    for r, c in enumerate(seeds):
        take(r, c)
    active = set(range(len(seeds)))
    while active:
        r = min(active, key=lambda j: (load[j], j))
        front = fronts[r]
        while front and label[front[0][1]] >= 0:
            heapq.heappop(front)
        if not front:
            active.discard(r)
            continue
        take(r, heapq.heappop(front)[1])
    taken = np.flatnonzero(label >= 0)
    for island in np.flatnonzero(label < 0):  # cells no region reached: the nearest taken one
        d = np.linalg.norm(cells.xy[taken] - cells.xy[island], axis=1)
        label[island] = label[taken[int(np.argmin(d))]]
    return label


def _connected_without(cells: Cells, label: np.ndarray, c: int) -> bool:
    region = label[c]
    members = [n for n in cells.neighbours[c] if label[n] == region]
    if len(members) <= 1:
        return True
    seen = {members[0]}
    todo = deque([members[0]])
    targets = set(members)
    while todo and not targets <= seen:
        cur = todo.popleft()
        for n in cells.neighbours[cur]:
            if n != c and n not in seen and label[n] == region:
                seen.add(n)
                todo.append(n)
    return targets <= seen


def _improve(cells: Cells, weights: np.ndarray, label: np.ndarray, k: int, max_moves: int,
             compactness: float) -> np.ndarray:
    """Move edge cells while ``balance + compactness × spread`` falls (see the module doc)."""
    label = label.copy()
    load = np.bincount(label, weights=weights, minlength=k).astype(float)
    size = np.bincount(label, minlength=k).astype(float)
    sums = np.zeros((k, 2))
    np.add.at(sums, label, cells.xy)
    mean = load.sum() / k or 1.0
    # spread: squared distance (m²) of a cell to its region's centre, over a region's area
    ref = max(float(np.ptp(cells.xy[:, 0]) * np.ptp(cells.xy[:, 1])) / k, 1.0)
    moves = 0
    improved = True
    while improved and moves < max_moves:
        improved = False
        edge = [c for c in range(len(cells))
                if any(label[n] != label[c] for n in cells.neighbours[c])]
        for c in edge:
            a = int(label[c])
            if size[a] <= 1:
                continue
            w = float(weights[c])
            centre_a = sums[a] / size[a]
            here = float(np.sum((cells.xy[c] - centre_a) ** 2))
            best: tuple[float, int] | None = None
            for b in {int(label[n]) for n in cells.neighbours[c] if label[n] != a}:
                balance = 2 * w * (w + load[b] - load[a]) / mean ** 2
                there = float(np.sum((cells.xy[c] - sums[b] / size[b]) ** 2))
                delta = balance + compactness * (there - here) / ref
                if delta < -1e-12 and (best is None or delta < best[0]):
                    best = (delta, b)
            if best is None or not _connected_without(cells, label, c):
                continue
            b = best[1]
            label[c] = b
            load[a] -= w
            load[b] += w
            size[a] -= 1
            size[b] += 1
            sums[a] -= cells.xy[c]
            sums[b] += cells.xy[c]
            moves += 1
            improved = True
    return label


def partition(cells: Cells, weights: np.ndarray, k: int, *, seed: int = 0,
              max_moves: int = 50_000, compactness: float = COMPACTNESS,
              starts: int = STARTS) -> np.ndarray:
    """A region label (0..k-1) per cell: contiguous regions of balanced weight.

    Runs from ``starts`` seeds (``seed``, ``seed + 1``, …) and keeps the partition
    whose region weights have the smallest spread (the first on a tie).
    """
    if not 1 <= k <= len(cells):
        raise InvalidInput(f"k {k} is out of range for {len(cells)} cells", field="k", value=k,
                           valid=f"an integer from 1 to {len(cells)} (or a finer resolution)")
    if k > int((~cells.small).sum()):
        raise InvalidInput(f"k {k} is more than the {int((~cells.small).sum())} cells",
                           field="k", value=k, valid="fewer grids, or a finer resolution")
    best: tuple[float, np.ndarray] | None = None
    for start in range(seed, seed + max(starts, 1)):
        label = _grow(cells, weights, _seeds(cells.xy, weights, k, start, cells.small))
        label = _improve(cells, weights, label, k, max_moves, compactness)
        spread = float(np.bincount(label, weights=weights, minlength=k).std())
        if best is None or spread < best[0] - 1e-12:
            best = (spread, label)
    assert best is not None
    return best[1]


def cell_weights(cells: Cells, *, lon: np.ndarray, lat: np.ndarray,
                 grids: Mapping[str, tuple[BaseGeometry, int | None]], measure: str,
                 weight: float, meter: topology.AreaMeter) -> np.ndarray:
    """Workload of each cell: incidents in it, households spread by area, or the mix."""
    pos = {c: i for i, c in enumerate(cells.ids)}
    incidents = np.zeros(len(cells))
    for cell in (h3.latlng_to_cell(float(y), float(x), cells.resolution)
                 for x, y in zip(lon, lat, strict=True)):
        if cell in pos:
            incidents[pos[cell]] += 1
    households = np.zeros(len(cells))
    if measure != "incidents":
        pieces = np.array(cells.pieces, dtype=object)
        for geom, hh in grids.values():
            if not hh:
                continue
            shares = meter.areas(shapely.intersection(pieces, geom)) / max(meter.area(geom), 1e-9)
            households += hh * shares
    if measure == "incidents":
        return incidents
    if measure == "households":
        return households
    ti, th = incidents.sum() or 1.0, households.sum() or 1.0
    return weight * incidents / ti + (1 - weight) * households / th


def regions(cells: Cells, label: np.ndarray, k: int,
            meter: topology.AreaMeter) -> list[BaseGeometry]:
    """The union of each region's cell pieces; a detached sliver (< 5 % of a cell) of one
    region goes to a region it touches along an edge."""
    shapes: list[BaseGeometry] = [topology.polygonal(shapely.union_all(
        [cells.pieces[i] for i in np.flatnonzero(label == r)])) for r in range(k)]
    limit = 0.05 * h3.average_hexagon_area(cells.resolution, "m^2")
    for r in range(k):
        parts: list[BaseGeometry] = sorted(shapely.get_parts(shapes[r]), key=lambda g: -g.area)
        if len(parts) < 2:
            continue
        keep = [parts[0]]
        for part in parts[1:]:
            if meter.area(part) >= limit:
                keep.append(part)
                continue
            near = [o for o in range(k) if o != r and shapely.dwithin(shapes[o], part, 1e-9)]
            if not near:
                keep.append(part)
                continue
            grown = shapely.buffer(part, 1e-9, quad_segs=1)
            best = max(near, key=lambda o: float(shapely.area(
                shapely.intersection(grown, shapes[o]))))
            shapes[best] = topology.polygonal(shapely.union(shapes[best], part))
        shapes[r] = topology.polygonal(shapely.union_all(keep))
    return shapes
