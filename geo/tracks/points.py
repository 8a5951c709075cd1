"""Checking uploaded GPS points: coordinates, CRS and times, with errors that name the point.

Every format (JSON body, GPX, PLT, CSV, GeoJSON) ends up as a :class:`TrackInput`
built by :func:`track_input`, so the rules are the same everywhere:

- coordinates are (lon, lat) in ``crs`` (WGS-84 by default), converted to WGS-84;
- every time has a time zone (ISO 8601 with an offset or ``Z``; numbers are
  seconds since 1970-01-01 UTC) and lies between 2000-01-01 and a little after now;
- the first bad point refuses the whole upload with an error naming the point
  (``points[17].lat``), its value and what is valid.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyproj import CRS

from geo.crs import area_of_use_text, check_lonlat, parse_crs, to_wgs84
from geo.errors import InvalidInput

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Times before this are refused (GPS week roll-overs and unset clocks land in the past).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TIME_VALID = ("an ISO 8601 date-time with a time zone, e.g. 2024-05-01T08:30:05+08:00 or "
              "2024-05-01T00:30:05Z, or a number of seconds since 1970-01-01 UTC")

#: Unix seconds of 0001-01-01 and 9999-12-31T23:59:59 UTC: the range of a datetime.
_FIRST_S = -62_135_596_800.0
_LAST_S = 253_402_300_799.0


@dataclass
class TrackInput:
    """Checked points of one upload: WGS-84 lon/lat and int64 microseconds since the epoch."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    t_us: NDArray[np.int64]
    crs: str = "wgs84"

    def __len__(self) -> int:
        return len(self.t_us)


def to_us(moment: dt.datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime (exact)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> dt.datetime:
    """The aware UTC datetime of ``value`` microseconds since the epoch (exact)."""
    return EPOCH + dt.timedelta(microseconds=int(value))


def parse_time(value: Any, field: str) -> int:
    """One point time as microseconds since the epoch.

    Parameters
    ----------
    value : str, datetime or number
        ISO 8601 text with a time zone (``Z`` allowed), an aware datetime, or
        seconds since 1970-01-01 UTC.
    field : str
        Name used in errors, e.g. ``'points[3].t'``.

    Raises
    ------
    InvalidInput
        When the value is missing, unreadable or has no time zone.
    """
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # a JSON integer of hundreds of digits
            seconds = math.inf
        if not math.isfinite(seconds) or not _FIRST_S <= seconds <= _LAST_S:
            raise InvalidInput(f"{field} is not a time in seconds since 1970 from year 1 to "
                               f"9999: {value!r}", field=field, value=value, valid=TIME_VALID)
        return round(seconds * 1_000_000)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if "\x00" in text:  # fromisoformat reads "08:30:05\x00" as 08:30:05
            raise InvalidInput(f"{field} contains a NUL character", field=field,
                               value=text.replace("\x00", "\\x00"), valid=TIME_VALID)
        try:
            moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz"
                                               else text)
        except ValueError:
            raise InvalidInput(f"{field} {value!r} is not an ISO 8601 date-time", field=field,
                               value=value, valid=TIME_VALID) from None
    else:
        raise InvalidInput(f"{field} is missing or not a time: {value!r}", field=field,
                           value=value, valid=TIME_VALID)
    try:
        offset = moment.utcoffset() if moment.tzinfo is not None else None
    except ValueError:  # a parser that let "+25:00" through (gpxpy does)
        shown = value if isinstance(value, str) else moment.replace(tzinfo=None).isoformat()
        raise InvalidInput(f"{field} {shown} has a time zone offset of a day or more",
                           field=field, value=shown, valid=TIME_VALID) from None
    if offset is None:
        raise InvalidInput(f"{field} {value!s} has no time zone; GPS times are ambiguous "
                           "without one", field=field, value=str(value), valid=TIME_VALID)
    return to_us(moment)


def check_count(count: int, *, field: str = "points", max_points: int | None = None) -> None:
    """Refuse an upload without points or with more than ``max_points``."""
    if count == 0:
        raise InvalidInput("the upload has no points", field=field, value=[],
                           valid="at least one point {lon, lat, t}")
    if max_points is not None and count > max_points:
        raise InvalidInput(f"the upload has {count} points, more than {max_points}",
                           field=field, value=count, valid=f"at most {max_points} points per "
                           "upload (PATROLGRID_TRACK_MAX_POINTS); split the track")


@lru_cache(maxsize=64)
def _is_projected(name: str) -> bool:
    return name.startswith("EPSG:") and bool(CRS.from_user_input(name).is_projected)


def _first_bad_number(values: NDArray[np.float64]) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if len(bad) else None


