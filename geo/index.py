"""The in-memory assignment index: point -> finest current grid, exact and fast.

Rule
----
``locate(lon, lat)`` answers what ``geo.assign.choose_chain`` makes of PostGIS's
``ST_Covers`` candidates: among the current grids whose polygon covers the point
(boundary included), the one of the greatest ``depth``, then the smallest
``code``. Grids are ranked once by ``(-depth, code)``; the answer is the covering
grid of lowest rank.

How
---
A regular lon/lat raster (``CELLS_PER_GRID`` cells per grid, at most
``max_cells``: 3.5 m cells in the demo city, 18 m over Chicago) holds, per
cell, the answer when it is the same for every point of the cell
(``geo.index_raster``); more than 95 % of points are answered by one array
lookup. Cells crossed by the boundary of a grid that could win keep a short
candidate list, tested with a numpy transcription of PostGIS's own
point-in-polygon (``geo.index_pip``), so that even a point a hair off a
slanted shared edge gets PostGIS's answer, not merely a defensible one (GEOS's
robust predicates disagree with PostGIS on a few points in ten thousand placed on
a long slanted edge).

``nearest`` (for points outside every grid) ranks grids by geodesic distance in
metres to the millimetre, ties going to the lower rank, like
``geo.store.grid_queries.nearest``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import index_nearest
from geo.errors import InvalidInput, NotFound
from geo.index_pip import I8, RingTable, Slabs, covers_pairs, expand
from geo.index_raster import DEFAULT_MAX_CELLS, MARGIN_DEG, Frame, Raster, classify

_CURRENT_GRIDS = text("""
    SELECT id, code, name, level, depth, parent_code, ST_AsBinary(geom) AS wkb
      FROM grid WHERE valid_to IS NULL""")


#: Raster cells per grid (up to ``max_cells``) and the fewest cells of a raster.
CELLS_PER_GRID = 16_384
MIN_CELLS = 65_536


@dataclass(frozen=True)
class IndexedGrid:
    """A current grid as the index sees it (``geom`` in WGS-84 lon/lat)."""

    code: str
    depth: int
    parent_code: str | None
    geom: BaseGeometry
    name: str = ""
    level: str = ""
    #: The grid version (``grid.id``) the index was read from; None for grids built in memory.
    id: int | None = None


@dataclass
class IndexStats:
    """How the index was built: sizes and seconds (for logs and benchmarks)."""

    grids: int = 0
    segments: int = 0
    cells: int = 0
    mixed_cells: int = 0
    cell_m: float = 0.0
    invalid: list[str] = field(default_factory=list)
    build_s: float = 0.0


class AssignmentIndex:
    """Exact point -> grid lookups over a fixed set of grids; build with ``build`` or ``load``.

    Instances are immutable after construction and safe to share between threads.
    """

    def __init__(self, grids: list[IndexedGrid], table: RingTable, raster: Raster,
                 slabs: Slabs, epoch: int, stats: IndexStats) -> None:
        self.grids = grids
        self.epoch = epoch
        self.stats = stats
        self._table = table
        self._raster = raster
        self._slabs = slabs
        self._codes = np.array([g.code for g in grids] + [None], dtype=object)
        self._rank = {g.code: i for i, g in enumerate(grids)}
        nonempty = [i for i, g in enumerate(grids) if not g.geom.is_empty]
        self._tree_grid = np.array(nonempty, dtype=np.int64)
        self._tree = shapely.STRtree([grids[i].geom for i in nonempty])
        self._tree.query(shapely.Point(0.0, 0.0))  # build the tree now, not in a racing thread

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, grids: Sequence[IndexedGrid], *, epoch: int = 0,
              max_cells: int = DEFAULT_MAX_CELLS) -> AssignmentIndex:
        """Index ``grids``.

        Parameters
        ----------
        grids : sequence of IndexedGrid
            Every grid that may answer; codes must be unique.
        epoch : int
            The ``grid_epoch`` the grids were read at (see ``geo.index_cache``).
        max_cells : int
            Upper bound of raster cells (4 bytes each); the raster gets
            ``CELLS_PER_GRID`` cells per grid, at least ``MIN_CELLS``, at most this.

        Returns
        -------
        AssignmentIndex

        Raises
        ------
        InvalidInput
            When a code appears twice.
        """
        started = time.perf_counter()
        ordered = sorted(grids, key=lambda g: (-g.depth, g.code))
        for a, b in itertools.pairwise(ordered):
            if a.code == b.code:
                raise InvalidInput(f"grid code {a.code!r} appears more than once", field="code",
                                   value=a.code, valid="one grid per code")
        geoms = np.array([g.geom for g in ordered], dtype=object)
        table = RingTable.from_geoms(list(geoms))
        empty = shapely.is_empty(geoms) if len(geoms) else np.zeros(0, dtype=bool)
        bounds = [None if e else tuple(b) for e, b in zip(empty, shapely.bounds(geoms),
                                                          strict=True)] if len(geoms) else []
        valid = shapely.is_valid(geoms) if len(geoms) else np.zeros(0, dtype=bool)
        boxes = [b for b in bounds if b is not None]
        extent = ((min(b[0] for b in boxes), min(b[1] for b in boxes),
                   max(b[2] for b in boxes), max(b[3] for b in boxes)) if boxes
                  else (0.0, 0.0, 1e-6, 1e-6))
        cells = min(max_cells, max(MIN_CELLS, CELLS_PER_GRID * len(ordered)))
        frame = Frame.around(extent, cells)
        raster = classify(table, bounds, np.asarray(valid, dtype=bool), frame)
        slabs = Slabs.build(table, frame.y0, frame.h, frame.n_rows, 2 * MARGIN_DEG)
        stats = IndexStats(
            grids=len(ordered), segments=len(table), cells=frame.n_cols * frame.n_rows,
            mixed_cells=raster.n_mixed, cell_m=frame.h * 110_574.0,
            invalid=[g.code for g, ok, e in zip(ordered, valid, empty, strict=True)
                     if not ok and not e])
        stats.build_s = time.perf_counter() - started
        return cls(ordered, table, raster, slabs, epoch, stats)

    @classmethod
    def load(cls, session: Session, *, max_cells: int = DEFAULT_MAX_CELLS) -> AssignmentIndex:
        """Index the current grids (``valid_to IS NULL``) as ``session`` sees them.

        The epoch is read before the grids: if grids change in between, the index
        carries the older epoch and the next cache check rebuilds it.
        """
        epoch = int(session.execute(text("SELECT epoch FROM grid_epoch")).scalar_one())
        rows = session.execute(_CURRENT_GRIDS).all()
        geoms: list[BaseGeometry] = list(shapely.from_wkb([bytes(r.wkb) for r in rows]))
        grids = [IndexedGrid(code=r.code, depth=int(r.depth), parent_code=r.parent_code,
                             geom=g, name=r.name, level=r.level, id=int(r.id))
                 for r, g in zip(rows, geoms, strict=True)]
        return cls.build(grids, epoch=epoch, max_cells=max_cells)

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.grids)

    def __contains__(self, code: object) -> bool:
        return code in self._rank

    def grid(self, code: str) -> IndexedGrid:
        """The indexed grid ``code``; NotFound when it is not a current grid."""
        rank = self._rank.get(code)
        if rank is None:
            raise NotFound(f"grid {code!r} is not a current grid", field="grid", value=code,
                           valid="the code of a current grid (GET /api/v1/grids)")
        return self.grids[rank]

    def locate(self, lon: float, lat: float) -> str | None:
        """The code of the finest grid covering (lon, lat) (WGS-84), or None."""
        r = self._raster
        f = r.frame
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        col = int((lon - f.x0) // f.w)
        row = int((lat - f.y0) // f.h)
        if not (0 <= col < f.n_cols and 0 <= row < f.n_rows):
            return None
        value = int(r.cells[row * f.n_cols + col])
        if value >= -1:
            return self._codes[value] if value >= 0 else None
        return self.locate_many(np.array([lon]), np.array([lat]))[0]

    def locate_ranks(self, lon: ArrayLike, lat: ArrayLike) -> I8:
        """Rank (index into ``grids``) of the finest covering grid per point, -1 for none."""
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise InvalidInput(f"lon has {x.size} values and lat {y.size}", field="lat",
                               value=y.size, valid=f"as many values as lon ({x.size})")
        r, f = self._raster, self._raster.frame
        out = np.full(x.size, -1, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            cx, cy = (x - f.x0) / f.w, (y - f.y0) / f.h
            ok = (cx >= 0) & (cx < f.n_cols) & (cy >= 0) & (cy < f.n_rows)
        idx = np.flatnonzero(ok)
        col, row = cx[idx].astype(np.int64), cy[idx].astype(np.int64)
        value = r.cells[row * f.n_cols + col].astype(np.int64)
        out[idx] = np.maximum(value, -1)
        mixed = value <= -2
        if mixed.any():
            out[idx[mixed]] = self._resolve(x[idx[mixed]], y[idx[mixed]], row[mixed],
                                            -2 - value[mixed])
        return out

    def _resolve(self, x: NDArray[np.float64], y: NDArray[np.float64], row: I8,
                 mix: I8) -> I8:
        r = self._raster
        start = r.mix_ptr[mix]
        point, k = expand(r.mix_ptr[mix + 1] - start)
        cand = r.mix_cand[start[point] + k]
        covered = covers_pairs(self._table, self._slabs, x[point], y[point], cand, row[point])
        big = np.iinfo(np.int64).max
        score = np.where(covered, cand, big)
        first = np.flatnonzero(np.r_[True, point[1:] != point[:-1]])
        best = np.minimum.reduceat(score, first)
        default = r.mix_default[mix]
        best = np.minimum(best, np.where(default >= 0, default, big))
        return np.where(best == big, -1, best)

    def locate_many(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[Any]:
        """``locate`` for arrays: an object array of codes (None where nothing covers)."""
        return self._codes[self.locate_ranks(lon, lat)]

    def nearest(self, lon: float, lat: float, max_m: float) -> tuple[str, float] | None:
        """The grid nearest to (lon, lat) within ``max_m`` metres and the distance.

        A covered point answers its ``locate`` grid at 0 m. Otherwise the grids are
        ranked by geodesic distance (WGS-84) rounded to the millimetre, then by rank
        (deeper, then smaller code). None when no grid is that close.
        """
        codes, dist = self.nearest_many(np.array([lon]), np.array([lat]), max_m)
        return None if codes[0] is None else (str(codes[0]), float(dist[0]))

    def nearest_many(self, lon: ArrayLike, lat: ArrayLike,
                     max_m: float) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """``nearest`` for arrays: (codes, metres); None and NaN where no grid is close."""
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        ranks = self.locate_ranks(x, y)
        dist = np.where(ranks >= 0, 0.0, np.nan)
        todo = np.flatnonzero((ranks < 0) & np.isfinite(x) & np.isfinite(y))
        if len(todo) and max_m >= 0 and len(self._tree_grid):
            point, grid = index_nearest.candidate_pairs(self._tree, self._tree_grid,
                                                        x[todo], y[todo], max_m)
            d = index_nearest.boundary_distance(self._table, x[todo][point], y[todo][point],
                                                grid)
            best, best_d = index_nearest.pick(len(todo), point, grid, d, max_m)
            ranks[todo] = best
            dist[todo] = best_d
        return self._codes[ranks], dist

    def chain(self, code: str) -> list[tuple[str, str, str]]:
        """``(code, name, level)`` from the coarsest ancestor down to ``code``.

        Follows ``parent_code`` through the current grids; stops at a parent that is
        not current (or at a cycle). NotFound when ``code`` is not current.
        """
        node: IndexedGrid | None = self.grid(code)
        out: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        while node is not None and node.code not in seen:
            seen.add(node.code)
            out.append((node.code, node.name, node.level))
            parent = node.parent_code
            node = self.grids[self._rank[parent]] if parent in self._rank else None
        return out[::-1]
