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

GCJ-02 and BD-09 are implemented here with numpy rather than taken from a library.
The candidates were looked at: ``coordtransform`` (MIT) inverts GCJ-02 with the
one-step approximation (errors of metres) and works point by point;
``eviltransform`` (MIT, last release 2018) and ``prcoords`` (CC0/GPL, 2019) are
scalar pure-Python loops and unmaintained (eviltransform also uses the WGS-84
semi-major axis instead of Krasovsky's); ``prcoords-typed`` (CC0) needs Python
3.12, builds a pydantic object per point and is not on the package index we use.
None is vectorised, so converting a city's grid polygons would be a Python loop
over every vertex. The algorithm is public and short, so it lives here:

- WGS-84 -> GCJ-02 is the published forward formula (Krasovsky 1940 ellipsoid,
  a = 6378245 m, e^2 = 0.00669342162296594323).
- GCJ-02 -> WGS-84 is the exact inverse by fixed-point iteration
  (``w <- w - (gcj(w) - g)``, as in caijun's geoChina and PRCoords' "bored"
  functions), run until the correction is below 1e-10 degrees; the error left is
  about 1e-12 degrees (far below the 1e-7 asked for, and unlike the usual one-step
  approximation, which is off by up to about 2 metres).
- GCJ-02 <-> BD-09 is Baidu's published polar formula; BD-09 -> GCJ-02 starts
  from the usual closed-form inverse and is refined the same way.

Outside China nothing is obfuscated. As in eviltransform and PRCoords, a point is
"in China" when 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271 (a rough
rectangle; see :func:`in_china`). Points outside it are returned unchanged by
every GCJ-02/BD-09 conversion. The test is made on the coordinates *given* to a
conversion, so a conversion and its inverse treat the same point alike.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from geo.errors import InvalidInput

__all__ = [
    "VALID_CRS", "bd09_to_gcj02", "bd09_to_wgs84", "check_lonlat", "from_wgs84",
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

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
# Baidu's constants.
_BD_X_PI = math.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006
# The "in China" rectangle of eviltransform / PRCoords.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)
_TOLERANCE_DEG = 1e-10
_MAX_ITERATIONS = 30


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


# --------------------------------------------------------------------------- GCJ / BD
def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether points fall in the rectangle where GCJ-02/BD-09 apply.

    Parameters
    ----------
    lon, lat : array-like
        Longitudes and latitudes in degrees (broadcast together).

    Returns
    -------
    numpy.ndarray of bool
        True inside 72.004..137.8347 E, 0.8293..55.8271 N (NaN is outside).
    """
    x, y = _arrays(lon, lat)
    return np.asarray((x >= _CHINA_LON[0]) & (x <= _CHINA_LON[1])
                      & (y >= _CHINA_LAT[0]) & (y <= _CHINA_LAT[1]))


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64),
                               np.asarray(lat, dtype=np.float64))
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def _gcj_offset(lon: Array, lat: Array) -> tuple[Array, Array]:
    """GCJ-02 minus WGS-84 in degrees at WGS-84 point (lon, lat), no China test."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    wave_x = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat_m = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
              + wave_x
              + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
              + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y / 30.0 * np.pi)) * 2.0 / 3.0)
    dlon_m = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
              + wave_x
              + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
              + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad_lat = np.radians(lat)
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat_m * 180.0 / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = dlon_m * 180.0 / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def _wgs_to_gcj(lon: Array, lat: Array) -> tuple[Array, Array]:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_bd(lon: Array, lat: Array) -> tuple[Array, Array]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _BD_X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_X_PI)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd_to_gcj_closed_form(lon: Array, lat: Array) -> tuple[Array, Array]:
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _invert(forward: Callable[[Array, Array], tuple[Array, Array]],
            lon: Array, lat: Array, start: tuple[Array, Array]) -> tuple[Array, Array]:
    """Solve ``forward(p) == (lon, lat)`` by fixed-point iteration from ``start``.

    Each step shrinks the error about a hundredfold; points stop iterating once
    their correction is below ``_TOLERANCE_DEG``, leaving an error near 1e-12 degrees.
    """
    x, y = np.array(start[0]), np.array(start[1])
    active = np.arange(x.size)
    for _ in range(_MAX_ITERATIONS):
        fx, fy = forward(x[active], y[active])
        ex, ey = fx - lon[active], fy - lat[active]
        x[active] -= ex
        y[active] -= ey
        active = active[np.maximum(np.abs(ex), np.abs(ey)) >= _TOLERANCE_DEG]
        if active.size == 0:
            break
    return x, y


