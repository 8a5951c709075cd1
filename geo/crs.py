"""Coordinate reference systems: WGS-84, GCJ-02, BD-09, CGCS2000 and EPSG codes.

Everything in patrolgrid is stored and computed in WGS-84 (EPSG:4326), with
coordinates always in (lon, lat) order. This module turns coordinates given in
another system into WGS-84 and back, and checks user-given coordinates.

Supported systems (see :func:`parse_crs`):

- ``wgs84``: WGS-84 longitude/latitude, EPSG:4326 (GPS, OpenStreetMap, GeoJSON).
- ``gcj02``: the "Mars" system of Chinese web maps (AMap/Gaode, Tencent, Google in
  China). An obfuscated WGS-84 with a deliberately wavy offset of a few hundred metres.
- ``bd09``: Baidu Maps, a second obfuscation applied on top of GCJ-02.
- ``cgcs2000``: China Geodetic Coordinate System 2000 (EPSG:4490), the national
  datum. It agrees with WGS-84 to within about a metre; it still goes through
  pyproj so that the datum handling stays PROJ's business.
- ``EPSG:<n>``: any geographic or projected CRS PROJ knows, e.g. ``EPSG:32650``
  (UTM zone 50N) or ``EPSG:4547`` (CGCS2000 Gauss-Kruger). Transformed by pyproj
  with ``always_xy=True`` so that (x, y) is always (easting, northing) or (lon, lat).

GCJ-02 and BD-09 are computed by :mod:`geo.chinacoords` (numpy, vectorised, with an
exact iterative inverse; that module says why no library was taken).
"""

from __future__ import annotations