def track_input(lon: Sequence[Any] | NDArray[Any], lat: Sequence[Any] | NDArray[Any],
                t_us: Sequence[int] | NDArray[np.int64], *, crs: str | None = None,
                field: str = "points", now: dt.datetime | None = None,
                clock_skew_s: float = 600.0, max_points: int | None = None) -> TrackInput:
    """Check coordinates and times and convert the coordinates to WGS-84.

    Parameters
    ----------
    lon, lat : sequence
        x and y of each point in ``crs``: (lon, lat) in degrees, or (easting,
        northing) for a projected EPSG code. Numbers or numeric strings.
    t_us : sequence of int
        Times from :func:`parse_time`.
    crs : str, optional
        Any name :func:`geo.crs.parse_crs` accepts; WGS-84 when omitted.
    field : str
        Prefix of the names in errors: ``points`` gives ``points[3].lon``.
    now : datetime, optional
        The present (for tests); times later than ``now + clock_skew_s`` are refused.
    clock_skew_s : float
        How far in the future a device clock may be.
    max_points : int, optional
        Refuse uploads with more points.

    Returns
    -------
    TrackInput

    Raises
    ------
    InvalidInput
        For the first bad point, naming it, its value and what is valid.
    """
    name = parse_crs(crs)
    check_count(len(t_us), field=field, max_points=max_points)
    x = _numbers(lon, field, "lon")
    y = _numbers(lat, field, "lat")
    projected = _is_projected(name)
    if not projected:
        bad = np.flatnonzero((np.abs(x) > 180) | (np.abs(y) > 90))
        if len(bad):
            i = int(bad[0])
            check_lonlat(x[i], y[i], lon_field=f"{field}[{i}].lon", lat_field=f"{field}[{i}].lat")
    wlon, wlat = to_wgs84(x, y, name)
    bad = np.flatnonzero(~np.isfinite(wlon) | ~np.isfinite(wlat) | (np.abs(wlon) > 180)
                         | (np.abs(wlat) > 90))
    if len(bad):
        i = int(bad[0])
        raise InvalidInput(f"{field}[{i}] ({x[i]}, {y[i]}) cannot be converted from {name} "
                           "to WGS-84", field=f"{field}[{i}]", value=[float(x[i]), float(y[i])],
                           valid=f"(x, y) inside the area of use of {area_of_use_text(name)}")
    times = np.asarray(t_us, dtype=np.int64)
    _check_times(times, field, now or dt.datetime.now(dt.UTC), clock_skew_s)
    return TrackInput(lon=wlon, lat=wlat, t_us=times, crs=name)


def _numbers(values: Sequence[Any] | NDArray[Any], field: str, key: str) -> NDArray[np.float64]:
    """Floats from numbers or numeric strings; InvalidInput naming the first bad one (JSON
    ``true`` included: numpy would take it for 1.0)."""
    try:
        if isinstance(values, np.ndarray) and values.dtype.kind == "b":
            raise TypeError("booleans are not coordinates")
        if not isinstance(values, np.ndarray) and any(isinstance(v, bool) for v in values):
            raise TypeError("booleans are not coordinates")
        out = np.asarray(values, dtype=np.float64)
        if out.ndim != 1:  # lists where numbers belong ([[1, 2], [3, 4]] as one point)
            raise ValueError("not one number per point")
    except (TypeError, ValueError, OverflowError):
        out = np.array([_number_or_nan(v) for v in values], dtype=np.float64)
    i = _first_bad_number(out)
    if i is not None:
        what = "longitude" if key == "lon" else "latitude"
        raise InvalidInput(f"{field}[{i}].{key} is not a finite number: {values[i]!r}",
                           field=f"{field}[{i}].{key}", value=values[i],
                           valid=f"a finite {what} (or x/y of a projected crs); "
                                 "points are (lon, lat)")
    return out


def _number_or_nan(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _check_times(times: NDArray[np.int64], field: str, now: dt.datetime,
                 clock_skew_s: float) -> None:
    earliest, latest = to_us(EARLIEST), to_us(now) + round(clock_skew_s * 1_000_000)
    bad = np.flatnonzero((times < earliest) | (times > latest))
    if len(bad):
        i = int(bad[0])
        try:
            when = from_us(int(times[i])).isoformat()
        except OverflowError:
            when = f"{int(times[i]) / 1e6:.0f} s since 1970"
        raise InvalidInput(
            f"{field}[{i}].t {when} is outside the accepted period (a device clock that is off?)",
            field=f"{field}[{i}].t", value=when,
            valid=f"a time from {EARLIEST.date()} to {clock_skew_s:g} s after now "
                  f"({from_us(latest).isoformat(timespec='seconds')})")


def points_from_records(records: Sequence[Any], *, crs: str | None = None,
                        field: str = "points", now: dt.datetime | None = None,
                        clock_skew_s: float = 600.0,
                        max_points: int | None = None) -> TrackInput:
    """Check a list of ``{"lon", "lat", "t"}`` objects (the REST body's ``points``).

    Items may be mappings or objects with ``lon``, ``lat`` and ``t`` attributes.

    Raises
    ------
    InvalidInput
        Naming the first bad point, e.g. ``points[4].t`` without a time zone.
    """
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise InvalidInput(f"{field} must be a list of points", field=field,
                           value=type(records).__name__, valid="a list of {lon, lat, t}")
    check_count(len(records), field=field, max_points=max_points)
    lons: list[Any] = []
    lats: list[Any] = []
    times: list[int] = []
    for i, item in enumerate(records):
        if not isinstance(item, Mapping):
            if not all(hasattr(item, key) for key in ("lon", "lat", "t")):
                raise InvalidInput(f"{field}[{i}] is not an object", field=f"{field}[{i}]",
                                   value=str(item)[:80], valid='{"lon": .., "lat": .., "t": ..}')
            item = {"lon": item.lon, "lat": item.lat, "t": item.t}
        for key in ("lon", "lat", "t"):
            if key not in item:
                raise InvalidInput(f"{field}[{i}] has no {key!r}", field=f"{field}[{i}].{key}",
                                   value=None, valid='every point has "lon", "lat" and "t"')
        lons.append(item["lon"])
        lats.append(item["lat"])
        times.append(parse_time(item["t"], f"{field}[{i}].t"))
    return track_input(lons, lats, times, crs=crs, field=field, now=now,
                       clock_skew_s=clock_skew_s, max_points=max_points)
