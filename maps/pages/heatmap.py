"""``/maps/heatmap``: incident heat over a window, from per-H3-cell weights.

The incidents matching the filters are read in bulk (``geo.store.map_incidents``)
and binned per H3 cell (``geo.h3bins``); the page gets one weighted point per
cell (the mean position of its incidents, weight = their number), so a million
incidents make a page of a few thousand points. ``mode=week`` / ``mode=hour``
add a time slider (folium's HeatMapWithTime) with one frame per week of the
window or per hour of the day; frame weights share one scale (the 98th
percentile of all frame cells), so frames compare. The current grid boundaries are drawn over it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import folium
import numpy as np
from folium.plugins import HeatMap, HeatMapWithTime
from pydantic import Field
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.h3bins import MAX_RESOLUTION, MIN_RESOLUTION, CellBins, bin_points
from geo.settings import get_settings
from geo.store.map_grids import grid_outlines
from geo.store.map_incidents import incident_points
from maps.basemap import Basemap, shift_lonlat
from maps.pages.common import (
    LEVEL_NAMES,
    OutlineLevel,
    add_outlines,
    describe_filters,
    page_map,
)
from maps.pages.filters import IncidentParams
from maps.panel import BASE_CSS, add_panel, rows_table

KIND = "heatmap"
TITLE = {"zh": "事件热力图", "en": "Incident heatmap"}
EXTRA_CSS = BASE_CSS
#: Longest window of the week slider (frames).
MAX_WEEKS = 106
#: Slider frames share one scale: a cell's weight is its count over this percentile of
#: every (frame, cell) count, capped at 1, so a few extreme cells do not wash out the rest.
TOP_PERCENTILE = 98
GRADIENT = {0.2: "#2c7bb6", 0.4: "#abd9e9", 0.6: "#ffffbf", 0.8: "#fdae61", 1.0: "#d7191c"}
_TEXT = {
    "zh": {"heat": "热力", "incidents": "事件数", "cells": "H3 单元", "mode": "模式",
           "static": "静态", "week": "按周", "hour": "按小时", "week_label": "{d} 起一周",
           "resolution": "H3 分辨率", "frame_cells": "H3 单元（各帧合计）"},
    "en": {"heat": "heat", "incidents": "incidents", "cells": "H3 cells", "mode": "mode",
           "static": "static", "week": "by week", "hour": "by hour of day",
           "week_label": "week of {d}", "resolution": "H3 resolution",
           "frame_cells": "H3 cells (all frames)"},
}


class Params(IncidentParams):
    """The shared incident filters, plus the heat settings."""

    mode: Literal["static", "week", "hour"] = Field(
        "static", description="static, week (a slider over the weeks of the window) or hour "
        "(a slider over the hours of the day)")
    resolution: int | None = Field(
        None, ge=MIN_RESOLUTION, le=MAX_RESOLUTION,
        description=f"an integer {MIN_RESOLUTION}-{MAX_RESOLUTION}: the H3 resolution of the "
        "cells incidents are summed in (default 10, 9 with a slider)")
    radius: int = Field(12, ge=2, le=80, description="an integer 2-80: heat radius in pixels")
    outline: OutlineLevel = Field("grid", description="grid, community, street or none: "
                                  "the boundaries drawn over the heat")


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh"
          ) -> folium.Map:
    """The heatmap page of ``params`` on ``basemap``."""
    text = _TEXT[lang]
    flt = params.to_filter(session)
    settings = get_settings()
    since, until = flt.reported_from, flt.reported_to
    assert since is not None and until is not None
    origin = _week_origin(since, settings.tz) if params.mode == "week" else None
    if origin is not None and _weeks(origin, until) > MAX_WEEKS:
        raise InvalidInput(f"a week slider shows at most {MAX_WEEKS} weeks", field="since",
                           value=params.since, valid=f"a window of at most {MAX_WEEKS} weeks "
                           "with mode=week (or mode=static)")
    frame = None if params.mode == "static" else params.mode
    points = incident_points(session, flt, frame=frame, timezone=settings.timezone,
                             week_origin=origin)
    resolution = params.resolution or (10 if params.mode == "static" else 9)
    bins = bin_points(points.lon, points.lat, resolution, points.frame)
    outlines = (grid_outlines(session, level=params.outline, under=params.grid)
                if params.outline != "none" else [])
    m = page_map(session, basemap, under=params.grid, bins=bins)
    if params.mode == "static":
        HeatMap(_weighted(basemap, bins), name=text["heat"], radius=params.radius,
                blur=max(2, round(params.radius * 0.8)), min_opacity=0.05, max_zoom=18,
                gradient=GRADIENT).add_to(m)
    else:
        frames, labels = _frames(basemap, bins, params.mode, origin, until, text)
        HeatMapWithTime(frames, index=labels, name=text["heat"], radius=params.radius * 1.5,
                        min_opacity=0.05, max_opacity=0.8, use_local_extrema=False,
                        auto_play=False, gradient=GRADIENT, position="bottomleft").add_to(m)
    if outlines:
        add_outlines(m, basemap, outlines, name=LEVEL_NAMES[lang][params.outline], lang=lang)
    folium.LayerControl(collapsed=False).add_to(m)
    cells = text["cells"] if params.mode == "static" else text["frame_cells"]
    rows = [(text["incidents"], f"{len(points):,}"), (cells, f"{len(bins):,}"),
            (text["resolution"], str(resolution)), (text["mode"], text[params.mode])]
    add_panel(m, TITLE[lang], rows_table(rows) + describe_filters(session, params, flt, lang,
                                                           matched=len(points)))
    return m


def _weighted(basemap: Basemap, bins: CellBins) -> list[list[float]]:
    """``[lat, lon, count]`` per cell, in the basemap's coordinates (5 decimals: ~1 m)."""
    lon, lat = shift_lonlat(basemap, bins.lon, bins.lat)
    return [[round(float(y), 5), round(float(x), 5), int(c)]
            for x, y, c in zip(lon, lat, bins.count, strict=True)]


