"""Where incidents go: the checks against the database and the grid of each point.

Part of :mod:`geo.incidents.intake` (see its docstring for the rules): category
check, conversion to WGS-84 (vectorised per CRS), the grid from the assignment
index, snapping within ``settings.snap_tolerance_m`` and the swapped-pair refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from sqlalchemy.orm import Session

from geo import crs as crs_mod
from geo.errors import InvalidInput
from geo.incidents.schema import IncidentIn
from geo.settings import Settings
from geo.store import incidents as store

_CATEGORIES_SHOWN = 40


class Index(Protocol):
    """What the intake uses of ``geo.index.AssignmentIndex``."""

    def locate_many(self, lon: Any, lat: Any) -> Any: ...
    def nearest_many(self, lon: Any, lat: Any, max_m: float) -> tuple[Any, Any]: ...
    def chain(self, code: str) -> list[tuple[str, str, str]]: ...
    def __len__(self) -> int: ...


@dataclass
class Placed:
    """An item after the checks: where it is and which grid it goes to."""

    item: IncidentIn
    lon: float
    lat: float
    sla_hours: float
    grid: str | None
    snapped_m: float | None
    unassigned_reason: str | None


# --------------------------------------------------------------------------- checks

def _category_error(item: IncidentIn, known: Sequence[str]) -> InvalidInput:
    shown = ", ".join(known[:_CATEGORIES_SHOWN])
    if len(known) > _CATEGORIES_SHOWN:
        shown += f" … ({len(known)} in all: GET /api/v1/categories)"
    return _with_row(InvalidInput(
        f"category {item.category!r} is not in the category table", field="category",
        value=item.category, valid=shown or "(no categories: load them first)"), item)


def _with_row(exc: InvalidInput, item: IncidentIn) -> InvalidInput:
    if item.row is not None:
        exc.extra.setdefault("row", item.row)
    return exc


def _to_wgs84(items: Sequence[IncidentIn]) -> tuple[np.ndarray, np.ndarray]:
    lon = np.fromiter((i.lon for i in items), dtype=np.float64, count=len(items))
    lat = np.fromiter((i.lat for i in items), dtype=np.float64, count=len(items))
    crs_of = np.array([i.crs for i in items], dtype=object)
    for name in set(crs_of.tolist()) - {"wgs84"}:
        mask = crs_of == name
        lon[mask], lat[mask] = crs_mod.to_wgs84(lon[mask], lat[mask], name)
    return lon, lat


def _bad_conversion(item: IncidentIn, lon: float, lat: float) -> InvalidInput | None:
    if np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90:
        return None
    return _with_row(InvalidInput(
        f"the point ({item.lon}, {item.lat}) in {item.crs} is not a place on Earth in WGS-84",
        field="lon", value=item.lon, valid="an (x, y) inside the area of use of "
              f"{crs_mod.area_of_use_text(item.crs)}",
        extra={"lat": item.lat}), item)


def _swapped_grids(index: Index, items: Sequence[IncidentIn], far: np.ndarray) -> np.ndarray:
    """For the items at positions ``far`` (outside every grid): the grid that would cover
    (lat, lon), when swapping makes a valid pair of a geographic CRS (else None)."""
    out = np.full(len(items), None, dtype=object)
    cand = [k for k in far.tolist() if not items[k].projected
            and items[k].lon != items[k].lat and -90 <= items[k].lon <= 90]
    if not cand:
        return out
    sub = [items[k] for k in cand]
    slon, slat = _to_wgs84([replace(i, lon=i.lat, lat=i.lon) for i in sub])
    fine = np.isfinite(slon) & np.isfinite(slat)
    found = np.full(len(cand), None, dtype=object)
    if fine.any():
        found[fine] = index.locate_many(slon[fine], slat[fine])
    out[np.asarray(cand)] = found
    return out


def _swapped(item: IncidentIn, code: str) -> InvalidInput:
    return _with_row(InvalidInput(
        f"lon={item.lon} lat={item.lat} is outside every grid, but lon={item.lat} "
        f"lat={item.lon} is inside grid {code!r}: lon and lat look swapped; send lon first",
        field="lon", value=item.lon, valid="lon (east-west, -180..180) and lat "
        "(north-south, -90..90) in that order", extra={"lat": item.lat, "swapped_grid": code}),
        item)


def place(session: Session, items: Sequence[IncidentIn], index: Index,
          settings: Settings, *, categories: Mapping[str, float] | None = None
          ) -> list[Placed | InvalidInput]:
    """Check categories and coordinates, find each item's grid (or why it has none).

    ``categories`` (every category's SLA hours, read once by a bulk import) spares
    the category queries.
    """
    sla = categories if categories is not None else \
        store.category_sla(session, [i.category for i in items])
    known: list[str] = []
    if any(i.category not in sla for i in items):
        known = sorted(sla) if categories is not None else store.category_codes(session)
    lon, lat = _to_wgs84(items)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    codes = np.full(len(items), None, dtype=object)
    if ok.any():
        codes[ok] = index.locate_many(lon[ok], lat[ok])
    tolerance = float(settings.snap_tolerance_m)
    snap_code = np.full(len(items), None, dtype=object)
    snap_m = np.full(len(items), np.nan)
    miss = np.flatnonzero(ok & np.array([c is None for c in codes], dtype=bool))
    if miss.size and tolerance > 0:
        snap_code[miss], snap_m[miss] = index.nearest_many(lon[miss], lat[miss], tolerance)
    far = miss[np.array([snap_code[k] is None for k in miss.tolist()], dtype=bool)]
    swapped = _swapped_grids(index, items, far)
    out: list[Placed | InvalidInput] = []
    fine = ok.tolist()
    xs, ys, grids = lon.tolist(), lat.tolist(), codes.tolist()
    for k, item in enumerate(items):
        if item.category not in sla:
            out.append(_category_error(item, known))
            continue
        if not fine[k]:
            bad = _bad_conversion(item, xs[k], ys[k])
            if bad is not None:
                out.append(bad)
                continue
        placed = Placed(item, xs[k], ys[k], sla[item.category], grids[k], None, None)
        if placed.grid is None:
            if snap_code[k] is not None:
                placed.grid, placed.snapped_m = snap_code[k], round(float(snap_m[k]), 3)
            elif swapped[k] is not None:
                out.append(_swapped(item, swapped[k]))
                continue
            else:
                placed.unassigned_reason = (
                    f"outside every current grid and more than {tolerance:g} m (the snap "
                    "tolerance) from the nearest one") if len(index) else \
                    "there are no current grids (import them with `patrolgrid grids import`)"
        out.append(placed)
    return out


def screen(session: Session, items: Sequence[IncidentIn], *, index: Index,
           settings: Settings) -> list[InvalidInput | None]:
    """The refusal of each item that :func:`register_many` would refuse (None: accepted).

    Refusals: an unknown category, a point that does not convert to WGS-84, a
    pair that looks swapped. Nothing is written.
    """
    return [p if isinstance(p, InvalidInput) else None
            for p in place(session, items, index, settings)]
