"""Basemaps from settings, and the GCJ-02 shift of overlays on Amap."""

from __future__ import annotations

import numpy as np
import pytest

from geo.chinacoords import wgs84_to_gcj02
from geo.errors import InvalidInput
from geo.settings import Settings
from maps.basemap import Basemap, basemap_from_settings, new_map, shift_geojson, shift_lonlat
from maps.offline import render_page

S = Settings(database_url="postgresql+psycopg://x@127.0.0.1/none")


def test_default_is_none_and_draws_no_tiles() -> None:
    basemap = basemap_from_settings(S)
    assert basemap == Basemap("none") and not basemap.is_gcj02
    page = render_page(new_map(basemap=basemap, center=(119.3, 26.08)), title="t")
    assert "L.tileLayer" not in page and "http" not in page.split("<body>")[1]


@pytest.mark.parametrize(("kind", "gcj", "host"), [
    ("osm", False, "tile.openstreetmap.org"), ("amap", True, "autonavi.com")])
def test_named_basemaps(kind: str, gcj: bool, host: str) -> None:
    basemap = basemap_from_settings(S, kind.upper())
    assert basemap.kind == kind and basemap.is_gcj02 is gcj
    assert host in render_page(new_map(basemap=basemap, center=(119.3, 26.08)), title="t")


def test_custom_and_tianditu_need_their_settings() -> None:
    with pytest.raises(InvalidInput) as err:
        basemap_from_settings(S, "custom")
    assert err.value.field == "PATROLGRID_BASEMAP_URL" and "{z}" in (err.value.valid or "")
    custom = basemap_from_settings(S.model_copy(update={
        "basemap": "custom", "basemap_url": "http://tiles.intranet/{z}/{x}/{y}.png"}))
    assert custom.url == "http://tiles.intranet/{z}/{x}/{y}.png" and not custom.is_gcj02
    with pytest.raises(InvalidInput) as err:
        basemap_from_settings(S, "tianditu")
    assert err.value.field == "PATROLGRID_BASEMAP_KEY"
    tdt = basemap_from_settings(S.model_copy(update={"basemap_key": "abc123"}), "tianditu")
    page = render_page(new_map(basemap=tdt, center=(119.3, 26.08)), title="t")
    assert "tk=abc123" in page and "LAYER=vec" in page and "LAYER=cva" in page
    assert not tdt.is_gcj02  # CGCS2000 tiles: WGS-84 overlays line up unshifted


def test_unknown_basemap_names_the_kinds() -> None:
    with pytest.raises(InvalidInput) as err:
        basemap_from_settings(S, "google")
    assert (err.value.field, err.value.value) == ("basemap", "google")
    assert err.value.valid == "none, osm, custom, amap, tianditu"
    with pytest.raises(InvalidInput) as err:
        basemap_from_settings(S.model_copy(update={"basemap": "bing"}))
    assert err.value.field == "PATROLGRID_BASEMAP"


def test_shift_only_on_gcj02() -> None:
    lon, lat = np.array([119.29, 119.30]), np.array([26.08, 26.09])
    same = shift_lonlat(Basemap("osm"), lon, lat)
    assert np.array_equal(same[0], lon) and np.array_equal(same[1], lat)
    x, y = shift_lonlat(Basemap("amap"), lon, lat)
    ex, ey = wgs84_to_gcj02(lon, lat)
    assert np.allclose(x, ex) and np.allclose(y, ey)
    # Fuzhou: GCJ-02 is some hundreds of metres off WGS-84
    dx_m = (x - lon) * 111_320 * np.cos(np.radians(lat))
    dy_m = (y - lat) * 110_540
    assert np.all(np.hypot(dx_m, dy_m) > 200) and np.all(np.hypot(dx_m, dy_m) < 1000)


def test_shift_geojson_walks_every_geometry() -> None:
    ring = [[119.29, 26.08], [119.30, 26.08], [119.30, 26.09], [119.29, 26.08]]
    fc = {"type": "FeatureCollection", "bbox": [0, 0, 1, 1], "features": [
        {"type": "Feature", "properties": {"name": "网格"},
         "geometry": {"type": "MultiPolygon", "coordinates": [[ring]]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                          "coordinates": [119.29, 26.08]}},
        {"type": "Feature", "properties": {}, "geometry": {
            "type": "LineString", "coordinates": [[119.29, 26.08, 5.0], [119.3, 26.09, 6.0]]}}]}
    assert shift_geojson(Basemap("none"), fc) is fc
    out = shift_geojson(Basemap("amap"), fc)
    ex, ey = wgs84_to_gcj02(119.29, 26.08)
    poly = out["features"][0]["geometry"]["coordinates"][0][0]
    assert poly[0] == pytest.approx([float(ex), float(ey)])
    assert out["features"][1]["geometry"]["coordinates"] == pytest.approx([float(ex), float(ey)])
    line = out["features"][2]["geometry"]["coordinates"]
    assert line[0][:2] == pytest.approx([float(ex), float(ey)]) and line[0][2] == 5.0
    assert out["features"][0]["properties"] == {"name": "网格"} and "bbox" not in out
    assert fc["features"][1]["geometry"]["coordinates"] == [119.29, 26.08]  # input untouched


def test_new_map_fits_shifted_bounds() -> None:
    bounds = (119.25, 26.05, 119.32, 26.11)
    plain = new_map(basemap=Basemap("none"), bounds=bounds)
    shifted = new_map(basemap=Basemap("amap"), bounds=bounds)
    ex, ey = wgs84_to_gcj02(np.array([119.25, 119.32]), np.array([26.05, 26.11]))
    fit = next(c for c in shifted._children.values() if type(c).__name__ == "FitBounds")
    flat = [v for corner in fit.bounds for v in corner]
    assert flat == pytest.approx([ey[0], ex[0], ey[1], ex[1]])
    assert plain.location == pytest.approx([26.08, 119.285])
