"""Points binned into H3 cells (pure numpy; the points come from SQL).

The map pages never ship raw incidents to a browser: :func:`bin_points` turns a
million positions into one row per H3 cell (and per time frame, for the time
slider) with the number of points and their mean position, a few thousand rows
for a city district. Cells are exact H3 cells of the points (the H3 library,
through ``h3ronpy`` over whole arrays), not an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3
import numpy as np
from h3ronpy.vector import coordinates_to_cells
from numpy.typing import ArrayLike, NDArray

#: H3 resolutions the pages accept: 6 (~3.2 km edges) to 12 (~9 m edges).
MIN_RESOLUTION, MAX_RESOLUTION = 6, 12


@dataclass(frozen=True)
class CellBins:
    """One row per (frame, cell) with points: ids, counts and the points' mean position.

    ``frame`` is all zeros when the points had no frame.
    """

    cell: NDArray[np.uint64]
    frame: NDArray[np.int64]
    count: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.cell)

    @property
    def total(self) -> int:
        """The number of points binned."""
        return int(self.count.sum())

    def cell_ids(self) -> list[str]:
        """The cells as H3 strings (``8a41b5224957fff``)."""
        return [h3.int_to_str(int(c)) for c in self.cell]


def cells_of(lon: ArrayLike, lat: ArrayLike, resolution: int) -> NDArray[np.uint64]:
    """The H3 cell (as an unsigned 64-bit integer) of every (lon, lat) point."""
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution {resolution} outside {MIN_RESOLUTION}-{MAX_RESOLUTION}")
    lats = np.ascontiguousarray(lat, dtype=np.float64).ravel()
    lons = np.ascontiguousarray(lon, dtype=np.float64).ravel()
    if len(lats) != len(lons):
        raise ValueError(f"lon and lat differ in length: {len(lons)}, {len(lats)}")
    if len(lats) == 0:
        return np.zeros(0, dtype=np.uint64)
    # h3ronpy runs the H3 C library over whole arrays (about twice the speed of a Python loop
    # over h3.latlng_to_cell; tests/maps/test_h3bins.py checks they agree)
    return np.asarray(coordinates_to_cells(lats, lons, resolution), dtype=np.uint64)


def bin_points(lon: ArrayLike, lat: ArrayLike, resolution: int,
               frame: ArrayLike | None = None) -> CellBins:
    """Bin points into H3 cells at ``resolution``, per value of ``frame`` when given.

    Parameters
    ----------
    lon, lat : array-like
        WGS-84 degrees, one entry per point.
    resolution : int
        H3 resolution, ``MIN_RESOLUTION`` to ``MAX_RESOLUTION``.
    frame : array-like of int, optional
        A time frame per point (week number, hour of day); bins are per (frame, cell).

    Returns
    -------
    CellBins
        Ordered by frame, then cell id.
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    f = (np.zeros(len(x), dtype=np.int64) if frame is None
         else np.asarray(frame, dtype=np.int64).ravel())
    if not len(x) == len(y) == len(f):
        raise ValueError(f"lon, lat and frame differ in length: {len(x)}, {len(y)}, {len(f)}")
    if len(x) == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return CellBins(np.zeros(0, dtype=np.uint64), empty_i, empty_i, empty_f, empty_f)
    cells = cells_of(x, y, resolution)
    unique_cells, cell_index = np.unique(cells, return_inverse=True)
    if frame is None:  # one sort is enough
        counts = np.bincount(cell_index)
        return CellBins(cell=unique_cells, frame=np.zeros(len(unique_cells), dtype=np.int64),
                        count=counts.astype(np.int64),
                        lon=np.bincount(cell_index, weights=x) / counts,
                        lat=np.bincount(cell_index, weights=y) / counts)
    frames, frame_index = np.unique(f, return_inverse=True)
    key = frame_index.astype(np.int64) * len(unique_cells) + cell_index
    keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return CellBins(cell=unique_cells[keys % len(unique_cells)],
                    frame=frames[keys // len(unique_cells)].astype(np.int64),
                    count=counts.astype(np.int64),
                    lon=np.bincount(inverse, weights=x) / counts,
                    lat=np.bincount(inverse, weights=y) / counts)
