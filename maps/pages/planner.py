"""``/maps/planner?parent=CODE[&plan=ID]``: redraw the grids of a parent on the map.

The current children of ``parent`` (and its outline), Leaflet.draw tools to
redraw a grid (polygon), split it (line), merge grids (click several), create
and retire grids, each tool sending one edit to ``POST /api/v1/plans/{id}/edits``
(the plan is created at the first edit, or continued with ``plan=``). After
every edit the page draws the plan's result (changed grids orange, new ones
blue), the validation problems in red with their messages, and the impact
preview from ``GET /api/v1/plans/{id}/impact`` beside the map (per grid
before/after, the parent's CV); **Apply** posts ``/apply`` and redraws the new
versions from ``GET /api/v1/grids``. All of it is the API's own answers; the
page holds no rule of its own. Planner and admin only.

The page calls the API with the token it was opened with (``?access_token=``,
kept in the tab's sessionStorage), else with the sign-in cookie of ``/maps/login``
(sent with the ``X-Patrolgrid-Page`` header, see :mod:`api.auth`); only when the
API refuses both does it ask for a token. It draws in WGS-84, so GCJ-02 basemaps (Amap) are refused.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import folium
from branca.element import MacroElement, Template
from folium.elements import JSCSSMixin
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import mapping
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound
from geo.plans.validate import geojson
from geo.settings import get_settings
from geo.store import plans as plan_store
from geo.store.models import INT4_MAX
from maps.basemap import Basemap
from maps.panel import BASE_CSS, add_panel, esc, fitted_map

KIND = "planner"
#: Its tools post edits to the API: a standalone file (``maps render``) could not.
NEEDS_SERVER = True
SERVER_PATH = "/maps/planner?parent=CODE"
TITLE = {"zh": "网格规划", "en": "Grid planner"}
ROLES = ("planner",)
DRAW_JS = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.js"
DRAW_CSS = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.css"
EXTRA_CSS = BASE_CSS + """
.pg-panel{max-width:380px}
.pg-tools button{margin:2px 2px 2px 0;font-size:12px}
.pg-tools input{width:8em;font-size:12px}
#pg-status{margin:4px 0;color:#084594}
#pg-problems li{color:#b00}
.pg-selected{stroke-width:4}
"""

LABELS = {
    "zh": {"tools": "工具", "replace": "重画", "split": "切分", "merge": "合并",
           "create": "新建", "retire": "撤销", "apply": "应用方案", "new_code": "新编码",
           "plan": "方案", "problems": "校验问题", "impact": "影响预估", "grid": "网格",
           "before": "前", "after": "后", "incidents": "事件", "area": "面积(km²)",
           "households": "户数", "cv": "工作量变异系数", "hint": "点击网格选中（可多选）；"
           "重画/新建画多边形，切分画一条穿过网格的线", "token": "API 令牌",
           "kinds": {"invalid_geometry": "几何无效", "overlap": "重叠", "gap": "新缝隙",
                     "existing_gap": "原有缝隙", "outside_parent": "超出上级",
                     "orphans": "下级无归属", "child_outside": "下级超出上级",
                     "not_contiguous": "不连续"},
           "one_grid": "请只选中一个网格", "two_grids": "请选中两个或更多网格",
           "applied": "已应用", "roster": "人员待确认", "open_moved": "件未结事件换网格",
           "states": {"created": "新建", "changed": "变更", "unchanged": "未变",
                      "retired": "撤销", "draft": "草稿",
                      "applied": "已应用"}},
    "en": {"tools": "Tools", "replace": "Redraw", "split": "Split", "merge": "Merge",
           "create": "Create", "retire": "Retire", "apply": "Apply plan",
           "new_code": "new code", "plan": "Plan", "problems": "Validation",
           "impact": "Impact preview", "grid": "Grid", "before": "before", "after": "after",
           "incidents": "incidents", "area": "area (km²)", "households": "households",
           "cv": "CV of workload", "hint": "Click grids to select (several for merge); "
           "redraw/create draw a polygon, split draws a line across the grid",
           "token": "API token", "kinds": {},
           "one_grid": "select exactly one grid", "two_grids": "select two or more grids",
           "applied": "applied", "roster": "roster to confirm", "open_moved": "open moved",
           "states": {}},
}


class Params(BaseModel):
    """The parent whose children are redrawn, and optionally a draft plan to continue."""

    model_config = ConfigDict(extra="forbid")

    parent: str = Field(..., min_length=1, max_length=64,
                        description="the code of a current community or street with grids")
    plan: int | None = Field(None, ge=1, le=INT4_MAX,
                     description="the id of a plan to continue (optional; a whole "
                                 "number from 1 to 2147483647)")


class _Planner(JSCSSMixin, MacroElement):
    """Leaflet.draw and the planner's script, bound to the map."""

    default_js = [("leaflet_draw_js", DRAW_JS)]  # noqa: RUF012 (folium's own attribute)
    default_css = [("leaflet_draw_css", DRAW_CSS)]  # noqa: RUF012
    _template = Template("""
        {% macro script(this, kwargs) %}
        window.planner = patrolgridPlanner({{ this._parent.get_name() }}, {{ this.config }});
        {% endmacro %}""")

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "Planner"
        self.config = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")