import math
import numbers
import re
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from geo.chinacoords import (
    as_float_arrays,
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.errors import InvalidInput

__all__ = [
    "AREA_MARGIN_DEG", "VALID_CRS", "area_of_use_text", "bd09_to_gcj02", "bd09_to_wgs84",
    "check_lonlat", "finite_coordinates", "from_wgs84",
    "gcj02_to_bd09", "gcj02_to_wgs84", "geometry_to_wgs84", "in_china", "parse_crs",
    "point_to_wgs84", "to_wgs84", "wgs84_to_bd09", "wgs84_to_gcj02",
]

Array = NDArray[np.float64]

VALID_CRS = (
    "'wgs84' (also 'WGS-84', 'EPSG:4326'), 'gcj02' (also 'GCJ-02'), 'bd09' (also 'BD-09'), "
    "'cgcs2000' (also 'EPSG:4490'), or 'EPSG:<code>' for a geographic or projected CRS"
)

_ALIASES = {
    "wgs84": "wgs84", "wgs-84": "wgs84", "epsg:4326": "wgs84",
    "gcj02": "gcj02", "gcj-02": "gcj02", "bd09": "bd09", "bd-09": "bd09",
    "cgcs2000": "cgcs2000", "epsg:4490": "cgcs2000",
}
_EPSG_RE = re.compile(r"^epsg:\s*(\d{1,9})$")


# --------------------------------------------------------------------------- names
def parse_crs(value: str | None) -> str:
    """Normalise a CRS name.

    Parameters
    ----------
    value : str or None
        Case-insensitive ``wgs84``/``WGS-84``/``EPSG:4326``, ``gcj02``/``GCJ-02``,
        ``bd09``/``BD-09``, ``cgcs2000``/``EPSG:4490`` or ``EPSG:<n>``. None means WGS-84.

    Returns
    -------
    str
        ``'wgs84'``, ``'gcj02'``, ``'bd09'``, ``'cgcs2000'`` or ``'EPSG:<n>'``.

    Raises
    ------
    InvalidInput
        ``field='crs'`` when the value is none of these, or the EPSG code is not a
        geographic or projected CRS known to PROJ.
    """
    if value is None:
        return "wgs84"
    if not isinstance(value, str):
        raise InvalidInput(f"crs must be a string such as 'wgs84', got {value!r}",
                           field="crs", value=value, valid=VALID_CRS)
    key = value.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    match = _EPSG_RE.match(key)
    if match is None:
        raise InvalidInput(f"unknown crs {value!r}", field="crs", value=value, valid=VALID_CRS)
    code = f"EPSG:{int(match.group(1))}"
    if code in ("EPSG:4326", "EPSG:4490"):
        return _ALIASES[code.lower()]
    problem = _epsg_problem(code)
    if problem is not None:
        raise InvalidInput(f"crs {value!r}: {problem}", field="crs", value=value, valid=VALID_CRS)
    return code


@lru_cache(maxsize=256)
def _epsg_problem(code: str) -> str | None:
    try:
        crs = CRS.from_user_input(code)
    except CRSError:
        return "PROJ does not know this EPSG code"
    if not (crs.is_geographic or crs.is_projected):
        return f"{crs.name} is a {crs.type_name}, not a geographic or projected CRS"
    return None


def _pyproj_name(crs: str) -> str:
    return "EPSG:4490" if crs == "cgcs2000" else crs


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> Transformer:
    # pyproj >= 3.1 transformers are thread-safe, so one cached instance is shared.
    return Transformer.from_crs(source, target, always_xy=True)


_TO_WGS84 = {"gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
_FROM_WGS84 = {"gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


# --------------------------------------------------------------------------- dispatch
def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | None) -> tuple[Array, Array]:
    """Convert coordinates in ``crs`` to WGS-84 (lon, lat).

    Parameters
    ----------
    lon, lat : array-like
        x and y in ``crs``: (lon, lat) for geographic systems, (easting, northing)
        for projected ones. Broadcast together.
    crs : str or None
        Any form :func:`parse_crs` accepts.

    Returns
    -------
    tuple of numpy.ndarray
        WGS-84 longitudes and latitudes, float64, new arrays. Points PROJ cannot
        transform (outside a projection's domain) come back as inf, and so do points of
        an ``EPSG:<n>`` system that land more than :data:`AREA_MARGIN_DEG` outside its
        area of use or do not convert back to themselves (an easting beyond the edge of
        Web Mercator wraps round the world; a transverse Mercator far from its meridian
        gives a place, but not the one meant): those are not coordinates of that system.
    """
    name = parse_crs(crs)
    x, y = as_float_arrays(lon, lat)
    if name == "wgs84":
        return x, y
    if name in _TO_WGS84:
        return _TO_WGS84[name](x, y)
    out_x, out_y = as_float_arrays(*_transformer(_pyproj_name(name), "EPSG:4326").transform(x, y))
    if name.startswith("EPSG:"):
        bad = ~(_inside_area(name, out_x, out_y) & _returns(name, x, y, out_x, out_y))
        out_x[bad] = out_y[bad] = np.inf
    return out_x, out_y


#: How far (degrees) outside its area of use a point of an ``EPSG:<n>`` system is still
#: taken (a city's survey often runs a little past its zone's edge).
AREA_MARGIN_DEG = 2.0


@lru_cache(maxsize=64)
def _area(name: str) -> tuple[float, float, float, float] | None:
    area = CRS.from_user_input(name).area_of_use
    return None if area is None else tuple(area.bounds)  # type: ignore[return-value]


def area_of_use_text(crs: str | None) -> str:
    """``crs`` with its area of use, as error messages show it ("EPSG:32650 (lon 114 to 120,
    lat 0 to 84)")."""
    name = parse_crs(crs)
    area = _area(name) if name.startswith("EPSG:") else None
    if area is None:
        return name
    west, south, east, north = area
    return f"{name} (lon {west:g} to {east:g}, lat {south:g} to {north:g})"


def _inside_area(name: str, lon: Array, lat: Array) -> NDArray[np.bool_]:
    area = _area(name)
    if area is None:
        return np.ones(lon.shape, dtype=bool)
    west, south, east, north = area
    m = AREA_MARGIN_DEG
    ok_lat = (lat >= south - m) & (lat <= north + m)
    if west > east:  # the area crosses the antimeridian: 170 to -170 is 170 to 190
        east += 360.0
    # longitudes wrap: a zone ending at 180 takes 179.5 and -179.5 (within its margin)
    ok_lon = np.zeros(lon.shape, dtype=bool)
    for turn in (-360.0, 0.0, 360.0):
        ok_lon |= (lon + turn >= west - m) & (lon + turn <= east + m)
    return ok_lon & ok_lat


def _returns(name: str, x: Array, y: Array, lon: Array, lat: Array) -> NDArray[np.bool_]:
    """Whether WGS-84 ``(lon, lat)`` converts back to ``(x, y)`` (a millimetre, or a
    billionth of the value, for metres and feet; the same numbers in degrees)."""
    with np.errstate(invalid="ignore"):
        bx, by = _transformer("EPSG:4326", name).transform(lon, lat)
        tol_x = 1e-3 + 1e-9 * np.abs(x)
        tol_y = 1e-3 + 1e-9 * np.abs(y)
        return (np.abs(np.asarray(bx) - x) <= tol_x) & (np.abs(np.asarray(by) - y) <= tol_y)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | None) -> tuple[Array, Array]:
    """Convert WGS-84 (lon, lat) to ``crs``; the inverse of :func:`to_wgs84`.

    Parameters
    ----------
    lon, lat : array-like
        WGS-84 longitudes and latitudes in degrees.
    crs : str or None
        Any form :func:`parse_crs` accepts.

    Returns
    -------
    tuple of numpy.ndarray
        x and y in ``crs``, float64.
    """
    name = parse_crs(crs)
    x, y = as_float_arrays(lon, lat)
    if name == "wgs84":
        return x, y
    if name in _FROM_WGS84:
        return _FROM_WGS84[name](x, y)
    out_x, out_y = _transformer("EPSG:4326", _pyproj_name(name)).transform(x, y)
    return as_float_arrays(out_x, out_y)


def point_to_wgs84(lon: float, lat: float, crs: str | None) -> tuple[float, float]:
    """Convert one point to WGS-84.

    Parameters
    ----------
    lon, lat : float
        x and y of the point in ``crs``.
    crs : str or None
        Any form :func:`parse_crs` accepts.

    Returns
    -------
    tuple of float
        WGS-84 (lon, lat).

    Raises
    ------
    InvalidInput
        ``field='crs'`` for an unknown CRS; ``field='coordinates'`` when the point
        cannot be transformed (for example outside a projection's domain).
    """
    x, y = to_wgs84(lon, lat, crs)
    out = float(x), float(y)
    if not (math.isfinite(out[0]) and math.isfinite(out[1])):
        raise InvalidInput(f"the point ({lon}, {lat}) cannot be converted from {crs} to WGS-84",
                           field="coordinates", value=[lon, lat],
                           valid=f"finite (x, y) inside the area of use of "
                                 f"{area_of_use_text(crs)}")
    return out


def geometry_to_wgs84(geom: BaseGeometry, crs: str | None) -> BaseGeometry:
    """Convert every vertex of a shapely geometry to WGS-84 (2-D result).

    Parameters
    ----------
    geom : shapely geometry
        Geometry with coordinates in ``crs``; a Z coordinate is dropped.
    crs : str or None
        Any form :func:`parse_crs` accepts.

    Returns
    -------
    shapely geometry
        The same kind of geometry in WGS-84 (the input itself when ``crs`` is WGS-84).

    Raises
    ------
    InvalidInput
        ``field='geometry'`` when a vertex cannot be converted to finite WGS-84.
    """
    name = parse_crs(crs)
    if name == "wgs84":
        return geom

    def convert(coords: Array) -> Array:
        x, y = to_wgs84(coords[:, 0], coords[:, 1], name)
        return np.column_stack([x, y])

    out: BaseGeometry = shapely.transform(geom, convert, include_z=False)
    if not bool(np.isfinite(shapely.get_coordinates(out)).all()):
        raise InvalidInput(f"some vertices cannot be converted from {name} to WGS-84",
                           field="geometry", value=geom.geom_type,
                           valid=f"finite coordinates inside the area of use of "
                                 f"{area_of_use_text(name)}")
    return out


# --------------------------------------------------------------------------- checks
def finite_coordinates(coords: Any) -> bool:
    """No NaN, infinity, boolean (``true`` reads as 1.0), text (``"NaN"`` reads as NaN) or
    integer beyond a float among nested GeoJSON coordinates (other shapes are left to
    shapely)."""
    if isinstance(coords, bool | str):
        return False
    if isinstance(coords, float):
        return math.isfinite(coords)
    if isinstance(coords, int):
        return abs(coords) <= 1e300
    if isinstance(coords, list | tuple):
        return all(finite_coordinates(c) for c in coords)
    return True


def _number(value: Any, field: str, valid: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise InvalidInput(f"{field} must be a number, got {value!r}",
                           field=field, value=value, valid=valid)
    try:
        if isinstance(value, str) and (not value.isascii() or "_" in value):
            raise ValueError  # float() also reads "1_000" and full-width digits
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{field} must be a number, got {value!r}",
                           field=field, value=value, valid=valid) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}",
                           field=field, value=value, valid=valid)
    return number


