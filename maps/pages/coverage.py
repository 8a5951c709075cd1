"""``/maps/coverage``: patrol coverage per grid over a window, tracks drawn, hotspots missed.

Each grid of the level is filled by its coverage (the share of its area within
``distance_m`` of any GPS track of the window, as ``GET /api/v1/coverage``
measures it); the window's track lines are drawn over it; the hotspot cells no
patrol passed within reach are outlined in red (the visited ones in green, a
separate layer). The panel lists the least covered grids and the busiest missed
hotspots. Data: :func:`geo.store.map_coverage.coverage_map`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import folium
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo.errors import EARLIEST_MOMENT, LATEST_MOMENT, InvalidInput
from geo.settings import Settings, get_settings
from geo.store.coverage import Rules
from geo.store.map_common import feature_collection
from geo.store.map_coverage import CoverageMap, coverage_map
from geo.store.track_queries import WINDOW_VALID, parse_window
from maps.basemap import Basemap, shift_geojson
from maps.pages.common import tooltip_layer
from maps.panel import (
    BASE_CSS,
    add_legend,
    add_panel,
    esc,
    fitted_map,
    grid_table,
    percent,
    rows_table,
    share_colour,
)

KIND = "coverage"
TITLE = {"zh": "巡防覆盖率", "en": "Patrol coverage"}
EXTRA_CSS = BASE_CSS
TRACK_COLOUR = "#2b6cb0"
MISSED_COLOUR = "#d7301f"
VISITED_COLOUR = "#6a51a3"
#: Rows of the panel's tables.
SHOWN = 6

LABELS = {
    "zh": {"grids": "网格覆盖率", "tracks": "巡防轨迹", "missed": "未巡到热点",
           "visited": "已巡到热点",
           "window": "时段", "level": "层级", "mean": "平均覆盖率", "uncovered": "无人巡到的网格",
           "hot": "热点（已巡/全部）", "buffer": "轨迹两侧", "worst": "覆盖最低的网格",
           "busiest": "未巡到的热点（事件最多）", "name": "名称", "code": "编码", "share": "覆盖率",
           "incidents": "事件数", "grid": "网格", "workers": "巡防人员", "legend": "覆盖率",
           "rank": "排名", "cut": "轨迹过多，只画出一部分", "from": "起", "to": "止",
           "street": "街道", "community": "社区"},
    "en": {"grids": "Grid coverage", "tracks": "Patrol tracks", "missed": "Hotspots not visited",
           "visited": "Hotspots visited", "window": "Window", "level": "Level",
           "mean": "Mean coverage", "uncovered": "Grids nobody patrolled",
           "hot": "Hotspots (visited/all)", "buffer": "Buffer each side of a track",
           "worst": "Least covered grids", "busiest": "Missed hotspots (most incidents)",
           "name": "Name", "code": "Code", "share": "Coverage", "incidents": "Incidents",
           "grid": "Grid", "workers": "Patrol workers", "legend": "Coverage", "rank": "Rank",
           "cut": "too many tracks: only part of them is drawn", "from": "from", "to": "to",
           "street": "street", "community": "community"},
}


class Params(BaseModel):
    """Which grids and which window."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    level: Literal["street", "community", "grid"] = Field(
        "grid", description="street, community or grid")
    parent: str | None = Field(
        None, description="the code of a current grid: only its children at `level`")
    date: dt.date | None = Field(
        None, ge=EARLIEST_MOMENT.date(), lt=LATEST_MOMENT.date(),
        description="a local day as YYYY-MM-DD (instead of from/to), 1970 to 2199")
    start: str | None = Field(None, alias="from", description=WINDOW_VALID)
    end: str | None = Field(None, alias="to", description=WINDOW_VALID)
    distance_m: float | None = Field(
        None, gt=0, le=500, description="metres around the tracks that count as covered, "
                                        "more than 0 and at most 500 (default 25)")


def window(params: Params, settings: Settings) -> tuple[dt.datetime, dt.datetime]:
    """``[from, to)`` of the page: the local ``date``, or from/to (default the last 24 h)."""
    if params.date is not None:
        if params.start is not None or params.end is not None:
            raise InvalidInput("give either date or from/to, not both", field="date",
                               value=params.date.isoformat(),
                               valid="date=YYYY-MM-DD alone, or from= and to= without date")
        lo = dt.datetime.combine(params.date, dt.time(0), settings.tz)
        return lo, dt.datetime.combine(params.date + dt.timedelta(days=1), dt.time(0),
                                       settings.tz)
    return parse_window(params.start, params.end, tz=settings.tz,
                        max_days=settings.track_max_window_days)


def _grid_style(feature: dict[str, Any]) -> dict[str, Any]:
    return {"fillColor": share_colour(feature["properties"]["coverage"]), "fillOpacity": 0.6,
            "color": "#555", "weight": 0.8}


def _decorate(data: CoverageMap, labels: dict[str, str]) -> None:
    for f in data.grids["features"]:
        p = f["properties"]
        p["share_text"] = percent(p["coverage"])
        p["hot_text"] = f"{p['hotspots_visited']}/{p['hotspots_total']}"