def _script() -> str:
    return resources.files("maps.pages").joinpath("planner.js").read_text("utf-8")


def build(session: Session, params: Params, basemap: Basemap, *,
          lang: str = "zh") -> folium.Map:
    """The planner page for ``params.parent``."""
    if basemap.is_gcj02:
        raise InvalidInput(f"the planner draws in WGS-84 and cannot use the {basemap.kind} "
                           "basemap (GCJ-02)", field="basemap", value=basemap.kind,
                           valid="none, osm, custom or tianditu")
    parent = plan_store.current_grid(session, params.parent)
    children = plan_store.current_children(session, params.parent)
    if not children:
        raise InvalidInput(f"grid {params.parent!r} has no children to redraw", field="parent",
                           value=params.parent, valid="a community or street with grids")
    if params.plan is not None:
        try:
            plan = plan_store.get_plan(session, params.plan)
        except NotFound as exc:  # name the page's parameter, not the table's column
            raise NotFound(exc.message, field="plan", value=params.plan,
                           valid=exc.valid) from None
        if plan.parent_code != params.parent:
            raise InvalidInput(f"plan {plan.id} redraws {plan.parent_code}, not "
                               f"{params.parent}", field="plan", value=params.plan,
                               valid=f"a plan of {params.parent}")
    labels = LABELS[lang]
    minx, miny, maxx, maxy = (float(v) for v in parent.geom.bounds)
    m, _ = fitted_map(basemap, (minx, miny, maxx, maxy), zoom=15)
    grids = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": d.code, "geometry": geojson(d.geom),
         "properties": {"code": d.code, "name": d.name, "version": d.version}}
        for d in children]}
    config = {"parent": parent.code, "plan": params.plan, "api": "/api/v1", "labels": labels,
              "outline": dict(mapping(parent.geom)), "grids": grids,
              "timezone": get_settings().timezone}  # times shown in local time, as elsewhere
    m.get_root().header.add_child(folium.Element(  # type: ignore[attr-defined]
        f"<script>{_script()}</script>"))
    _Planner(config).add_to(m)
    tools = "".join(f'<button type="button" id="pg-tool-{op}" data-op="{op}">{esc(labels[op])}'
                    "</button>" for op in ("replace", "split", "merge", "create", "retire"))
    body = (f'<div class="note">{esc(parent.name)} · {esc(parent.code)} · '
            f'{len(children)} {esc(labels["grid"])}</div>'
            f'<div class="note">{esc(labels["hint"])}</div>'
            f'<div class="pg-tools"><b>{esc(labels["tools"])}</b><br>{tools}<br>'
            f'{esc(labels["new_code"])} <input id="pg-new-code" value=""></div>'
            f'<div id="pg-status"></div>'
            f'<h2>{esc(labels["problems"])}</h2><ul id="pg-problems"></ul>'
            f'<h2>{esc(labels["impact"])}</h2><div id="pg-impact"></div>'
            f'<p><button type="button" id="pg-apply" disabled>{esc(labels["apply"])}</button></p>')
    add_panel(m, TITLE[lang], body)
    return m
