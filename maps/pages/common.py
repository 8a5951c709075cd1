"""Pieces the heatmap, hexbins and grids pages share: the map, outlines, the filter summary."""

from __future__ import annotations

import html
from typing import Any, Literal

import folium
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.h3bins import CellBins
from geo.settings import get_settings
from geo.store.incident_queries import IncidentFilter
from geo.store.map_grids import grids_extent
from geo.store.models import Category, Grid
from maps.basemap import Basemap, new_map, shift_geojson
from maps.pages.filters import IncidentParams
from maps.panel import centre, esc, fit, rows_table, status_name

OutlineLevel = Literal["grid", "community", "street", "none"]
LEVEL_NAMES = {
    "zh": {"grid": "网格边界", "community": "社区边界", "street": "街道边界", "none": ""},
    "en": {"grid": "grid boundaries", "community": "community boundaries",
           "street": "street boundaries", "none": ""},
}
_TEXT = {
    "zh": {"window": "时间", "category": "类别", "status": "状态", "grid": "范围",
           "all": "全部", "name": "名称", "code": "编码",
           "empty": "没有符合这些条件的事件：请放宽时间、类别、状态或范围。"},
    "en": {"window": "window", "category": "categories", "status": "statuses",
           "grid": "area", "all": "all", "name": "name", "code": "code",
           "empty": "No incident matches these filters: widen the window, categories, "
                    "statuses or area."},
}
#: Shown when there are no grids at all (an empty database): the whole world.
_WORLD = (-170.0, -60.0, 170.0, 75.0)


def page_map(session: Session, basemap: Basemap, *, under: str | None,
             bins: CellBins | None = None) -> folium.Map:
    """A map on ``basemap`` fitted to the grids in scope (or to the binned points)."""
    bounds = grids_extent(session, under=under)
    if bounds is None and bins is not None and len(bins):
        bounds = (float(np.min(bins.lon)), float(np.min(bins.lat)),
                  float(np.max(bins.lon)), float(np.max(bins.lat)))
    bounds = bounds or _WORLD
    m = new_map(basemap=basemap, center=centre(bounds), zoom=13)
    fit(m, basemap, bounds)
    return m


def escape_fields(data: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A copy of a GeoJSON Feature or FeatureCollection whose text values of ``fields`` are
    HTML-escaped (the features themselves are left as they are)."""
    def escaped(feature: dict[str, Any]) -> dict[str, Any]:
        props = dict(feature.get("properties") or {})
        for key in fields:
            if isinstance(props.get(key), str):
                props[key] = html.escape(props[key])
        return {**feature, "properties": props}

    if data.get("type") == "FeatureCollection":
        return {**data, "features": [escaped(f) for f in data["features"]]}
    return escaped(data)


def tooltip_layer(data: dict[str, Any], *, fields: list[str], aliases: list[str],
                  **options: Any) -> folium.GeoJson:
    """``folium.GeoJson(data, **options)`` with a tooltip of ``fields``. folium writes the
    tooltip's values into the page as HTML, and names, codes and the like are users' text: the
    layer gets a copy of ``data`` whose text values of ``fields`` are escaped."""
    return folium.GeoJson(escape_fields(data, fields),
                          tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases),
                          **options)


def add_outlines(m: folium.Map, basemap: Basemap, features: list[dict[str, Any]], *,
                 name: str, lang: str, interactive: bool = True) -> None:
    """Grid boundaries as a line layer (no fill), the name and code on hover; nothing when
    there are none. ``interactive=False`` for outlines drawn over a layer with its own
    tooltips: on the canvas renderer an outline would catch the pointer inside its area."""
    if not features:
        return
    collection = shift_geojson(basemap, {"type": "FeatureCollection", "features": features})
    text = _TEXT[lang]
    style = {"color": "#444", "weight": 1, "fill": False, "opacity": 0.7}
    if interactive:
        tooltip_layer(collection, fields=["name", "code"], aliases=[text["name"], text["code"]],
                      name=name, style_function=lambda _: style).add_to(m)
    else:
        folium.GeoJson(collection, name=name, style_function=lambda _: style,
                       interactive=False).add_to(m)


def describe_filters(session: Session, params: IncidentParams, flt: IncidentFilter,
                     lang: str, *, matched: int) -> str:
    """The window and filters of a page as a small table (HTML), after a note saying
    that nothing matched when ``matched`` (the incidents the filters found) is 0."""
    text = _TEXT[lang]
    note = "" if matched else f'<p class="pg-empty" id="pg-empty">{esc(text["empty"])}</p>'

    tz = get_settings().tz
    assert flt.reported_from is not None and flt.reported_to is not None
    window = (f"{flt.reported_from.astimezone(tz):%Y-%m-%d %H:%M} – "
              f"{flt.reported_to.astimezone(tz):%Y-%m-%d %H:%M}")
    rows = [(text["window"], esc(window))]
    if flt.categories:
        label = Category.name_zh if lang == "zh" else Category.name_en
        names = {code: name for code, name in session.execute(
            select(Category.code, label).where(Category.code.in_(flt.categories)))}
        rows.append((text["category"], esc(", ".join(names.get(c, c) for c in flt.categories))))
    if type(params).model_fields["status"].annotation is not type(None):  # not on grids
        rows.append((text["status"], esc(", ".join(status_name(s, lang) for s in params.status)
                                          if params.status else text["all"])))
    if flt.grid:
        name = session.scalar(select(Grid.name).where(Grid.code == flt.grid,
                                                      Grid.valid_to.is_(None)))
        rows.append((text["grid"], esc(f"{name} ({flt.grid})")))
    return note + rows_table(rows)