def _layers(m: folium.Map, data: CoverageMap, basemap: Basemap, labels: dict[str, str]) -> None:
    tooltip_layer(
        shift_geojson(basemap, data.grids), name=labels["grids"], style_function=_grid_style,
        highlight_function=lambda _: {"weight": 3, "color": "#000"},
        fields=["name", "code", "share_text", "hot_text", "rank"],
        aliases=[labels[k] for k in ("name", "code", "share", "hot", "rank")],
    ).add_to(m)
    if data.tracks["features"]:
        for track in data.tracks["features"]:  # local times, to the minute, as in the panel
            props = track["properties"]
            for key in ("start", "end"):
                if isinstance(props.get(key), str):
                    moment = dt.datetime.fromisoformat(props[key]).astimezone(get_settings().tz)
                    props[key] = f"{moment:%Y-%m-%d %H:%M}"
        tooltip_layer(
            shift_geojson(basemap, data.tracks), name=labels["tracks"],
            style_function=lambda _: {"color": TRACK_COLOUR, "weight": 2, "opacity": 0.8},
            marker=folium.CircleMarker(radius=2, color=TRACK_COLOUR),
            fields=["worker_code", "start", "end"],
            aliases=[labels["workers"], labels["from"], labels["to"]],
        ).add_to(m)
    busiest = max((f["properties"]["incidents"] for f in data.hotspots["features"]), default=1)
    for visited in (True, False):
        cells = [f for f in data.hotspots["features"] if f["properties"]["visited"] is visited]
        if not cells:
            continue
        colour = VISITED_COLOUR if visited else MISSED_COLOUR

        def style(feature: dict[str, Any], c: str = colour) -> dict[str, Any]:
            # the busier the cell, the stronger: a cell of one incident stays faint
            weight = (feature["properties"]["incidents"] / busiest) ** 0.5
            return {"color": c, "weight": 1.5 if weight > 0.3 else 0, "fillColor": c,
                    "fillOpacity": round(0.12 + 0.68 * weight, 3)}

        tooltip_layer(
            shift_geojson(basemap, feature_collection(cells)),
            name=labels["visited" if visited else "missed"], show=not visited,
            style_function=style, fields=["grid", "incidents", "cell"],
            aliases=[labels["grid"], labels["incidents"], "H3"],
        ).add_to(m)


def _panel(m: folium.Map, data: CoverageMap, title: str, labels: dict[str, str],
           settings: Settings) -> None:
    tz = settings.tz
    s = data.summary
    when = (f"{data.start.astimezone(tz):%Y-%m-%d %H:%M} – "
            f"{data.end.astimezone(tz):%Y-%m-%d %H:%M}")
    rows = [(labels["window"], esc(when)),
            (labels["level"], esc(labels.get(data.level, data.level)
                                  + (f" ⊂ {data.parent}" if data.parent else ""))),
            (labels["mean"], esc(percent(s["mean_coverage"]))),
            (labels["uncovered"], esc(f"{s['uncovered_grids']} / {s['grids']}")),
            (labels["hot"], esc(f"{s['hotspots_visited']} / {s['hotspots']}")),
            (labels["workers"], esc(s["workers"])),
            (labels["buffer"], esc(f"{data.buffer_m:g} m"))]
    body = rows_table(rows)
    if data.tracks_truncated:
        body += f'<p class="note">{esc(labels["cut"])}</p>'
    worst = sorted(data.grids["features"], key=lambda f: (
        f["properties"]["coverage"],
        f["properties"]["hotspots_visited"] - f["properties"]["hotspots_total"],
        f["properties"]["code"]))[:SHOWN]
    body += f"<h2>{esc(labels['worst'])}</h2>" + grid_table(
        [labels["name"], labels["share"], labels["hot"]],
        [[esc(f["properties"]["name"]), esc(f["properties"]["share_text"]),
          esc(f["properties"]["hot_text"])] for f in worst], numeric=(1, 2))
    names = {f["id"]: f["properties"]["name"] for f in data.grids["features"]}
    missed = data.unvisited[:SHOWN]
    if missed:
        body += f"<h2>{esc(labels['busiest'])}</h2>" + grid_table(
            [labels["grid"], labels["incidents"]],
            [[esc(names.get(f["properties"]["grid"], f["properties"]["grid"])),
              esc(f["properties"]["incidents"])] for f in missed], numeric=(1,))
    add_panel(m, title, body)


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh",
          settings: Settings | None = None) -> folium.Map:
    """The coverage map of ``params`` (see the module docstring)."""
    conf = settings or get_settings()
    labels = LABELS[lang]
    start, end = window(params, conf)
    data = coverage_map(session, level=params.level, parent=params.parent, start=start,
                        end=end, rules=Rules.from_settings(conf, distance_m=params.distance_m))
    _decorate(data, labels)
    m, _ = fitted_map(basemap, data.bounds)
    _layers(m, data, basemap, labels)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    _panel(m, data, TITLE[lang], labels, conf)
    add_legend(m, labels["legend"], [
        *((share_colour(v), f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)),
        (TRACK_COLOUR, labels["tracks"]), (MISSED_COLOUR, labels["missed"]),
        (VISITED_COLOUR, labels["visited"])])
    return m
