"""Grab-order patrol tasks (抢单式巡防): checks of a new task and its coverage (pure).

A task is a route (a line) or an area (a polygon) with a time window. Its
coverage is measured on the claimant's track during the window, in metres in
the UTM zone of the task:

- a route task: the share of the route's length within ``tolerance_m`` of the
  track (the route cut by the track's buffer), and the pieces missed;
- an area task: the share of the area within ``tolerance_m`` of the track.

The track is drawn as lines between consecutive fixes of one segment (a new
segment starts after a gap or a jump, see ``geo.tracks.clean``); a lone fix is
a point. Both are buffered by ``tolerance_m`` and unioned, so the answer is the
exact shapely answer up to the buffer's polygon approximation of circles (16
segments per quarter circle: at most 0.5 % of ``tolerance_m``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import shapely.errors
from numpy.typing import NDArray
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geo.crs import check_lonlat, finite_coordinates, geometry_to_wgs84, parse_crs
from geo.errors import InvalidInput, check_moment, storable_json
from geo.routes.network import MetricFrame

TASK_STATUSES = ("open", "claimed", "done", "cancelled", "expired")
#: Worker roles that may claim tasks.
CLAIMER_ROLES = ("patrol", "volunteer")
AREA_VALID = ('a GeoJSON Polygon or MultiPolygon {"type": "Polygon", "coordinates": '
              '[[[lon, lat], ...]]} (closed rings, no self-intersection)')
NEAR_VALID = "lon,lat in degrees (WGS-84 unless crs says otherwise), e.g. 119.30,26.08"
_QUAD_SEGS = 16


@dataclass
class TaskIn:
    """A checked new task. Exactly one of ``route``, ``grid`` and ``area`` is set."""

    title: str
    window_start: dt.datetime
    window_end: dt.datetime
    description: str | None = None
    route: int | str | None = None
    grid: str | None = None
    area: Polygon | MultiPolygon | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


TIME_VALID = ("an ISO 8601 date-time such as 2024-05-01T08:30:00+08:00 (without an offset it "
              "is local time)")


def parse_moment(value: Any, field_name: str, tz: dt.tzinfo) -> dt.datetime:
    """An aware date-time from ISO 8601 text (naive times are in ``tz``) from 1970 to 2199,
    or InvalidInput."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{field_name} {value!r} is not a date-time", field=field_name,
                               value=value, valid=TIME_VALID) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    return check_moment(moment, field_name, value)


def new_task(*, title: Any, window_start: Any, window_end: Any, route: int | str | None = None,
             grid: str | None = None, area: Any = None, crs: str | None = None,
             description: str | None = None, attrs: Mapping[str, Any] | None = None,
             tz: dt.tzinfo, now: dt.datetime, max_hours: float, max_km2: float) -> TaskIn:
    """Check the fields of a new task (everything that needs no database).

    Exactly one of ``route`` (a route id or code), ``grid`` (a grid code: its polygon
    is the area) and ``area`` (a GeoJSON Polygon or MultiPolygon) is given.

    Raises
    ------
    InvalidInput
        Naming the field, the value and what is valid.
    """
    given = [name for name, v in (("route", route), ("grid", grid), ("area", area))
             if v is not None and v != ""]
    if len(given) != 1:
        raise InvalidInput(f"give exactly one of route, grid and area (got "
                           f"{', '.join(given) or 'none'})", field="route", value=given,
                           valid="route (a route id or code), grid (a grid code) or area "
                                 "(a GeoJSON Polygon)")
    start = parse_moment(window_start, "window_start", tz)
    end = parse_moment(window_end, "window_end", tz)
    check_window(start, end, now=now, max_hours=max_hours)
    if description is not None and len(description) > 4000:
        raise InvalidInput("description is longer than 4000 characters", field="description",
                           value=len(description), valid="at most 4000 characters")
    if attrs is not None and not isinstance(attrs, Mapping):
        raise InvalidInput("attrs is not an object", field="attrs", value=attrs,
                           valid="a JSON object")
    storable_json(attrs or {}, "attrs")
    polygon = area_geometry(area, crs=crs, max_km2=max_km2) if area is not None else None
    return TaskIn(title=check_title(title), window_start=start, window_end=end,
                  description=description, route=route if route != "" else None,
                  grid=grid or None, area=polygon, attrs=dict(attrs or {}))