def _gcj_to_wgs(lon: Array, lat: Array) -> tuple[Array, Array]:
    return _invert(_wgs_to_gcj, lon, lat, (lon, lat))


def _bd_to_gcj(lon: Array, lat: Array) -> tuple[Array, Array]:
    return _invert(_gcj_to_bd, lon, lat, _bd_to_gcj_closed_form(lon, lat))


_CONVERSION_DOC = """

Parameters
----------
lon, lat : array-like
    Longitudes and latitudes in degrees, broadcast together.

Returns
-------
tuple of numpy.ndarray
    New float64 (lon, lat) arrays of the broadcast shape. Points outside China
    (see :func:`in_china`) are returned unchanged.
"""


def _masked(name: str, doc: str, *steps: Callable[[Array, Array], tuple[Array, Array]]
            ) -> Callable[[ArrayLike, ArrayLike], tuple[Array, Array]]:
    """A public conversion applying ``steps`` to points in China; others pass unchanged."""

    def convert(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
        x, y = _arrays(lon, lat)
        mask = in_china(x, y)
        if mask.any():
            px, py = x[mask], y[mask]
            for step in steps:
                px, py = step(px, py)
            x[mask], y[mask] = px, py
        return x, y

    convert.__name__ = convert.__qualname__ = name
    convert.__doc__ = doc + _CONVERSION_DOC
    return convert


wgs84_to_gcj02 = _masked("wgs84_to_gcj02", "WGS-84 -> GCJ-02 by the published formula.",
                         _wgs_to_gcj)
gcj02_to_wgs84 = _masked("gcj02_to_wgs84", "GCJ-02 -> WGS-84, exact by iteration.",
                         _gcj_to_wgs)
gcj02_to_bd09 = _masked("gcj02_to_bd09", "GCJ-02 -> BD-09 (Baidu) by Baidu's formula.", _gcj_to_bd)
bd09_to_gcj02 = _masked("bd09_to_gcj02", "BD-09 -> GCJ-02, exact by iteration.",
                        _bd_to_gcj)
wgs84_to_bd09 = _masked("wgs84_to_bd09", "WGS-84 -> BD-09 through GCJ-02.", _wgs_to_gcj, _gcj_to_bd)
bd09_to_wgs84 = _masked("bd09_to_wgs84", "BD-09 -> WGS-84 through GCJ-02, both steps exact.",
                        _bd_to_gcj, _gcj_to_wgs)

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
        transform (outside a projection's domain) come back as inf.
    """
    name = parse_crs(crs)
    x, y = _arrays(lon, lat)
    if name == "wgs84":
        return x, y
    if name in _TO_WGS84:
        return _TO_WGS84[name](x, y)
    out_x, out_y = _transformer(_pyproj_name(name), "EPSG:4326").transform(x, y)
    return _arrays(out_x, out_y)


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
    x, y = _arrays(lon, lat)
    if name == "wgs84":
        return x, y
    if name in _FROM_WGS84:
        return _FROM_WGS84[name](x, y)
    out_x, out_y = _transformer("EPSG:4326", _pyproj_name(name)).transform(x, y)
    return _arrays(out_x, out_y)


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
                           valid=f"finite (x, y) inside the area of use of {parse_crs(crs)}")
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
                           valid=f"finite coordinates inside the area of use of {name}")
    return out


# --------------------------------------------------------------------------- checks
def _number(value: Any, field: str, valid: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise InvalidInput(f"{field} must be a number, got {value!r}",
                           field=field, value=value, valid=valid)
    try:
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
            message += (f"; {lon_field} and {lat_field} look swapped: send (lon, lat), "
                        f"i.e. {lon_field}={lat}, {lat_field}={lon}")
        raise InvalidInput(message, field=lat_field, value=lat, valid=lat_valid)
    if not -180.0 <= x <= 180.0:
        raise InvalidInput(f"{lon_field}={lon} is outside [-180, 180]",
                           field=lon_field, value=lon, valid=lon_valid)
    return x, y
