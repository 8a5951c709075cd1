"""The raster behind ``geo.index``: cells whose answer is known, and cells that need a test.

Every cell of a regular lon/lat raster gets one of three values:

* a grid rank ``>= 0``: every point of the cell (widened by ``MARGIN_DEG``) is
  strictly inside that grid, no grid that ranks before it has a boundary there,
  and nothing ranks before it inside;
* ``-1``: no grid covers any point of the cell;
* ``<= -2``: a *mixed* cell (``-2 - id``): the boundary of at least one grid that
  could win runs through it. Its candidates (the grids with a boundary there
  that rank before the best grid the cell is inside of) are tested exactly,
  point by point, with ``geo.index_pip``; the default is that best grid.

A cell is classified from exact geometry: boundary cells by a conservative
rasterisation of every segment widened by the margin, inside cells by the
even-odd rule at the cell centre (computed with a scanline). The even-odd rule
equals PostGIS's winding rule only for valid polygons, so an invalid grid has
its whole bounding box marked as boundary (all its points are tested exactly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from geo.index_pip import I8, RingTable, expand

#: Cells are widened by this much (degrees, about 1 cm) before being called inside or
#: outside, far above the ~1e-13 degree rounding of PostGIS's side test and of our cell maths.
MARGIN_DEG = 1e-7
#: The default largest number of raster cells (16 MiB of int32).
DEFAULT_MAX_CELLS = 1 << 22
UNSET = np.iinfo(np.int32).max


@dataclass(frozen=True)
class Frame:
    """A raster: origin ``(x0, y0)``, cell size ``(w, h)`` in degrees, ``n_cols x n_rows``."""

    x0: float
    y0: float
    w: float
    h: float
    n_cols: int
    n_rows: int

    @classmethod
    def around(cls, bounds: tuple[float, float, float, float], max_cells: int) -> Frame:
        """A frame over ``bounds`` with square-ish cells in metres, at most ~``max_cells``."""
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        k = max(math.cos(math.radians((miny + maxy) / 2)), 0.01)
        width, height = max(maxx - minx, 1e-9) * k, max(maxy - miny, 1e-9)
        side = max(math.sqrt(width * height / max(max_cells, 16)), 1e-6)
        w, h = side / k, side
        n_cols = math.ceil((maxx - minx) / w) + 4
        n_rows = math.ceil((maxy - miny) / h) + 4
        return cls(x0=minx - 2 * w, y0=miny - 2 * h, w=w, h=h, n_cols=n_cols, n_rows=n_rows)

    def cols(self, x: NDArray[np.float64]) -> I8:
        """Column of each ``x`` (may be out of range)."""
        return np.floor((x - self.x0) / self.w).astype(np.int64)

    def rows(self, y: NDArray[np.float64]) -> I8:
        """Row of each ``y`` (may be out of range)."""
        return np.floor((y - self.y0) / self.h).astype(np.int64)


@dataclass
class Raster:
    """The classified cells and the candidates of the mixed ones (CSR by mixed id)."""

    frame: Frame
    cells: NDArray[np.int32]
    mix_ptr: I8
    mix_cand: I8
    mix_default: I8

    @property
    def n_mixed(self) -> int:
        """How many cells need an exact test."""
        return len(self.mix_default)


def _boundary_pairs(t: RingTable, f: Frame, m: float) -> I8:
    """``grid * n_cells + cell`` of every cell whose widened box meets a segment (unique)."""
    xmin, xmax = np.minimum(t.x1, t.x2), np.maximum(t.x1, t.x2)
    ymin, ymax = np.minimum(t.y1, t.y2), np.maximum(t.y1, t.y2)
    ca, cb = f.cols(xmin - m), f.cols(xmax + m)
    seg, k = expand(cb - ca + 1)
    col = ca[seg] + k
    left = f.x0 + col * f.w
    xa = np.maximum(left - m, xmin[seg])
    xb = np.minimum(left + f.w + m, xmax[seg])
    xa = np.minimum(xa, xb)
    dx = t.x2[seg] - t.x1[seg]
    vertical = dx == 0
    slope = (t.y2[seg] - t.y1[seg]) / np.where(vertical, 1.0, dx)
    ya = np.where(vertical, ymin[seg], t.y1[seg] + (xa - t.x1[seg]) * slope)
    yb = np.where(vertical, ymax[seg], t.y1[seg] + (xb - t.x1[seg]) * slope)
    lo = np.clip(np.minimum(ya, yb), ymin[seg], ymax[seg]) - m
    hi = np.clip(np.maximum(ya, yb), ymin[seg], ymax[seg]) + m
    ra, rb = f.rows(lo), f.rows(hi)
    piece, j = expand(rb - ra + 1)
    row = ra[piece] + j
    col = col[piece]
    grid = t.seg_grid[seg[piece]]
    ok = (row >= 0) & (row < f.n_rows) & (col >= 0) & (col < f.n_cols)
    n_cells = f.n_cols * f.n_rows
    return np.unique(grid[ok] * n_cells + row[ok] * f.n_cols + col[ok])


def _crossings(t: RingTable, f: Frame) -> tuple[I8, I8, I8]:
    """Where each segment crosses the horizontal lines through the row centres.

    Returns (grid, row, first column whose centre lies right of the crossing); a
    ring crosses each centre line an even number of times (half-open rule).
    """
    ymin, ymax = np.minimum(t.y1, t.y2), np.maximum(t.y1, t.y2)
    r_lo = np.ceil((ymin - f.y0) / f.h - 0.5).astype(np.int64)
    r_hi = np.ceil((ymax - f.y0) / f.h - 0.5).astype(np.int64)  # exclusive
    seg, k = expand(np.maximum(r_hi - r_lo, 0))
    row = r_lo[seg] + k
    yc = f.y0 + (row + 0.5) * f.h
    x1, y1 = t.x1[seg], t.y1[seg]
    x = x1 + (yc - y1) * (t.x2[seg] - x1) / (t.y2[seg] - y1)
    col = np.floor((x - f.x0) / f.w - 0.5).astype(np.int64) + 1
    return t.seg_grid[seg], row, col


def classify(t: RingTable, bounds: Sequence[tuple[float, float, float, float] | None],
             valid: NDArray[np.bool_], frame: Frame) -> Raster:
    """Classify every cell of ``frame`` for the grids of ``t`` (given in rank order).

    Parameters
    ----------
    t : RingTable
        Segments of the grids, grid ``i`` being rank ``i`` (0 wins).
    bounds : sequence
        Bounding box of each grid, None for an empty one.
    valid : ndarray of bool
        Whether each grid is a valid polygon (even-odd rule usable).
    frame : Frame

    Returns
    -------
    Raster
    """
    f, m = frame, 2 * MARGIN_DEG
    n_cells = f.n_cols * f.n_rows
    best = np.full((f.n_rows, f.n_cols), UNSET, dtype=np.int32)
    pairs = _boundary_pairs(t, f, m)
    p_grid = pairs // max(n_cells, 1)
    p_ptr = np.searchsorted(p_grid, np.arange(len(bounds) + 1))
    c_grid, c_row, c_col = _crossings(t, f)
    c_ptr = np.searchsorted(c_grid, np.arange(len(bounds) + 1))
    extra: list[I8] = []
    for g, box in enumerate(bounds):
        if box is None:
            continue
        c0 = max(int(np.floor((box[0] - f.x0) / f.w)) - 1, 0)
        c1 = min(int(np.floor((box[2] - f.x0) / f.w)) + 1, f.n_cols - 1)
        r0 = max(int(np.floor((box[1] - f.y0) / f.h)) - 1, 0)
        r1 = min(int(np.floor((box[3] - f.y0) / f.h)) + 1, f.n_rows - 1)
        if not valid[g]:
            rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1]
            extra.append(g * n_cells + (rr * f.n_cols + cc).ravel())
            continue
        n_c = c1 - c0 + 1
        toggles = np.zeros((r1 - r0 + 1, n_c + 1), dtype=np.int32)
        a, b = c_ptr[g], c_ptr[g + 1]
        np.add.at(toggles, (c_row[a:b] - r0, np.clip(c_col[a:b] - c0, 0, n_c)), 1)
        inside = (np.cumsum(toggles[:, :n_c], axis=1) & 1).astype(bool)
        cells = pairs[p_ptr[g]:p_ptr[g + 1]] - g * n_cells
        inside[cells // f.n_cols - r0, cells % f.n_cols - c0] = False
        sub = best[r0:r1 + 1, c0:c1 + 1]
        sub[inside & (sub == UNSET)] = g
    if extra:
        pairs = np.unique(np.concatenate([pairs, *extra]))
    return _finish(f, best.ravel(), pairs // max(n_cells, 1), pairs % max(n_cells, 1))


def _finish(f: Frame, best: NDArray[np.int32], grid: I8, cell: I8) -> Raster:
    keep = grid < best[cell]
    grid, cell = grid[keep], cell[keep]
    order = np.lexsort((grid, cell))
    grid, cell = grid[order], cell[order]
    mixed, first = np.unique(cell, return_index=True)
    cells = np.where(best == UNSET, -1, best).astype(np.int32)
    default = cells[mixed].astype(np.int64)
    cells[mixed] = -2 - np.arange(len(mixed), dtype=np.int32)
    return Raster(frame=f, cells=cells, mix_ptr=np.r_[first, len(cell)].astype(np.int64),
                  mix_cand=grid.astype(np.int64), mix_default=default)
