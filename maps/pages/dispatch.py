"""``/maps/dispatch/{incident_id}``: one incident, its grids, who answers for it, who is near.

The incident (a red marker), its grid chain up to the street (street outlined,
community dashed, grid filled), the worker who holds it (with the rule that gave
it to them), the one the intake chose when that differs (a dispatcher, an
escalation or a decline changed it), the worker the responsibility rules choose
at ``at`` (default now; they differ when shifts have changed), and the nearest
on-duty field workers (grid workers, patrol members, volunteers) with their
geodesic distance from the incident, each joined to it by a dashed line.
Workers without a known position are listed in the panel but not drawn.
Data: :func:`geo.store.map_dispatch.dispatch_view`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import folium
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.settings import Settings, get_settings
from geo.store.grid_queries import parse_at
from geo.store.map_dispatch import DispatchView, Person, dispatch_view
from geo.store.models import INT8_MAX, Category
from maps.basemap import Basemap, shift_geojson, shift_lonlat
from maps.pages.common import tooltip_layer
from maps.panel import (
    BASE_CSS,
    add_legend,
    add_panel,
    esc,
    fitted_map,
    grid_table,
    in_template,
    metres,
    reason_text,
    role_name,
    rows_table,
    status_name,
)

KIND = "dispatch"
TITLE = {"zh": "事件调度", "en": "Dispatch"}
EXTRA_CSS = BASE_CSS
NEAR_COLOUR = "#238b45"
STREET_COLOUR = "#252525"
COMMUNITY_COLOUR = "#6a51a3"
GRID_FILL = "#fdae6b"
LEVEL_STYLES: dict[str, dict[str, Any]] = {
    "street": {"color": STREET_COLOUR, "weight": 3, "fillOpacity": 0.0},
    "community": {"color": COMMUNITY_COLOUR, "weight": 2, "dashArray": "6 4", "fillOpacity": 0.0},
}
GRID_STYLE: dict[str, Any] = {"color": "#e6550d", "weight": 2, "fillColor": GRID_FILL,
                              "fillOpacity": 0.35}

LABELS = {
    "zh": {"incident": "事件", "chain": "所属网格", "assigned": "承办人", "intake": "受理时指派",
           "now": "当前应由",
           "nearest": "附近在岗人员", "id": "编号", "category": "类别", "status": "状态",
           "reported": "上报时间", "due": "办结时限", "overdue": "已超期", "where": "位置",
           "description": "描述", "rule": "规则", "distance": "距离", "name": "姓名",
           "role": "角色", "duty": "在岗依据", "phone": "电话", "team": "队伍",
           "no_position": "无已知位置", "nobody": "无人", "at": "时刻", "legend": "图例",
           "street": "街道", "community": "社区", "grid": "网格", "unassigned": "未分配网格",
           "on call": "待命（无排班）", "primary": "A角", "backup": "B角", "people": "人",
           "community_manager": "社区管理员", "street_nearest": "街道最近在岗", "none": "无人",
           "dispatcher": "调度员指派", "escalation_manager": "升级：管理员",
           "escalation_dispatcher": "升级：调度员",
           "escalation_manager_off_shift": "升级：管理员（不在班）",
           "seen": "位置时间", "stale": "已过时", "retired": "已撤销",
           "redrawn": "已重划", "as_assigned": "显示受理时版本", "later": "晚于此刻"},
    "en": {"incident": "Incident", "chain": "Grid chain", "assigned": "Assigned worker",
           "intake": "Chosen at intake",
           "now": "Responsible now", "nearest": "Nearest on duty", "id": "ID",
           "category": "Category", "status": "Status", "reported": "Reported", "due": "Due",
           "overdue": "overdue", "where": "Position", "description": "Description",
           "rule": "Rule", "distance": "Distance", "name": "Name", "role": "Role",
           "duty": "On duty as", "phone": "Phone", "team": "Team",
           "no_position": "no known position", "nobody": "nobody", "at": "At",
           "legend": "Legend", "street": "Street", "community": "Community", "grid": "Grid",
           "unassigned": "outside every grid", "on call": "on call (no duty)",
           "primary": "primary", "backup": "backup", "people": "people",
           "community_manager": "community manager", "street_nearest": "nearest in the street",
           "none": "nobody", "dispatcher": "dispatched by hand",
           "escalation_manager": "escalated: manager",
           "escalation_dispatcher": "escalated: dispatcher",
           "escalation_manager_off_shift": "escalated: manager off shift",
           "seen": "Position at", "stale": "stale", "retired": "retired",
           "redrawn": "redrawn", "as_assigned": "drawn as assigned, version",
           "later": "after this moment"},
}


class Params(BaseModel):
    """The incident (path value), the moment and how many near workers."""

    model_config = ConfigDict(extra="forbid")

    incident_id: int = Field(..., ge=1, le=INT8_MAX,
                             description="the id of an incident (a whole number from 1 to "
                                         "9223372036854775807)")
    at: str | None = Field(None, description="an ISO 8601 date-time for who is on duty "
                                             "(default now; without an offset it is local)")
    nearest: int = Field(5, ge=1, le=20, description="how many on-duty workers, 1 to 20")


def _local(moment: dt.datetime | None, settings: Settings) -> str:
    return "—" if moment is None else f"{moment.astimezone(settings.tz):%Y-%m-%d %H:%M}"


def _point(basemap: Basemap, lon: float, lat: float) -> list[float]:
    x, y = shift_lonlat(basemap, np.array([lon]), np.array([lat]))
    return [float(y[0]), float(x[0])]


def _duty_text(duty: str | None, labels: dict[str, str]) -> str:
    """``on call`` / ``primary of CODE`` in the page's language."""
    if duty is None or duty == "on call":
        return labels["on call"] if duty else "—"
    kind, _, grid = duty.partition(" of ")
    return f"{labels.get(kind, kind)} {grid}"