def check_window(start: dt.datetime, end: dt.datetime, *, now: dt.datetime,
                 max_hours: float) -> None:
    """InvalidInput unless ``start < end``, ``end`` is in the future and the window is short
    enough."""
    valid = (f"window_start < window_end, window_end after now, at most {max_hours:g} h "
             "(ISO 8601 date-times; without an offset the time is local)")
    if end <= start:
        raise InvalidInput(f"window_end ({end.isoformat()}) is not after window_start "
                           f"({start.isoformat()})", field="window_end", value=end.isoformat(),
                           valid=valid)
    if end <= now:
        raise InvalidInput(f"window_end ({end.isoformat()}) is already past (now is "
                           f"{now.isoformat()})", field="window_end", value=end.isoformat(),
                           valid=valid)
    if end - start > dt.timedelta(hours=max_hours):
        hours = (end - start).total_seconds() / 3600.0
        raise InvalidInput(f"the window is {hours:g} h long, longer than {max_hours:g} h",
                           field="window_end", value=end.isoformat(),
                           valid=valid + " (PATROLGRID_TASK_MAX_WINDOW_H)")


def check_title(title: Any) -> str:
    """The title stripped, or InvalidInput."""
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 200:
        raise InvalidInput(f"title is {title!r}", field="title", value=title,
                           valid="a non-empty text of at most 200 characters")
    return title.strip()


def area_geometry(geometry: Any, *, crs: str | None = None, max_km2: float,
                  where: str = "area") -> Polygon | MultiPolygon:
    """A GeoJSON polygon as a valid WGS-84 (Multi)Polygon of at most ``max_km2``.

    Raises
    ------
    InvalidInput
        For anything but a valid, non-empty Polygon or MultiPolygon with lon/lat
        in range, or an area larger than ``max_km2``.
    """
    if not isinstance(geometry, Mapping) or geometry.get("type") not in ("Polygon",
                                                                         "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, Mapping) else geometry
        raise InvalidInput(f"{where} is a {kind!r}, not a polygon", field=where, value=kind,
                           valid=AREA_VALID)
    if not finite_coordinates(geometry.get("coordinates")):
        raise InvalidInput(f"{where}.coordinates has a value that is not a finite number "
                           "(JSON true, a text, NaN or infinity)", field=f"{where}.coordinates",
                           value=str(geometry.get("coordinates"))[:200], valid=AREA_VALID)
    try:
        geom = shape(dict(geometry))
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError,
            shapely.errors.GEOSException) as exc:
        raise InvalidInput(f"{where} is not a readable polygon: {exc}", field=where,
                           value=str(geometry.get("coordinates"))[:200],
                           valid=AREA_VALID) from None
    geom = geometry_to_wgs84(shapely.force_2d(geom), parse_crs(crs))  # heights dropped
    coords = shapely.get_coordinates(geom)
    if len(coords) == 0 or geom.is_empty:
        raise InvalidInput(f"{where} is empty", field=where, value=None, valid=AREA_VALID)
    for lon, lat in coords:
        if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
            check_lonlat(lon, lat, lon_field=f"{where}.coordinates lon",
                         lat_field=f"{where}.coordinates lat")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise InvalidInput(f"{where} is not a valid polygon: {reason}", field=where,
                           value=reason, valid=AREA_VALID)
    assert isinstance(geom, Polygon | MultiPolygon)
    frame = MetricFrame(*geom.representative_point().coords[0])
    km2 = frame.to_metric(geom).area / 1e6
    if km2 <= 0 or km2 > max_km2:
        raise InvalidInput(f"{where} covers {km2:.3f} km²", field=where, value=round(km2, 3),
                           valid=f"an area above 0 and at most {max_km2:g} km² "
                                 "(PATROLGRID_TASK_MAX_AREA_KM2)")
    return geom


def parse_near(value: str | None) -> tuple[float, float] | None:
    """``"lon,lat"`` as floats (None stays None); InvalidInput naming ``near`` otherwise."""
    if value is None or not value.strip():
        return None
    parts = value.split(",")
    if len(parts) != 2:
        raise InvalidInput(f"near {value!r} is not lon,lat", field="near", value=value,
                           valid=NEAR_VALID)
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise InvalidInput(f"near {value!r} is not two numbers", field="near", value=value,
                           valid=NEAR_VALID) from None
    return check_lonlat(lon, lat, lon_field="near (lon)", lat_field="near (lat)")


def parse_statuses(value: str | None, *, default: tuple[str, ...] = ("open",)) -> list[str]:
    """``status`` as a list: comma-separated statuses, or ``any``; ``default`` when empty."""
    if value is None or not value.strip():
        return list(default)
    if value.strip() == "any":
        return list(TASK_STATUSES)
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in wanted if s not in TASK_STATUSES]
    if bad or not wanted:
        raise InvalidInput(f"status {bad[0] if bad else value!r} is not a task status",
                           field="status", value=value,
                           valid="any, or one or more (comma-separated) of "
                                 + ", ".join(TASK_STATUSES))
    return wanted


# --------------------------------------------------------------------------- coverage

