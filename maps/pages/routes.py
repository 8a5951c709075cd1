"""``/maps/routes/{team}?date=YYYY-MM-DD``: a patrol team's route map for a day, printable.

The team's routes (scheduled that day in orange, with the share walked by its
members in the scheduled windows; the others grey, dashed), the grids they claim
(outlined) and pass through (filled), the incidents reported in the ``days``
before the end of the day within ``near_m`` metres of a route (numbered, newest
first, overdue ones in red) and the members' GPS tracks of the day. The panel
lists members, routes and incidents; printed (A4 portrait) the map takes the top
of the sheet and the panel follows it. Vector layers are SVG so that they print
sharp. Data: :func:`geo.store.map_routes.team_day`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import folium
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from geo.errors import EARLIEST_MOMENT, LATEST_MOMENT
from geo.settings import Settings, get_settings
from geo.store.coverage import longest_leg_m
from geo.store.map_routes import TeamDay, team_day
from maps.basemap import Basemap, shift_geojson, shift_lonlat
from maps.pages.common import escape_fields, tooltip_layer
from maps.panel import (
    BASE_CSS,
    PANEL_CLASS,
    WEEKDAYS,
    add_legend,
    add_panel,
    esc,
    fitted_map,
    grid_table,
    metres,
    percent,
    remember_bounds,
    rows_table,
)

KIND = "routes"
TITLE = {"zh": "巡防路线图", "en": "Patrol route map"}
ROUTE_COLOUR = "#e6550d"
IDLE_COLOUR = "#969696"
TRACK_COLOUR = "#2b6cb0"
STATUS_COLOURS = {"overdue": "#cb181d", "pending": "#fd8d3c", "done": "#737373"}
#: Incidents numbered on the map and listed in the panel.
NUMBERED = 20

PRINT_CSS = f"""
@media print {{
  @page {{ size: A4 portrait; margin: 10mm; }}
  html, body {{ width: 190mm; height: auto !important; overflow: visible !important; }}
  body {{ display: flex; flex-direction: column; }}
  .folium-map {{ order: 0; position: relative !important; width: 190mm !important;
                 height: 120mm !important; flex: none; border: 1px solid #999; }}
  .pg-legend {{ order: 1; }}
  .{PANEL_CLASS} {{ order: 2; }}
  .leaflet-control-zoom, .leaflet-control-layers {{ display: none !important; }}
  .{PANEL_CLASS} {{ position: static !important; max-width: none !important;
                   max-height: none !important; overflow: visible !important;
                   box-shadow: none !important; margin-top: 2mm; padding: 0 !important;
                   font-size: 8pt; line-height: 1.25; }}
  .{PANEL_CLASS} h1 {{ font-size: 12pt; }}  .{PANEL_CLASS} h2 {{ font-size: 9pt; }}
  .{PANEL_CLASS} tr {{ page-break-inside: avoid; }}
  .{PANEL_CLASS} td, .{PANEL_CLASS} th {{ padding: 0 2px; }}
  .pg-legend {{ position: static !important; box-shadow: none !important; margin-top: 1mm;
                padding: 0 !important; font-size: 8pt; }}
  .pg-legend div {{ display: inline-block; margin-right: 4mm; }}
}}
"""
NUMBER_CSS = (".pg-num{background:#fff;border:1px solid #333;border-radius:9px;width:18px;"
              "height:18px;font:bold 11px/16px sans-serif;text-align:center}")
EXTRA_CSS = BASE_CSS + NUMBER_CSS + PRINT_CSS
#: Leaflet keeps its size until told: redraw for the printed sheet and back.
_REFIT_JS = """<script>
(function () {
  function refit() {
    Object.values(window).filter(function (v) { return v instanceof L.Map; })
      .forEach(function (m) { m.invalidateSize({animate: false});
                              if (m.pgBounds) { m.fitBounds(m.pgBounds, {animate: false}); } });
  }
  window.addEventListener('beforeprint', refit);
  window.addEventListener('afterprint', refit);
  if (window.matchMedia) { window.matchMedia('print').addEventListener('change', refit); }
})();
</script>"""

LABELS = {
    "zh": {"routes": "巡防路线", "grids": "责任网格", "crossed": "途经网格",
           "incidents": "沿线事件",
           "tracks": "当日轨迹", "team": "队伍", "date": "日期", "members": "队员",
           "route": "路线", "length": "长度", "windows": "时段", "walked": "已巡",
           "not_today": "当日不排班", "no": "序号", "time": "上报时间", "category": "类别",
           "status": "状态", "distance": "距路线", "near": "路线两侧", "since": "最近",
           "days": "天", "shown": "共 {total} 起，列出最近 {shown} 起", "overdue": "超期",
           "pending": "办理中", "done": "已办结", "legend": "图例", "none": "无",
           "grid": "网格", "id": "编号", "code": "编码",
           "no_routes": "这支队伍没有巡防路线：在路线中指定队伍（routes import --team）。",
           "no_incidents": "这段时间路线两侧没有事件。"},
    "en": {"routes": "Routes", "grids": "Claimed grids", "crossed": "Grids passed",
           "incidents": "Incidents along the way", "tracks": "Tracks of the day", "team": "Team",
           "date": "Date", "members": "Members", "route": "Route", "length": "Length",
           "windows": "Windows", "walked": "Walked", "not_today": "not scheduled this day",
           "no": "No.", "time": "Reported", "category": "Category", "status": "Status",
           "distance": "To route", "near": "Either side of a route", "since": "Last",
           "days": "days", "shown": "{total} in all, the newest {shown} listed",
           "overdue": "overdue", "pending": "pending", "done": "done", "legend": "Legend",
           "none": "none", "grid": "Grid", "id": "ID", "code": "Code",
           "no_routes": "This team has no routes: give routes this team (routes import --team).",
           "no_incidents": "No incident along the routes in this time."},
}


class Params(BaseModel):
    """The team (path value), the day and what counts as along the way."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(..., min_length=1, description="the code (or id) of a team")
    date: dt.date | None = Field(
        None, ge=EARLIEST_MOMENT.date(), lt=LATEST_MOMENT.date(),
        description="a local day as YYYY-MM-DD (default: today), 1970 to 2199")
    near_m: float = Field(100.0, gt=0, le=1000, allow_inf_nan=False,
                          description="metres either side of a route, more than 0 and at most "
                                      "1000 (default 100)")
    days: float = Field(7.0, gt=0, le=90, allow_inf_nan=False,
                        description="days back from the end of the date, more than 0 and at "
                                    "most 90 (default 7)")


def _state(props: dict[str, Any]) -> str:
    if props["overdue"]:
        return "overdue"
    return "pending" if props["status"] in ("registered", "dispatched", "accepted",
                                            "in_progress") else "done"


def _add_lines(m: folium.Map, data: TeamDay, basemap: Basemap, labels: dict[str, str]) -> None:
    claimed = [f for f in data.grids["features"] if f["properties"]["role"] == "claimed"]
    crossed = [f for f in data.grids["features"] if f["properties"]["role"] == "crossed"]
    if crossed:
        tooltip_layer(shift_geojson(basemap, {"type": "FeatureCollection", "features": crossed}),
                      name=labels["crossed"], fields=["name", "code"],
                      aliases=[labels["grid"], labels["code"]],
                      style_function=lambda _: {"color": "#6baed6", "weight": 1,
                                                "fillColor": "#c6dbef", "fillOpacity": 0.35},
                      ).add_to(m)
    if claimed:
        claimed_fc = {"type": "FeatureCollection", "features": claimed}  # users' names inside
        folium.GeoJson(shift_geojson(basemap, escape_fields(claimed_fc, ["name"])),
                       name=labels["grids"], style_function=lambda _: {
                           "color": "#252525", "weight": 2.5, "dashArray": "6 4",
                           "fillOpacity": 0}).add_to(m)
    for f in data.routes["features"]:
        p = f["properties"]
        p["walked_text"] = percent(p["walked_share"]) if p["scheduled"] else labels["not_today"]
        p["length_text"] = metres(p["length_m"])
    if data.routes["features"]:
        tooltip_layer(
            shift_geojson(basemap, data.routes), name=labels["routes"],
            style_function=lambda f: {
                "color": ROUTE_COLOUR if f["properties"]["scheduled"] else IDLE_COLOUR,
                "weight": 5 if f["properties"]["scheduled"] else 3, "opacity": 0.9,
                "dashArray": None if f["properties"]["scheduled"] else "8 6"},
            fields=["code", "name", "length_text", "windows", "walked_text"],
            aliases=[labels["route"], "", labels["length"], labels["windows"],
                     labels["walked"]]).add_to(m)
    if data.tracks["features"]:  # over the routes: where the walks left them shows
        folium.GeoJson(shift_geojson(basemap, data.tracks), name=labels["tracks"],
                       marker=folium.CircleMarker(radius=2, color=TRACK_COLOUR),
                       style_function=lambda _: {"color": TRACK_COLOUR, "weight": 2,
                                                 "opacity": 0.8}).add_to(m)


def _add_incidents(m: folium.Map, data: TeamDay, basemap: Basemap,
                   labels: dict[str, str], lang: str, tz: ZoneInfo) -> None:
    features = data.incidents["features"]
    if not features:
        return
    for f in features:
        p = f["properties"]
        p["state"] = _state(p)
        p["state_text"] = labels[p["state"]]
        p["category_text"] = p["category_zh"] if lang == "zh" else p["category_en"]
        p["distance_text"] = metres(p["distance_m"])
        p["time_text"] = f"{dt.datetime.fromisoformat(p['reported_at']).astimezone(tz):%m-%d %H:%M}"
    group = folium.FeatureGroup(name=labels["incidents"]).add_to(m)
    tooltip_layer(
        shift_geojson(basemap, data.incidents),
        marker=folium.CircleMarker(radius=6, fill=True),
        style_function=lambda f: {"color": "#fff", "weight": 1, "fillOpacity": 0.9,
                                  "fillColor": STATUS_COLOURS[f["properties"]["state"]]},
        fields=["id", "category_text", "state_text", "time_text", "distance_text"],
        aliases=[labels["id"], labels["category"], labels["status"], labels["time"],
                 labels["distance"]]).add_to(group)
    first = features[:NUMBERED]
    lon, lat = shift_lonlat(basemap, np.array([f["geometry"]["coordinates"][0] for f in first]),
                            np.array([f["geometry"]["coordinates"][1] for f in first]))
    for k, (x, y) in enumerate(zip(lon, lat, strict=True), start=1):
        folium.Marker([float(y), float(x)], icon=folium.DivIcon(
            html=f'<div class="pg-num">{k}</div>', icon_size=(18, 18), icon_anchor=(-4, 20)),
        ).add_to(group)


def _panel(m: folium.Map, data: TeamDay, title: str, labels: dict[str, str],
           lang: str) -> None:
    team = data.team
    members = ", ".join(f"{mb['name']} ({mb['code']}{', ' + mb['phone'] if mb['phone'] else ''})"
                        for mb in team.members) or labels["none"]
    body = rows_table([
        (labels["team"], esc(f"{team.name} ({team.code})")),
        (labels["date"], esc(f"{data.day.isoformat()} ({WEEKDAYS[lang][data.day.weekday()]})")),
        (labels["members"], esc(members)),
        (labels["near"], esc(f"{data.near_m:g} m; {labels['since']} "
                             f"{(data.until - data.since).total_seconds() / 86400:g} "
                             f"{labels['days']}"))])
    body += f"<h2>{esc(labels['routes'])}</h2>"
    if data.routes["features"]:
        body += grid_table(
            [labels["route"], labels["length"], labels["windows"], labels["walked"]],
            [[esc(f"{p['code']} {p['name']}"), esc(p["length_text"]), esc(p["windows"] or "—"),
              esc(p["walked_text"])] for p in (f["properties"] for f in data.routes["features"])],
            numeric=(1, 3))
    else:
        empty = esc(labels["no_routes"])
        body += f'<p class="pg-empty" id="pg-empty">{empty}</p>'
    incidents = data.incidents["features"][:NUMBERED]
    body += f"<h2>{esc(labels['incidents'])}</h2>"
    shown = labels["shown"].format(total=data.incidents_total, shown=len(incidents))
    body += f'<p class="note">{esc(shown if incidents else labels["no_incidents"])}</p>'
    if incidents:
        body += grid_table(
            [labels["no"], labels["time"], labels["category"], labels["status"],
             labels["distance"]],
            [[str(k), esc(p["time_text"]), esc(p["category_text"]), esc(p["state_text"]),
              esc(p["distance_text"])]
             for k, p in enumerate((f["properties"] for f in incidents), start=1)],
            numeric=(0, 4))
    add_panel(m, title, body)


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh",
          settings: Settings | None = None) -> folium.Map:
    """The route map of ``params.team`` on ``params.date`` (see the module docstring)."""
    conf = settings or get_settings()
    labels = LABELS[lang]
    day = params.date or dt.datetime.now(conf.tz).date()
    data = team_day(session, params.team, day, tz=conf.tz, near_m=params.near_m,
                    days=params.days, tolerance_m=conf.route_walk_tolerance_m,
                    leg_m=longest_leg_m(conf))
    m, fitted = fitted_map(basemap, _bounds(data))
    m.options["prefer_canvas"] = False  # SVG: vectors print sharp and follow a resize
    if fitted:
        remember_bounds(m, fitted)
    _add_lines(m, data, basemap, labels)
    _add_incidents(m, data, basemap, labels, lang, conf.tz)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    _panel(m, data, f"{TITLE[lang]} · {data.team.name}", labels, lang)
    add_legend(m, labels["legend"], [
        (ROUTE_COLOUR, labels["routes"]), (IDLE_COLOUR, labels["not_today"]),
        (TRACK_COLOUR, labels["tracks"]), ("#c6dbef", labels["crossed"]),
        *((STATUS_COLOURS[s], f"{labels['incidents']}: {labels[s]}")
          for s in ("overdue", "pending", "done"))])
    m.get_root().html.add_child(folium.Element(_REFIT_JS))  # type: ignore[attr-defined]
    return m


def _bounds(data: TeamDay) -> tuple[float, float, float, float] | None:
    geoms = [shapely.geometry.shape(f["geometry"])
             for layer in (data.routes, data.grids) for f in layer["features"]]
    if not geoms:
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geoms))
    return xmin, ymin, xmax, ymax
