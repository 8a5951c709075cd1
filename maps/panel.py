"""HTML pieces the coverage, routes and dispatch pages put over their maps.

An info panel (title, key figures, tables) and a legend, both fixed boxes added
to the page's HTML (escaped here), plus the colour ramp of shares and a few
formatting helpers. Nothing is fetched from the database here.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Sequence

import folium
import numpy as np
from branca.element import MacroElement, Template

from maps.basemap import Basemap, new_map, shift_lonlat

#: The class of the panel box (the print stylesheet of the routes page moves it).
PANEL_CLASS = "pg-panel"
#: Widest the panel gets (its tables need about 420 px: a dispatch page's people with their
#: phones, the planner's before/after figures); maps are fitted to the space beside it.
PANEL_WIDTH_PX = 420
#: Shares from 0 (pale) to 1 (dark green), ColorBrewer "Greens": readable in grey too, and
#: leaves red for what needs attention.
RAMP = ((0.0, (247, 252, 245)), (0.25, (199, 233, 192)), (0.5, (116, 196, 118)),
        (0.75, (35, 139, 69)), (1.0, (0, 68, 27)))

BASE_CSS = f"""
.{PANEL_CLASS}{{position:fixed;top:10px;left:54px;z-index:1000;
  max-width:min({PANEL_WIDTH_PX}px,calc(100vw - 70px));
  max-height:calc(100% - 40px);overflow:auto;background:rgba(255,255,255,.95);padding:8px 10px;
  border-radius:6px;box-shadow:0 1px 5px rgba(0,0,0,.4);
  font:12px/1.3 'Noto Sans CJK SC','Noto Sans SC',sans-serif}}
.{PANEL_CLASS} h1{{font-size:16px;margin:0 0 4px}}
.{PANEL_CLASS} h2{{font-size:13px;margin:8px 0 2px}}
.{PANEL_CLASS} table{{border-collapse:collapse;width:100%}}
.{PANEL_CLASS} td,.{PANEL_CLASS} th{{border-bottom:1px solid #ddd;padding:1px 4px;
  text-align:left;vertical-align:top}}
