"""Basemaps of the map pages, and the coordinate shift overlays need on GCJ-02 tiles.

Every overlay is stored in WGS-84. Amap (高德) tiles are drawn in GCJ-02, so on
that basemap each overlay coordinate goes through :func:`shift_lonlat` /
:func:`shift_geojson` (WGS-84 -> GCJ-02 by ``geo.chinacoords``) to line up with
the streets; on every other basemap they are identities. Tianditu (天地图) is
drawn in CGCS2000, which agrees with WGS-84 to centimetres, so it needs no shift.
The default basemap is ``none``: no tiles, nothing requested from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import folium
import numpy as np
from numpy.typing import NDArray

from geo.chinacoords import wgs84_to_gcj02
from geo.errors import InvalidInput
from geo.settings import Settings

BasemapKind = Literal["none", "osm", "custom", "amap", "tianditu"]
KINDS: tuple[str, ...] = get_args(BasemapKind)

OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>'
AMAP_URL = ("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
            "&x={x}&y={y}&z={z}")
AMAP_ATTRIBUTION = "&copy; 高德地图 AutoNavi (GCJ-02)"
TIANDITU_URL = ("https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
                "&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
                "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}")
TIANDITU_ATTRIBUTION = "&copy; 天地图 Tianditu"
_DEFAULTS = {"osm": (OSM_URL, OSM_ATTRIBUTION), "amap": (AMAP_URL, AMAP_ATTRIBUTION)}


@dataclass(frozen=True)
class Basemap:
    """Which tiles a page draws under its overlays.

    ``url`` is the tile URL template (``{z}/{x}/{y}``, optionally ``{s}``);
    ``key`` is the Tianditu key. ``none`` has neither.
    """

    kind: BasemapKind
    url: str | None = None
    attribution: str | None = None
    key: str | None = None

    @property
    def is_gcj02(self) -> bool:
        """True when the tiles are in GCJ-02, so WGS-84 overlays must be shifted."""
        return self.kind == "amap"

    def tile_layers(self) -> list[folium.TileLayer]:
        """The folium tile layers of this basemap (none for ``none``)."""
        if self.kind == "none":
            return []
        if self.kind == "tianditu":
            return [folium.TileLayer(
                tiles=TIANDITU_URL.replace("{layer}", layer).replace("{key}", self.key or ""),
                attr=TIANDITU_ATTRIBUTION, name=name, subdomains="01234567", max_zoom=18,
                overlay=layer == "cva", control=False)
                for layer, name in (("vec", "天地图"), ("cva", "天地图注记"))]
        subdomains = "1234" if self.kind == "amap" else "abc"
        url, attribution = _DEFAULTS.get(self.kind, (None, None))
        url = self.url or url
        return [folium.TileLayer(tiles=url, attr=self.attribution or attribution or url,
                                 name=self.kind, subdomains=subdomains, max_zoom=19,
                                 control=False)]


def basemap_from_settings(settings: Settings, override: str | None = None) -> Basemap:
    """The basemap named by ``override`` (a page's ``?basemap=``) or the settings.

    Raises
    ------
    InvalidInput
        For an unknown kind, ``custom`` without ``PATROLGRID_BASEMAP_URL`` or
        ``tianditu`` without ``PATROLGRID_BASEMAP_KEY``.
    """
    field = "basemap" if override else "PATROLGRID_BASEMAP"
    kind = (override or settings.basemap).strip().lower()
    if kind not in KINDS:
        raise InvalidInput(f"basemap {kind!r} is not one of {', '.join(KINDS)}",
                           field=field, value=override or settings.basemap, valid=", ".join(KINDS))
    if kind == "osm":
        return Basemap("osm", OSM_URL, OSM_ATTRIBUTION)
    if kind == "amap":
        return Basemap("amap", AMAP_URL, AMAP_ATTRIBUTION)
    if kind == "tianditu":
        if not settings.basemap_key:
            raise InvalidInput("the tianditu basemap needs a Tianditu key",
                               field="PATROLGRID_BASEMAP_KEY", value=None,
                               valid="your tk from console.tianditu.gov.cn")
        return Basemap("tianditu", TIANDITU_URL, TIANDITU_ATTRIBUTION, key=settings.basemap_key)
    if kind == "custom":
        url = settings.basemap_url or ""
        if not all(part in url for part in ("{z}", "{x}", "{y}")):
            raise InvalidInput("the custom basemap needs a tile URL template",
                               field="PATROLGRID_BASEMAP_URL", value=settings.basemap_url,
                               valid="a URL with {z}, {x} and {y}, e.g. "
                                     "http://tiles.intranet/{z}/{x}/{y}.png")
        return Basemap("custom", url, settings.basemap_attribution)
    return Basemap("none")


def shift_lonlat(basemap: Basemap, lon: NDArray[np.float64], lat: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """WGS-84 (lon, lat) in the basemap's coordinates: GCJ-02 on Amap, unchanged otherwise."""
    if not basemap.is_gcj02:
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    return wgs84_to_gcj02(lon, lat)


def shift_geojson(basemap: Basemap, geojson: dict[str, Any]) -> dict[str, Any]:
    """A copy of a GeoJSON object (geometry, Feature or FeatureCollection) for the basemap.

    Unchanged (the same object) when the basemap is not GCJ-02.
    """
    if not basemap.is_gcj02:
        return geojson

    def coords(value: Any) -> Any:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 1:
            x, y = wgs84_to_gcj02(arr[0], arr[1])
            return [float(x), float(y), *arr[2:].tolist()]
        if arr.ndim == 2:
            x, y = wgs84_to_gcj02(arr[:, 0], arr[:, 1])
            out = arr.copy()
            out[:, 0], out[:, 1] = x, y
            return out.tolist()
        return [coords(part) for part in value]

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            out = {k: walk(v) for k, v in obj.items() if k != "coordinates"}
            if "coordinates" in obj:
                out["coordinates"] = coords(obj["coordinates"]) if obj["coordinates"] else []
            if "bbox" in obj:
                out.pop("bbox")
            return out
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return cast(dict[str, Any], walk(geojson))


def new_map(*, basemap: Basemap, bounds: tuple[float, float, float, float] | None = None,
            center: tuple[float, float] | None = None, zoom: int = 13) -> folium.Map:
    """A folium map on ``basemap``, fitted to WGS-84 ``bounds`` (lon_min, lat_min, lon_max,
    lat_max) or centred on WGS-84 ``center`` (lon, lat); both shifted on GCJ-02 basemaps.
    """
    location = None
    fit = None
    if bounds is not None:
        xs, ys = shift_lonlat(basemap, np.array([bounds[0], bounds[2]]),
                              np.array([bounds[1], bounds[3]]))
        fit = [[float(ys[0]), float(xs[0])], [float(ys[1]), float(xs[1])]]
        center = center or ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    if center is not None:
        x, y = shift_lonlat(basemap, np.array([center[0]]), np.array([center[1]]))
        location = [float(y[0]), float(x[0])]
    m = folium.Map(location=location, zoom_start=zoom, tiles=None, control_scale=True,
                   prefer_canvas=True)
    for layer in basemap.tile_layers():
        layer.add_to(m)
    if fit is not None:
        m.fit_bounds(fit)
    return m