def _person_text(p: Person | None, labels: dict[str, str], lang: str) -> str:
    if p is None:
        return esc(labels["nobody"])
    where = metres(p.distance_m) if p.distance_m is not None else labels["no_position"]
    phone = f", {p.phone}" if p.phone else ""
    return esc(f"{p.name} ({p.code}, {role_name(p.role, lang)}{phone}) · {where}")


def _add_chain(m: folium.Map, view: DispatchView, basemap: Basemap,
               labels: dict[str, str], settings: Settings) -> None:
    for f in view.chain["features"]:
        level = f["properties"]["level"]
        f["properties"]["level_text"] = labels.get(level, level)
        if f["properties"].get("redrawn_at"):  # redrawn: the version it was assigned to
            redrawn = dt.datetime.fromisoformat(f["properties"]["redrawn_at"])
            f["properties"]["name"] += (f" ({labels['redrawn']} {_local(redrawn, settings)}; "
                                        f"{labels['as_assigned']} {f['properties']['version']})")
        if f["properties"].get("retired_at"):  # a plan retired it after the assignment
            retired = dt.datetime.fromisoformat(f["properties"]["retired_at"])
            f["properties"]["name"] += f" ({labels['retired']} {_local(retired, settings)})"
        style = LEVEL_STYLES.get(level, GRID_STYLE) if f["id"] != view.incident.grid_code \
            else GRID_STYLE
        tooltip_layer(shift_geojson(basemap, f), fields=["level_text", "name", "code"],
                      aliases=["", "", ""], style_function=lambda _, s=style: s,
                      name=esc(f"{labels.get(level, level)}: {f['properties']['name']}"),
                      ).add_to(m)


def _apart_m(a: Person, b: Person) -> float:
    assert a.lon is not None and a.lat is not None and b.lon is not None and b.lat is not None
    dx = (a.lon - b.lon) * 111_320.0 * math.cos(math.radians(a.lat))
    dy = (a.lat - b.lat) * 110_574.0
    return math.hypot(dx, dy)  # short: a flat-earth distance is exact enough


