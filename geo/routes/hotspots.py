"""Incident hotspots: the H3 cells with the most incidents (pure; the points come from SQL).

A hotspot is one of the ``top`` H3 cells (resolution ``hotspot_resolution``,
10 by default: cells of about 15,000 m², edges of about 66 m, a block or two of a
Chinese city) ranked by the number of incidents reported in it, most first, ties
broken by the cell id so that the ranking is the same on every run. A patrol
*visits* a hotspot when it passes within ``hotspot_reach_m`` of the cell.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import h3
import numpy as np
from numpy.typing import ArrayLike
from shapely.geometry import Polygon


@dataclass(frozen=True)
class Hotspot:
    """One hotspot cell: its H3 id, incident count and centre (lon, lat)."""

    cell: str
    incidents: int
    lon: float
    lat: float

    def polygon(self) -> Polygon:
        """The cell as a (lon, lat) polygon."""
        return cell_polygon(self.cell)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (centre as [lon, lat])."""
        return {"cell": self.cell, "incidents": self.incidents,
                "centre": [round(self.lon, 7), round(self.lat, 7)]}


def cell_polygon(cell: str) -> Polygon:
    """The boundary of an H3 cell as a shapely polygon in (lon, lat) order."""
    return Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(cell)])


def top_cells(lon: ArrayLike, lat: ArrayLike, *, resolution: int, top: int) -> list[Hotspot]:
    """The ``top`` H3 cells by number of points, most first (ties: smaller cell id first).

    Parameters
    ----------
    lon, lat : array-like
        Incident positions, WGS-84 degrees.
    resolution : int
        H3 resolution (0-15).
    top : int
        How many cells at most.

    Returns
    -------
    list of Hotspot
    """
    lons = np.asarray(lon, dtype=float).ravel()
    lats = np.asarray(lat, dtype=float).ravel()
    counts: Counter[str] = Counter(
        h3.latlng_to_cell(float(y), float(x), resolution) for x, y in zip(lons, lats, strict=True))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max(top, 0)]
    out = []
    for cell, n in ranked:
        clat, clon = h3.cell_to_latlng(cell)
        out.append(Hotspot(cell=cell, incidents=int(n), lon=float(clon), lat=float(clat)))
    return out