.{PANEL_CLASS} th{{white-space:nowrap}}
.{PANEL_CLASS} .num{{text-align:right;white-space:nowrap}}
.{PANEL_CLASS} .note{{color:#555;font-size:12px}}
.{PANEL_CLASS} .pg-empty{{color:#a50f15;font-weight:bold;margin:4px 0}}
.pg-legend{{position:fixed;bottom:24px;right:10px;z-index:1000;background:rgba(255,255,255,.95);
  padding:6px 8px;border-radius:6px;box-shadow:0 1px 5px rgba(0,0,0,.4);
  font:12px/1.4 'Noto Sans CJK SC','Noto Sans SC',sans-serif}}
.pg-legend i{{display:inline-block;width:14px;height:10px;margin-right:5px;
  border:1px solid #555;vertical-align:middle}}
"""


#: Incident statuses and weekdays as the pages show them.
STATUS_NAMES = {
    "zh": {"registered": "已登记", "dispatched": "已派遣", "accepted": "已受理",
           "in_progress": "处置中", "disposed": "已处置", "verified": "已核查", "closed": "已结案",
           "rejected": "不予受理", "duplicate": "重复", "open": "未办结"},
    "en": {"in_progress": "in progress"},
}
WEEKDAYS = {"zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
            "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


def status_name(status: str, lang: str) -> str:
    """An incident status in ``lang`` (the code itself when there is no name)."""
    return STATUS_NAMES.get(lang, {}).get(status, status)


#: Worker roles as the pages show them.
ROLE_NAMES = {
    "zh": {"grid_worker": "网格员", "patrol": "巡逻队员", "volunteer": "志愿者",
           "dispatcher": "调度员", "manager": "管理员"},
    "en": {"grid_worker": "grid worker"},
}


def role_name(role: str, lang: str) -> str:
    """A worker role in ``lang`` (the code itself when there is no name)."""
    return ROLE_NAMES.get(lang, {}).get(role, role)


#: The reasons the worker rules give (``geo.assign``, ``geo.incidents.responsible``), in
#: Chinese; a reason that matches none is shown as it is.
_REASONS_ZH = [(re.compile(pattern), template) for pattern, template in (
    (r"no worker has a duty on grid (?P<g>\S+)", "网格 {g} 无人承担职责"),
    (r"no worker has a duty on this grid", "本网格无人承担职责"),
    (r"every worker with a duty on grid (?P<g>\S+) is inactive", "网格 {g} 的人员均已停用"),
    (r"every worker with a duty on this grid is inactive", "本网格的人员均已停用"),
    (r"no primary or backup of grid (?P<g>\S+) is on shift for this category",
     "网格 {g} 的A/B角不在班或不负责此类别"),
    (r"no primary or backup of this grid is on shift at this time", "本网格的A/B角此时均不在班"),
    (r"no active duty on this grid serves category '(?P<c>[^']*)'", "本网格无人负责类别 {c}"),
    (r"no active duty on this grid serves requests without a category",
     "本网格无人负责未分类的事件"),
    (r"no manager of community (?P<g>\S+) is on shift", "社区 {g} 的管理员不在班"),
    (r"no worker of street (?P<g>\S+) with a known position is on duty",
     "街道 {g} 没有位置已知的在岗人员"),
    (r"the incident is outside every grid", "事件不在任何网格内"),
)]


def reason_text(reason: str, lang: str) -> str:
    """A worker rule's reason (parts joined by ``; ``) in ``lang``."""
    if lang != "zh":
        return reason
    parts = []
    for part in reason.split("; "):
        for pattern, template in _REASONS_ZH:
            if (match := pattern.fullmatch(part)) is not None:
                part = template.format(**match.groupdict())
                break
        parts.append(part)
    return "；".join(parts)


def esc(value: object) -> str:
    """``value`` as escaped HTML text (None as an em dash)."""
    return "—" if value is None else html.escape(str(value))


_TEMPLATE_CHARS = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;"})


def in_template(markup: str) -> str:
    """Escaped HTML ``markup`` made safe inside a JavaScript template literal, where folium
    writes a ``Tooltip``'s or ``Popup``'s text: a backtick, ``${`` or a backslash in users'
    text (a worker named ``${…}``) would otherwise end the literal or run as code. As
    character references they show the same."""
    return markup.translate(_TEMPLATE_CHARS)


def share_colour(share: float | None) -> str:
    """The ramp colour of a share in [0, 1] (grey for None)."""
    if share is None:
        return "#bdbdbd"
    s = min(max(float(share), 0.0), 1.0)
    for (a, ca), (b, cb) in itertools.pairwise(RAMP):
        if s <= b:
            f = (s - a) / (b - a)
            r, g, bl = (round(x + (y - x) * f) for x, y in zip(ca, cb, strict=True))
            return f"#{r:02x}{g:02x}{bl:02x}"
    return "#00441b"


def percent(share: float | None) -> str:
    """``0.4567`` as ``45.7 %`` (None as an em dash)."""
    return "—" if share is None else f"{100 * share:.1f} %"


def metres(value: float | None) -> str:
    """A distance as ``850 m`` or ``1.35 km``."""
    if value is None:
        return "—"
    return f"{value:,.0f} m" if value < 1000 else f"{value / 1000:,.2f} km"


def rows_table(rows: Sequence[tuple[str, str]]) -> str:
    """Label/value rows as a two-column table (values are HTML, labels are escaped)."""
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows) \
        + "</table>"


def grid_table(head: Sequence[str], body: Sequence[Sequence[str]], *,
               numeric: Sequence[int] = ()) -> str:
    """A table with a header row (escaped) and cells (HTML); ``numeric`` columns right-aligned."""
    def cell(k: int, v: str, tag: str) -> str:
        cls = ' class="num"' if k in numeric else ""
        return f"<{tag}{cls}>{v}</{tag}>"
    out = "<table><tr>" + "".join(cell(k, esc(h), "th") for k, h in enumerate(head)) + "</tr>"
    for row in body:
        out += "<tr>" + "".join(cell(k, v, "td") for k, v in enumerate(row)) + "</tr>"
    return out + "</table>"


def centre(bounds: tuple[float, float, float, float]) -> tuple[float, float]:
    """The (lon, lat) middle of a box."""
    return (bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0


def fitted_map(basemap: Basemap, bounds: tuple[float, float, float, float] | None, *,
               zoom: int = 14) -> tuple[folium.Map, list[list[float]] | None]:
    """A map on ``basemap`` fitted to WGS-84 ``bounds`` beside the panel (see :func:`fit`).

    Without bounds (nothing to show) the map keeps folium's world view.
    """
    m = new_map(basemap=basemap, center=centre(bounds) if bounds else None, zoom=zoom)
    return m, fit(m, basemap, bounds) if bounds else None


def fit(m: folium.Map, basemap: Basemap, bounds: tuple[float, float, float, float]
        ) -> list[list[float]]:
    """Fit the map to WGS-84 ``bounds`` (shifted for the basemap), leaving room for the panel.

    Returns the fitted ``[[south, west], [north, east]]`` in the basemap's coordinates.
    """
    xs, ys = shift_lonlat(basemap, np.array([bounds[0], bounds[2]]),
                          np.array([bounds[1], bounds[3]]))
    fitted = [[float(ys[0]), float(xs[0])], [float(ys[1]), float(xs[1])]]
    m.fit_bounds(fitted, padding_top_left=(PANEL_WIDTH_PX + 20, 10),
                 padding_bottom_right=(10, 10))
    return fitted


class _Bounds(MacroElement):
    """``<map>.pgBounds = [[s, w], [n, e]]``: the extent a script can fit the map to again."""

    _template = Template("{% macro script(this, kwargs) %}"
                         "{{ this._parent.get_name() }}.pgBounds = {{ this.bounds }};"
                         "{% endmacro %}")

    def __init__(self, bounds: list[list[float]]) -> None:
        super().__init__()
        self._name = "PgBounds"
        self.bounds = json.dumps(bounds)


def remember_bounds(m: folium.Map, bounds: list[list[float]]) -> None:
    """Keep ``bounds`` on the Leaflet map as ``pgBounds`` (the routes page refits on print)."""
    m.add_child(_Bounds(bounds))


def add_panel(m: folium.Map, title: str, body: str) -> None:
    """Put the info panel (``title`` escaped, ``body`` HTML) over the map."""
    m.get_root().html.add_child(folium.Element(  # type: ignore[attr-defined]
        f'<div class="{PANEL_CLASS}" id="pg-panel"><h1>{esc(title)}</h1>{body}</div>'))


def add_legend(m: folium.Map, title: str, items: Sequence[tuple[str, str]]) -> None:
    """A legend box: ``items`` are (CSS colour, label) pairs."""
    lines = "".join(f'<div><i style="background:{esc(colour)}"></i>{esc(label)}</div>'
                    for colour, label in items)
    m.get_root().html.add_child(folium.Element(  # type: ignore[attr-defined]
        f'<div class="pg-legend" id="pg-legend"><b>{esc(title)}</b>{lines}</div>'))
