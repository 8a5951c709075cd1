"""Shared pieces of the map queries (``map_coverage``, ``map_routes``, ``map_dispatch``).

Everything here returns plain GeoJSON dicts in WGS-84 (lon, lat): current grid
polygons with their names, and GPS track lines simplified for drawing (the
tolerance is in metres, applied in the local UTM zone; a drawn track never
moves more than ``simplify_m`` from the stored fixes).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.routes.network import MetricFrame
from geo.store.models import LATEST_GRIDS_SQL
from geo.store.track_queries import segments

#: Most track lines one map draws; a window with more is cut (``truncated``).
MAX_TRACK_LINES = 20_000
#: Decimal degrees kept in drawn geometries (1e-6 degrees is about 0.1 m).
PRECISION = 1e-6

_GRIDS = text("""
SELECT code, name, level, parent_code, ST_AsGeoJSON(geom, 6) AS geojson,
       ST_Area(geom::geography) AS area_m2, valid_to
  FROM (""" + LATEST_GRIDS_SQL + """) AS g
 WHERE code = ANY(:codes) AND (valid_to IS NULL OR :retired)
 ORDER BY depth, code
""")


def feature_collection(features: Iterable[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of ``features`` (extra keys go on the collection)."""
    return {"type": "FeatureCollection", "features": list(features), **extra}


def grid_features(session: Session, codes: Sequence[str], *,
                  properties: Mapping[str, Mapping[str, Any]] | None = None,
                  retired: bool = False) -> list[dict[str, Any]]:
    """The current grids of ``codes`` as Features, coarsest first then by code.

    Each has ``code, name, level, parent_code, area_m2`` plus the entries of
    ``properties[code]`` when given. Codes that are not current grids are left out,
    unless ``retired``: then the last version of a grid a plan retired is given, with
    ``retired_at`` (ISO 8601; None on current grids).
    """
    if not codes:
        return []
    extra = properties or {}
    out = []
    for r in session.execute(_GRIDS, {"codes": sorted(set(codes)), "retired": retired}):
        props = {"code": r.code, "name": r.name, "level": r.level,
                 "parent_code": r.parent_code, "area_m2": round(float(r.area_m2), 1)}
        if retired:
            props["retired_at"] = r.valid_to.isoformat() if r.valid_to else None
        props.update(extra.get(r.code, {}))
        out.append({"type": "Feature", "id": r.code, "geometry": json.loads(r.geojson),
                    "properties": props})
    return out


def simplified(geometry: dict[str, Any], frame: MetricFrame, tolerance_m: float) -> dict[str, Any]:
    """A GeoJSON geometry simplified by ``tolerance_m`` metres (topology kept)."""
    geom = shape(geometry)
    if tolerance_m > 0 and geom.geom_type != "Point":
        geom = frame.to_lonlat(shapely.simplify(frame.to_metric(geom), tolerance_m,
                                                preserve_topology=True))
    out: dict[str, Any] = json.loads(shapely.to_geojson(shapely.set_precision(geom, PRECISION)))
    return out


def _touches(feature: dict[str, Any], box: Sequence[float] | None) -> bool:
    if box is None:
        return True
    xmin, ymin, xmax, ymax = shapely.bounds(shape(feature["geometry"]))
    return bool(xmin <= box[2] and xmax >= box[0] and ymin <= box[3] and ymax >= box[1])


def track_features(session: Session, *, start: dt.datetime, end: dt.datetime,
                   workers: Sequence[int] | None = None, box: Sequence[float] | None = None,
                   simplify_m: float = 2.0) -> tuple[list[dict[str, Any]], bool]:
    """Track lines of ``[start, end)`` for drawing, and whether some were left out.

    Parameters
    ----------
    session : Session
    start, end : datetime
        The window (aware).
    workers : sequence of int, optional
        Only these workers (default: every worker).
    box : (minlon, minlat, maxlon, maxlat), optional
        Only lines whose bounds meet this box.
    simplify_m : float
        Drawing tolerance in metres (0: the stored fixes as they are).

    Returns
    -------
    (features, truncated)
        Lines as :func:`geo.store.track_queries.segments` gives them (properties
        ``worker_id, worker_code, start, end, points, length_m``), simplified;
        ``truncated`` when more than :data:`MAX_TRACK_LINES` matched.
    """
    found: list[dict[str, Any]] = []
    total = 0
    for worker in (list(workers) if workers is not None else [None]):
        page = segments(session, start=start, end=end, worker_id=worker,
                        limit=MAX_TRACK_LINES - len(found) + 1)
        total += page.total
        found += [f for f in page.features if _touches(f, box)]
        if len(found) > MAX_TRACK_LINES:
            break
    truncated = total > MAX_TRACK_LINES
    found = found[:MAX_TRACK_LINES]
    if found:
        first = shape(found[0]["geometry"]).representative_point()
        frame = MetricFrame(first.x, first.y)
        for feature in found:
            feature["geometry"] = simplified(feature["geometry"], frame, simplify_m)
    return found, truncated