def check_lonlat(lon: Any, lat: Any, *, lon_field: str = "lon",
                 lat_field: str = "lat") -> tuple[float, float]:
    """Check a user-given (lon, lat) pair and return it as floats.

    Parameters
    ----------
    lon, lat : number or numeric string
        Longitude and latitude in degrees, in that order.
    lon_field, lat_field : str
        Field names reported in errors (e.g. ``'geometry.coordinates[0]'``).

    Returns
    -------
    tuple of float
        (lon, lat).

    Raises
    ------
    InvalidInput
        Naming the field and value when a value is not a finite number, lon is
        outside [-180, 180] or lat outside [-90, 90]. When swapping the two would
        make the pair valid, the message says they look swapped.
    """
    lon_valid = "a finite longitude in degrees from -180 to 180; pairs are (lon, lat)"
    lat_valid = "a finite latitude in degrees from -90 to 90; pairs are (lon, lat)"
    x = _number(lon, lon_field, lon_valid)
    y = _number(lat, lat_field, lat_valid)
    if not -90.0 <= y <= 90.0:
        message = f"{lat_field}={lat} is outside [-90, 90]"
        if -90.0 <= x <= 90.0 and -180.0 <= y <= 180.0:
            # not "send (lon, lat)": a GeoLife PLT line is lat first, as it should be
            message += (f"; {lon_field} and {lat_field} look swapped (a pair is (lon, lat)): "
                        f"{lon_field}={lat}, {lat_field}={lon} would be valid")
        raise InvalidInput(message, field=lat_field, value=lat, valid=lat_valid)
    if not -180.0 <= x <= 180.0:
        raise InvalidInput(f"{lon_field}={lon} is outside [-180, 180]",
                           field=lon_field, value=lon, valid=lon_valid)
    return x, y