def track_geometry(frame: MetricFrame, lon: NDArray[np.float64], lat: NDArray[np.float64],
                   seg_start: NDArray[np.bool_]) -> list[BaseGeometry]:
    """The track in metres: one LineString per segment (a Point for a lone fix).

    ``lon``, ``lat`` are sorted by time; ``seg_start`` is true where a segment starts
    (the first fix always starts one).
    """
    if len(lon) == 0:
        return []
    x, y = frame.xy(lon, lat)
    starts = np.flatnonzero(np.asarray(seg_start, dtype=bool)).tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(x)]
    parts: list[BaseGeometry] = []
    for a, b in itertools.pairwise(bounds):
        xy = np.column_stack([x[a:b], y[a:b]])
        keep = np.ones(len(xy), dtype=bool)
        keep[1:] = (np.diff(xy, axis=0) != 0).any(axis=1)
        xy = xy[keep]
        parts.append(LineString(xy) if len(xy) > 1 else Point(xy[0]))
    return parts


def track_buffer(parts: list[BaseGeometry], distance_m: float) -> BaseGeometry:
    """The union of the parts buffered by ``distance_m`` (empty polygon when no parts)."""
    if not parts:
        return Polygon()
    # a zero distance still counts a line's own trace when intersecting a line
    buffers = shapely.buffer(np.array(parts, dtype=object), max(distance_m, 1e-6),
                             quad_segs=_QUAD_SEGS)
    return shapely.union_all(buffers)


@dataclass
class Coverage:
    """A task's coverage by its claimant's track."""

    kind: str
    tolerance_m: float
    points: int
    share: float
    total: float
    covered: float
    missed: BaseGeometry | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: metres for routes, m² for areas; missed route pieces as GeoJSON."""
        unit = "m" if self.kind == "route" else "m2"
        out: dict[str, Any] = {"kind": self.kind, "tolerance_m": self.tolerance_m,
                               "points": self.points, "share": round(self.share, 4),
                               f"total_{unit}": round(self.total, 1),
                               f"covered_{unit}": round(self.covered, 1)}
        if self.kind == "route":
            geom = self.missed if self.missed is not None else MultiLineString()
            out["missed"] = shapely.geometry.mapping(geom) if not geom.is_empty else None
            out["missed_m"] = round(max(self.total - self.covered, 0.0), 1)
        return out


def _missed_lines(missed: BaseGeometry, frame: MetricFrame) -> MultiLineString:
    lines = [g for g in shapely.get_parts(missed)
             if isinstance(g, LineString) and g.length > 0]
    if not lines:
        return MultiLineString()
    back = frame.to_lonlat(MultiLineString(lines))
    return shapely.set_precision(back, 1e-7)  # type: ignore[return-value]


def task_coverage(geom: BaseGeometry, lon: NDArray[np.float64], lat: NDArray[np.float64],
                  seg_start: NDArray[np.bool_], *, tolerance_m: float) -> Coverage:
    """Coverage of a task's geometry (WGS-84 line or polygon) by a track.

    Parameters
    ----------
    geom : LineString, MultiLineString, Polygon or MultiPolygon
        The task's route or area, lon/lat.
    lon, lat, seg_start : arrays
        The claimant's fixes in the window, sorted by time (see ``track_geometry``).
    tolerance_m : float
        Distance (m) from the track within which the route is walked / the area covered.

    Returns
    -------
    Coverage
        ``share`` in [0, 1]; for a route also the missed pieces (lon/lat).
    """
    lines = isinstance(geom, LineString | MultiLineString)
    frame = MetricFrame(*geom.representative_point().coords[0])
    target = frame.to_metric(geom)
    total = float(target.length if lines else target.area)
    reach = track_buffer(track_geometry(frame, lon, lat, seg_start), tolerance_m)
    if lines:
        walked = target.intersection(reach) if not reach.is_empty else LineString()
        covered = float(walked.length)
        missed = _missed_lines(target.difference(reach), frame) if not reach.is_empty else \
            _missed_lines(target, frame)
    else:
        covered = float(target.intersection(reach).area) if not reach.is_empty else 0.0
        missed = None
    share = min(covered / total, 1.0) if total > 0 else 0.0
    return Coverage(kind="route" if lines else "area", tolerance_m=tolerance_m,
                    points=len(lon), share=share, total=total, covered=covered,
                    missed=missed)


def check_radius(radius_m: Any, max_m: float) -> float:
    """A search radius in metres: a finite number above 0 and at most ``max_m``."""
    value = radius_m
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and 0 < value <= max_m):
        raise InvalidInput(f"radius_m {radius_m!r} is not a radius", field="radius_m",
                           value=str(radius_m), valid=f"a number of metres above 0 and at most "
                           f"{max_m:g} (PATROLGRID_TASK_MAX_RADIUS_M)")
    return float(value)