def _together(people: list[Person], within_m: float = 15.0) -> list[list[tuple[int, Person]]]:
    """The placed people numbered 1.., grouped when a chain of people each within
    ``within_m`` of the next links them (one label per group: a patrol walking together
    shares one position, and no two labels are drawn over each other)."""
    placed = [(k, p) for k, p in enumerate(people, start=1)
              if p.lon is not None and p.lat is not None]
    group_of = list(range(len(placed)))

    def root(i: int) -> int:
        while group_of[i] != i:
            i = group_of[i]
        return i

    for i in range(len(placed)):
        for j in range(i):
            if _apart_m(placed[i][1], placed[j][1]) <= within_m:
                group_of[root(i)] = root(j)
    groups: dict[int, list[tuple[int, Person]]] = {}
    for i, item in enumerate(placed):
        groups.setdefault(root(i), []).append(item)
    return list(groups.values())


def _add_people(m: folium.Map, view: DispatchView, basemap: Basemap,
                labels: dict[str, str], lang: str) -> None:
    inc = view.incident
    here = _point(basemap, inc.lon, inc.lat)
    near = folium.FeatureGroup(name=labels["nearest"]).add_to(m)
    for group in _together(view.nearest):
        first = group[0][1]
        assert first.lon is not None and first.lat is not None
        there = _point(basemap, first.lon, first.lat)
        folium.PolyLine([here, there], color=NEAR_COLOUR, weight=2, dash_array="5 5",
                        tooltip=metres(first.distance_m)).add_to(near)
        numbers = ",".join(str(k) for k, _ in group)
        names = "、".join(p.name for _, p in group)
        near_m = [p.distance_m for _, p in group if p.distance_m is not None]
        span = metres(min(near_m)) if min(near_m) == max(near_m) else \
            f"{metres(min(near_m))} – {metres(max(near_m))}"
        who = names if len(group) == 1 else f"{len(group)} {labels['people']}"
        label = f"{numbers} · {who} · {span}"
        folium.CircleMarker(there, radius=7, color="#fff", weight=1.5, fill=True,
                            fill_color=NEAR_COLOUR, fill_opacity=0.95,
                            popup=in_template(esc(names)),
                            tooltip=folium.Tooltip(in_template(esc(label)), permanent=True,
                                                   direction="right")
                            ).add_to(near)
    for key, colour in (("assigned", "blue"), ("now", "cadetblue")):
        person: Person | None = getattr(view, key)
        if person is None or person.lon is None or person.lat is None:
            continue
        folium.Marker(_point(basemap, person.lon, person.lat),
                      icon=folium.Icon(color=colour, icon="user", prefix="fa"),
                      tooltip=in_template(f"{esc(labels[key])}: "
                                          f"{_person_text(person, labels, lang)}")).add_to(m)
    category = inc.category_name or inc.category
    folium.Marker(here, icon=folium.Icon(color="red", icon="triangle-exclamation", prefix="fa"),
                  tooltip=in_template(esc(f"#{inc.id} {category} · "
                                          f"{status_name(inc.status, lang)}")),
                  ).add_to(m)


