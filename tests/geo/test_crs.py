"""Tests of geo.crs: GCJ-02/BD-09 conversions, pyproj CRSs, parsing and coordinate checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from geo import crs
from geo.errors import InvalidInput

GEOD = Geod(ellps="WGS84")

# Published test vectors of googollee/eviltransform (python/test.py and go/transform_test.go):
# (wgs_lat, wgs_lng, gcj_lat, gcj_lng). eviltransform checks wgs->gcj to 6 decimals and its
# exact gcj->wgs to within 0.5 m; it uses the WGS-84 semi-major axis where the GCJ formula
# uses Krasovsky's, which moves results by ~1e-7 degrees, well inside 1e-6.
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]

# Published test vectors of hanming-li/prcoords-typed (tests/test_conversion.py), the same point
# in the three systems as (lon, lat); published to 6 decimals and checked there to 1.5e-6 degrees.
PRCOORDS_TYPED = {
    "Beijing Capital airport": {
        "wgs84": (116 + 35.9 / 60, 40 + 4.4 / 60),
        "gcj02": (116.604140, 40.074380),
        "bd09": (116.610670, 40.080272),
    },
    "Beijing Daxing": {
        "wgs84": (116 + 24 / 60, 39 + 30 / 60),
        "gcj02": (116.406192, 39.501340),
        "bd09": (116.412597, 39.507676),
    },
    "Ordos Ejin Horo": {
        "wgs84": (109 + 51.9 / 60, 39 + 29.4 / 60),
        "gcj02": (109.870522, 39.490848),
        "bd09": (109.877133, 39.496571),
    },
}

PAIRS = {
    ("wgs84", "gcj02"): crs.wgs84_to_gcj02,
    ("gcj02", "wgs84"): crs.gcj02_to_wgs84,
    ("gcj02", "bd09"): crs.gcj02_to_bd09,
    ("bd09", "gcj02"): crs.bd09_to_gcj02,
    ("wgs84", "bd09"): crs.wgs84_to_bd09,
    ("bd09", "wgs84"): crs.bd09_to_wgs84,
}

FUZHOU_GCJ = (119.298456, 26.072092)

# China's usual bounding box (73.66..135.05 E, 3.86..53.55 N), inside the in-China rectangle.
china_lon = st.floats(73.66, 135.05)
china_lat = st.floats(3.86, 53.55)


def _err(a: tuple[Any, Any], b: tuple[Any, Any]) -> float:
    return float(max(np.max(np.abs(np.asarray(a[0]) - np.asarray(b[0]))),
                     np.max(np.abs(np.asarray(a[1]) - np.asarray(b[1])))))


# --------------------------------------------------------------------------- test vectors
@pytest.mark.parametrize(("wlat", "wlng", "glat", "glng"), EVILTRANSFORM)
def test_eviltransform_vectors(wlat: float, wlng: float, glat: float, glng: float) -> None:
    assert _err(crs.wgs84_to_gcj02(wlng, wlat), (glng, glat)) < 1e-6
    assert _err(crs.gcj02_to_wgs84(glng, glat), (wlng, wlat)) < 1e-6


@pytest.mark.parametrize("name", sorted(PRCOORDS_TYPED))
@pytest.mark.parametrize(("source", "target"), sorted(PAIRS))
def test_prcoords_typed_vectors(name: str, source: str, target: str) -> None:
    case = PRCOORDS_TYPED[name]
    got = PAIRS[(source, target)](*case[source])
    assert math.hypot(float(got[0]) - case[target][0], float(got[1]) - case[target][1]) < 1.5e-6


def test_gcj_inverse_is_exact_not_one_step() -> None:
    glon, glat = np.array([FUZHOU_GCJ[0]]), np.array([FUZHOU_GCJ[1]])
    wgs = crs.gcj02_to_wgs84(glon, glat)
    assert _err(crs.wgs84_to_gcj02(*wgs), (glon, glat)) < 1e-10
    # The common one-step approximation g - (f(g) - g) is off by about a metre here.
    fx, fy = crs.wgs84_to_gcj02(glon, glat)
    one_step = (2 * glon - fx, 2 * glat - fy)
    assert _err(one_step, wgs) > 1e-6


def test_fuzhou_gcj_offset_is_a_few_hundred_metres() -> None:
    wlon, wlat = crs.point_to_wgs84(*FUZHOU_GCJ, "gcj02")
    _, _, metres = GEOD.inv(FUZHOU_GCJ[0], FUZHOU_GCJ[1], wlon, wlat)
    assert 300 < metres < 700


# --------------------------------------------------------------------------- round trips
@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_gcj_round_trips(lon: float, lat: float) -> None:
    assert _err(crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat)), (lon, lat)) < 1e-7
    assert _err(crs.wgs84_to_gcj02(*crs.gcj02_to_wgs84(lon, lat)), (lon, lat)) < 1e-7


@settings(max_examples=300, deadline=None)
@given(china_lon, china_lat)
def test_bd_round_trips(lon: float, lat: float) -> None:
    assert _err(crs.bd09_to_gcj02(*crs.gcj02_to_bd09(lon, lat)), (lon, lat)) < 1e-7
    assert _err(crs.gcj02_to_bd09(*crs.bd09_to_gcj02(lon, lat)), (lon, lat)) < 1e-7
    assert _err(crs.bd09_to_wgs84(*crs.wgs84_to_bd09(lon, lat)), (lon, lat)) < 1e-7
    assert _err(crs.wgs84_to_bd09(*crs.bd09_to_wgs84(lon, lat)), (lon, lat)) < 1e-7


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(china_lon, china_lat), min_size=1, max_size=40),
       st.sampled_from(["gcj02", "bd09", "cgcs2000", "EPSG:32650", "EPSG:3857"]))
def test_vectorised_matches_point_by_point_and_round_trips(
        points: list[tuple[float, float]], name: str) -> None:
    lon = np.array([p[0] for p in points])
    if name == "EPSG:32650":  # UTM zone 50N: only its zone (114-120E) is its area of use
        lon = 114.0 + (lon - 73.66) % 6.0
    lat = np.array([p[1] for p in points])
    points = list(zip(lon.tolist(), lat.tolist(), strict=True))
    x, y = crs.from_wgs84(lon, lat, name)
    assert x.shape == lon.shape and x.dtype == np.float64
    for i, (plon, plat) in enumerate(points):
        assert crs.point_to_wgs84(float(x[i]), float(y[i]), name) == pytest.approx(
            (plon, plat), abs=1e-9)
    assert _err(crs.to_wgs84(x, y, name), (lon, lat)) < 1e-6


def test_gcj_offset_is_real_inside_china() -> None:
    # Guards the round trips above against an identity implementation.
    lon, lat = crs.wgs84_to_gcj02(np.linspace(74, 134, 25), np.linspace(4, 53, 25))
    dist = GEOD.inv(np.linspace(74, 134, 25), np.linspace(4, 53, 25), lon, lat)[2]
    assert (dist > 50).all()


# --------------------------------------------------------------------------- outside China
OUTSIDE = [(-0.1276, 51.5072), (-74.006, 40.7128), (139.6917, 35.6895), (151.2093, -33.8688),
           (72.0, 30.0), (100.0, 56.0), (100.0, 0.5), (137.9, 45.0)]


@pytest.mark.parametrize(("lon", "lat"), OUTSIDE)
def test_outside_china_is_unchanged(lon: float, lat: float) -> None:
    assert not crs.in_china(lon, lat)
    for convert in PAIRS.values():
        x, y = convert(lon, lat)
        assert (float(x), float(y)) == (lon, lat)
    for name in ("gcj02", "bd09"):
        assert crs.point_to_wgs84(lon, lat, name) == (lon, lat)


def test_mixed_array_changes_only_points_in_china() -> None:
    lon = np.array([[116.4, -0.1276], [119.3, 151.2]])
    lat = np.array([[39.9, 51.5072], [26.07, -33.87]])
    x, y = crs.to_wgs84(lon, lat, "bd09")
    assert x.shape == (2, 2)
    inside = crs.in_china(lon, lat)
    assert inside.tolist() == [[True, False], [True, False]]
    assert (x[~inside] == lon[~inside]).all() and (y[~inside] == lat[~inside]).all()
    assert (np.abs(x[inside] - lon[inside]) > 1e-3).all()


def test_arrays_broadcast_are_new_and_nan_passes() -> None:
    lon = np.array([116.0, 117.0, np.nan])
    x, y = crs.to_wgs84(lon, 30.0, "gcj02")
    assert x.shape == y.shape == (3,)
    assert np.isnan(x[2]) and y[2] == 30.0
    assert lon[0] == 116.0  # input untouched
    ex, ey = crs.to_wgs84([], [], "gcj02")
    assert ex.shape == (0,) and ey.shape == (0,)
    wx, _ = crs.to_wgs84(lon, 30.0, "wgs84")
    assert wx is not lon and np.array_equal(wx, lon, equal_nan=True)


# --------------------------------------------------------------------------- pyproj CRSs
def test_utm_50n_known_values_and_round_trip() -> None:
    # On the central meridian (117E) the easting is 500 000 m; on the equator northing is 0.
    x, y = crs.from_wgs84(117.0, 0.0, "EPSG:32650")
    assert float(x) == pytest.approx(500000.0, abs=1e-6)
    assert float(y) == pytest.approx(0.0, abs=1e-6)
    lon, lat = np.array([119.2965, 118.0]), np.array([26.0745, 24.5])
    ex, ny = crs.from_wgs84(lon, lat, "epsg:32650")
    assert (ex > 500000).all() and (ny > 2.7e6).all()  # (x, y) order, not (lat, lon)
    assert _err(crs.to_wgs84(ex, ny, "EPSG:32650"), (lon, lat)) < 1e-9
    # A metre of easting is a metre on the ground.
    lon2, lat2 = crs.to_wgs84(ex[0] + 1000.0, ny[0], "EPSG:32650")
    assert GEOD.inv(lon[0], lat[0], float(lon2), float(lat2))[2] == pytest.approx(1000, rel=1e-3)


def test_cgcs2000_is_wgs84_at_metre_level() -> None:
    lon, lat = crs.to_wgs84([119.2965, 87.6], [26.0745, 43.8], "cgcs2000")
    assert _err((lon, lat), ([119.2965, 87.6], [26.0745, 43.8])) < 1e-5
    assert _err(crs.to_wgs84(119.2965, 26.0745, "EPSG:4490"), (lon[0], lat[0])) == 0.0
    assert _err(crs.from_wgs84(lon, lat, "cgcs2000"), ([119.2965, 87.6], [26.0745, 43.8])) < 1e-9


def test_point_outside_projection_domain_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        crs.point_to_wgs84(1e12, 1e12, "EPSG:32650")
    assert info.value.field == "coordinates"
    assert info.value.value == [1e12, 1e12]


@pytest.mark.parametrize(("x", "y", "name"), [
    (53355016.68557849, 3010000.0, "EPSG:3857"),  # 2 x 360 degrees east of Fuzhou: wraps
    (3e7, 0.0, "EPSG:3857"),                       # beyond the map's edge at 20,037,508 m
    (1e300, 1e300, "EPSG:3857"),
    (500000.0, 1e9, "EPSG:32650"),                 # a northing far beyond the pole
    (2888102.0, 729461.0, "EPSG:32650"),           # Fuzhou's easting and northing swapped
    (400.0, 26.0, "EPSG:4214"),                    # a place 18 degrees east of the zone
])
def test_points_outside_a_systems_area_or_not_its_own_are_refused(
        x: float, y: float, name: str) -> None:
    lon, lat = crs.to_wgs84([x, 500000.0 if name == "EPSG:32650" else 119.3],
                            [y, 2885000.0 if name == "EPSG:32650" else 26.08], name)
    assert np.isinf(lon[0]) and np.isinf(lat[0])
    with pytest.raises(InvalidInput) as info:
        crs.point_to_wgs84(x, y, name)
    assert info.value.field == "coordinates" and "lon" in (info.value.valid or "")
    if name == "EPSG:32650":  # the good point beside it is converted
        assert np.isfinite(lon[1]) and 116.9 < lon[1] < 117.1
        assert "EPSG:32650 (lon 114 to 120, lat 0 to 84)" in (info.value.valid or "")


@pytest.mark.parametrize(("lon", "lat", "name"), [
    (179.5, 60.0, "EPSG:32601"), (178.5, 60.0, "EPSG:32601"),   # zone 1 starts at -180
    (-179.5, 60.0, "EPSG:32660"), (-179.999999999, 10.0, "EPSG:32660"),  # zone 60 ends at 180
    (-179.5, -17.0, "EPSG:32760"), (179.0, -40.0, "EPSG:2193"),  # Fiji; New Zealand TM
])
def test_the_margin_wraps_round_the_antimeridian(lon: float, lat: float, name: str) -> None:
    x, y = crs.from_wgs84([lon], [lat], name)
    back = crs.to_wgs84(x, y, name)
    assert np.isfinite(back[0]).all()  # refused before: -180.5 was compared, not 179.5
    assert _err(back, ([lon], [lat])) < 1e-6


def test_a_little_past_the_zone_is_still_taken() -> None:
    x, y = crs.from_wgs84([121.5, 112.5], [25.0, 25.0], "EPSG:32650")  # 1.5 deg outside
    assert _err(crs.to_wgs84(x, y, "EPSG:32650"), ([121.5, 112.5], [25.0, 25.0])) < 1e-9
    x, y = crs.from_wgs84([123.0], [25.0], "EPSG:32650")                 # 3 deg outside
    assert np.isinf(crs.to_wgs84(x, y, "EPSG:32650")[0]).all()


# --------------------------------------------------------------------------- geometry
def test_geometry_to_wgs84_converts_every_vertex() -> None:
    shell = [(119.28, 26.06), (119.31, 26.06), (119.31, 26.09), (119.28, 26.09), (119.28, 26.06)]
    hole = [(119.29, 26.07), (119.30, 26.07), (119.30, 26.08), (119.29, 26.07)]
    geom = MultiPolygon([Polygon(shell, [hole]), Polygon([(p[0] + 0.1, p[1]) for p in shell])])
    out = crs.geometry_to_wgs84(geom, "GCJ-02")
    assert isinstance(out, MultiPolygon) and len(out.geoms) == 2
    src, got = shapely.get_coordinates(geom), shapely.get_coordinates(out)
    assert got.shape == src.shape
    assert _err((got[:, 0], got[:, 1]), crs.gcj02_to_wgs84(src[:, 0], src[:, 1])) == 0.0
    assert not np.allclose(got, src)


def test_geometry_to_wgs84_projected_and_3d() -> None:
    line = LineString([(500000.0, 2880000.0, 5.0), (501000.0, 2881000.0, 7.0)])
    out = crs.geometry_to_wgs84(line, "EPSG:32650")
    assert not out.has_z
    assert out.coords[0] == pytest.approx((117.0, 26.03897), abs=1e-5)
    point = Point(119.3, 26.07)
    assert crs.geometry_to_wgs84(point, None) is point


def test_geometry_that_cannot_be_converted_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        crs.geometry_to_wgs84(LineString([(500000, 2880000), (1e12, 1e12)]), "EPSG:32650")
    assert info.value.field == "geometry"


# --------------------------------------------------------------------------- parse_crs
@pytest.mark.parametrize(("given", "expected"), [
    (None, "wgs84"), ("wgs84", "wgs84"), ("WGS-84", "wgs84"), ("EPSG:4326", "wgs84"),
    ("epsg:4326", "wgs84"), ("GCJ02", "gcj02"), ("gcj-02", "gcj02"), ("BD09", "bd09"),
    ("bd-09", "bd09"), ("CGCS2000", "cgcs2000"), ("EPSG:4490", "cgcs2000"),
    (" epsg:32650 ", "EPSG:32650"), ("EPSG:3857", "EPSG:3857"), ("EPSG:4547", "EPSG:4547"),
])
def test_parse_crs_accepts(given: str | None, expected: str) -> None:
    assert crs.parse_crs(given) == expected


@pytest.mark.parametrize(("given", "words"), [
    ("mars", "unknown crs"), ("", "unknown crs"), ("4326", "unknown crs"),
    ("EPSG:999999", "does not know"), ("EPSG:5773", "not a geographic or projected"),
    ("EPSG:4978", "not a geographic or projected"), (4326, "must be a string"),
])
def test_parse_crs_refuses(given: Any, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        crs.parse_crs(given)
    err = info.value
    assert err.field == "crs" and err.value == given
    assert words in err.message and repr(given) in err.message
    assert err.valid is not None and "wgs84" in err.valid and "EPSG:<code>" in err.valid


def test_conversions_refuse_unknown_crs() -> None:
    with pytest.raises(InvalidInput):
        crs.to_wgs84(1.0, 2.0, "gcj2")


# --------------------------------------------------------------------------- check_lonlat
@pytest.mark.parametrize(("lon", "lat", "expected"), [
    (119.3, 26.07, (119.3, 26.07)), (" 119.3", "26.07 ", (119.3, 26.07)),
    (-180, 90, (-180.0, 90.0)), (180, -90, (180.0, -90.0)),
    (np.float64(1.5), np.int64(2), (1.5, 2.0)),
])
def test_check_lonlat_accepts(lon: Any, lat: Any, expected: tuple[float, float]) -> None:
    got = crs.check_lonlat(lon, lat)
    assert got == expected and all(type(v) is float for v in got)


@pytest.mark.parametrize(("lon", "lat", "field", "words"), [
    ("abc", 26.0, "lon", "must be a number"), (119.0, None, "lat", "must be a number"),
    (True, 26.0, "lon", "must be a number"), (119.0, [26.0], "lat", "must be a number"),
    (float("nan"), 26.0, "lon", "finite"), (119.0, "inf", "lat", "finite"),
    (181.0, 26.0, "lon", "outside [-180, 180]"), (-200.0, 0.0, "lon", "outside [-180, 180]"),
    (100.0, 95.0, "lat", "outside [-90, 90]"), (120.0, -90.5, "lat", "outside [-90, 90]"),
])
def test_check_lonlat_refuses(lon: Any, lat: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        crs.check_lonlat(lon, lat)
    err = info.value
    assert err.field == field and words in err.message
    assert err.value is (lon if field == "lon" else lat)
    assert err.valid is not None and "(lon, lat)" in err.valid
    assert "swapped" not in err.message


def test_check_lonlat_says_when_swapped() -> None:
    with pytest.raises(InvalidInput) as info:
        crs.check_lonlat(26.07, 119.3, lon_field="point.lon", lat_field="point.lat")
    err = info.value
    assert err.field == "point.lat" and err.value == 119.3
    assert "look swapped" in err.message and "(lon, lat)" in err.message
    assert "point.lon=119.3, point.lat=26.07" in err.message