def _week_origin(since: dt.datetime, tz: Any) -> dt.datetime:
    """Monday 00:00 local time of the week holding ``since``."""
    local = since.astimezone(tz)
    monday = (local - dt.timedelta(days=local.weekday())).date()
    return dt.datetime.combine(monday, dt.time(0, 0), tzinfo=tz)


def _weeks(origin: dt.datetime, until: dt.datetime) -> int:
    """The week frames from ``origin`` to ``until``: a part week counts as one."""
    return max(1, int(np.ceil((until - origin).total_seconds() / (7 * 86400))))


def _frames(basemap: Basemap, bins: CellBins, mode: str, origin: dt.datetime | None,
            until: dt.datetime, text: dict[str, str]) -> tuple[list[Any], list[str]]:
    """One list of ``[lat, lon, weight]`` per frame (weights in (0, 1]), and the labels."""
    if mode == "hour":
        numbers = list(range(24))
        labels = [f"{h:02d}:00–{h + 1:02d}:00" for h in numbers]
    else:
        assert origin is not None
        weeks = _weeks(origin, until)
        numbers = list(range(weeks))
        labels = [text["week_label"].format(d=(origin + dt.timedelta(weeks=w)).date().isoformat())
                  for w in numbers]
    lon, lat = shift_lonlat(basemap, bins.lon, bins.lat)
    top = max(1.0, float(np.percentile(bins.count, TOP_PERCENTILE))) if len(bins) else 1.0
    frames: dict[int, list[list[float]]] = {n: [] for n in numbers}
    for x, y, c, f in zip(lon, lat, bins.count, bins.frame, strict=True):
        if int(f) in frames:
            frames[int(f)].append([round(float(y), 5), round(float(x), 5),
                                   round(min(1.0, float(c) / top), 3)])
    return [frames[n] for n in numbers], labels