def _panel(m: folium.Map, view: DispatchView, labels: dict[str, str],
           settings: Settings, title: str, lang: str) -> None:
    inc = view.incident
    chain = " › ".join(f["properties"]["name"] for f in view.chain["features"])
    due = _local(inc.due_at, settings) + (f" ({labels['overdue']})" if inc.overdue else "")
    rows = [(labels["id"], esc(inc.id)),
            (labels["category"], esc(f"{inc.category_name or ''} ({inc.category})")),
            (labels["status"], esc(status_name(inc.status, lang))),
            (labels["reported"], esc(_local(inc.reported_at, settings))),
            (labels["due"], esc(due)),
            (labels["where"], esc(f"{inc.lon:.6f}, {inc.lat:.6f}")),
            (labels["chain"], esc(chain or labels["unassigned"])),
            (labels["assigned"], _person_text(view.assigned, labels, lang)
             + (f" · {esc(labels.get(inc.rule, inc.rule))}" if inc.rule else "")),
            *([(labels["intake"], _person_text(view.intake, labels, lang)
                + (f" · {esc(labels.get(view.intake_rule, view.intake_rule))}"
                   if view.intake_rule and view.intake_rule != "none" else ""))]
              if view.intake_rule is not None else []),
            (labels["now"], _person_text(view.now, labels, lang)
             + f" · {esc(labels.get(view.now_rule, view.now_rule))}"
             + (f" ({esc(reason_text(view.now_reason, lang))})" if view.now_reason else "")),
            (labels["at"], esc(_local(view.at, settings)))]
    if inc.description:
        rows.insert(3, (labels["description"], esc(inc.description)))
    body = rows_table(rows) + f"<h2>{esc(labels['nearest'])}</h2>" + grid_table(
        ["#", labels["name"], labels["duty"], labels["distance"], labels["seen"],
         labels["phone"]],
        [[str(k), f'{esc(p.name)}<br><span class="note">{esc(p.code)} · '
                  f'{esc(role_name(p.role, lang))}</span>',
          esc(_duty_text(p.duty, labels)), esc(metres(p.distance_m)),
          _seen(p, view.at, labels, settings, view.past), esc(p.phone)]
         for k, p in enumerate(view.nearest, start=1)], numeric=(0, 3, 5))
    add_panel(m, title, body)


#: A last known position older than this (before the map's moment) is flagged stale.
STALE_AFTER = dt.timedelta(hours=24)


def _seen(p: Person, at: dt.datetime, labels: dict[str, str], settings: Settings,
          past: bool = False) -> str:
    """When the person's position was taken, flagged when older than :data:`STALE_AFTER`
    or, on a map of a given moment (``past``), later than it (the last known positions are
    shown; a phone's clock a little ahead is no reason to flag a live map)."""
    seen = esc(_local(p.last_seen_at, settings))
    if past and p.last_seen_at is not None and p.last_seen_at > at:
        return f'{seen}<br><span class="note pg-later">{esc(labels["later"])}</span>'
    if p.last_seen_at is None or at - p.last_seen_at <= STALE_AFTER:
        return seen
    days = (at - p.last_seen_at).total_seconds() / 86_400
    return f'{seen}<br><span class="note pg-stale">{esc(labels["stale"])} ({days:,.0f} d)</span>'


def _bounds(view: DispatchView) -> tuple[float, float, float, float]:
    inc = view.incident
    points: list[Any] = [shapely.Point(inc.lon, inc.lat)]
    points += [shapely.Point(p.lon, p.lat) for p in (*view.nearest, view.assigned, view.now)
               if p is not None and p.lon is not None and p.lat is not None]
    grids = [shapely.geometry.shape(f["geometry"]) for f in view.chain["features"]
             if f["id"] == inc.grid_code]
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(points + grids))
    pad = 0.002  # degrees (~200 m): a lone point still gets a street-level view
    return xmin - pad, ymin - pad, xmax + pad, ymax + pad


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh",
          settings: Settings | None = None) -> folium.Map:
    """The dispatch map of ``params.incident_id`` (see the module docstring)."""
    conf = settings or get_settings()
    labels = LABELS[lang]
    view = dispatch_view(session, params.incident_id, tz=conf.tz,
                         at=parse_at(params.at, conf.tz), nearest=params.nearest)
    if lang == "en":  # the incident row carries the Chinese name
        english = session.scalar(select(Category.name_en).where(
            Category.code == view.incident.category))
        view.incident = replace(view.incident, category_name=english or view.incident.category)
    m, _ = fitted_map(basemap, _bounds(view), zoom=15)
    _add_chain(m, view, basemap, labels, conf)
    _add_people(m, view, basemap, labels, lang)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    _panel(m, view, labels, conf, f"{TITLE[lang]} · #{view.incident.id}", lang)
    add_legend(m, labels["legend"], [
        ("#d63e2a", labels["incident"]), (GRID_FILL, labels["grid"]),
        (COMMUNITY_COLOUR, labels["community"]), (STREET_COLOUR, labels["street"]),
        (NEAR_COLOUR, labels["nearest"]), ("#38aadd", labels["assigned"])])
    return m
