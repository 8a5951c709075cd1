"""``/maps/grids``: a choropleth of one grid KPI, and every figure of a grid on click.

For the current grids of ``level`` (below ``grid`` when given): incidents
reported in the window (of the categories asked for), open now, overdue now,
closed, the resolution rate and the average time to close
(``geo.store.map_grids``). ``metric`` picks the figure that colours the map,
classed by mapclassify (``scheme``, ``k``); grids with no figure are grey. A click
shows the grid's name, code, responsible workers (A角 primary, B角 backup) and
figures, in Chinese or (``lang=en``) English.
"""

from __future__ import annotations

import html
from typing import Any, Literal

import folium
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.store.grids import LEVEL_DEPTH
from geo.store.map_grids import GridFigures, grid_figures, grid_outlines
from geo.store.models import Grid
from maps.basemap import Basemap, shift_geojson
from maps.pages.classes import SCHEMES, Scheme, classify
from maps.pages.common import describe_filters, page_map
from maps.pages.filters import IncidentParams
from maps.panel import BASE_CSS, add_legend, add_panel, rows_table

KIND = "grids"
TITLE = {"zh": "网格事件指标", "en": "Grid incident figures"}
EXTRA_CSS = BASE_CSS
Metric = Literal["reported", "open", "overdue", "resolution_rate", "avg_close_h"]
METRICS: tuple[str, ...] = ("reported", "open", "overdue", "resolution_rate", "avg_close_h")
LABELS = {
    "zh": {"name": "名称", "code": "编码", "responsible": "责任人", "reported": "事件数",
           "open": "未办结", "overdue": "超期", "closed": "已办结", "resolution_rate": "办结率",
           "avg_close_h": "平均办结时长（小时）", "primary": "A角", "backup": "B角",
           "grids": "网格数", "metric": "指标", "nobody": "无"},
    "en": {"name": "name", "code": "code", "responsible": "responsible",
           "reported": "reported", "open": "open", "overdue": "overdue", "closed": "closed",
           "resolution_rate": "resolution rate", "avg_close_h": "average time to close (h)",
           "primary": "primary", "backup": "backup", "grids": "grids", "metric": "figure",
           "nobody": "none"},
}
POPUP_FIELDS = ("name", "code", "responsible", "reported", "open", "overdue", "closed",
                "resolution_rate", "avg_close_h")


class Params(IncidentParams):
    """The shared filters but ``status`` (the figures count every status), plus the figure."""

    status: None = Field(None, description="not a filter of this page: its figures count "
                         "incidents of every status (leave it out)")
    level: Literal["grid", "community", "street"] = Field(
        "grid", description="grid, community or street: the areas coloured")
    metric: Metric = Field("overdue", description=", ".join(METRICS))
    scheme: Scheme = Field("quantiles", description=", ".join(SCHEMES))
    k: int = Field(5, ge=2, le=9, description="an integer 2-9: the number of classes")


LEVELS = ("grid", "community", "street")


def _areas(session: Session, params: Params) -> list[dict[str, Any]]:
    """The areas coloured: the grids of ``level`` below ``grid``, or ``grid`` itself when it
    is of that level (a grid of the finest level with the default). InvalidInput naming
    ``level`` when it is above ``grid`` (the streets of a community: none, which read as
    "no incident matches")."""
    under = params.grid
    if under is None:
        return grid_outlines(session, level=params.level)
    row = session.execute(select(Grid.depth, Grid.level).where(
        Grid.code == under, Grid.valid_to.is_(None)).limit(1)).first()
    if row is not None and LEVEL_DEPTH[params.level] == row.depth:  # the grid itself
        return grid_outlines(session, level=row.level, under=under)
    if row is not None and LEVEL_DEPTH[params.level] < row.depth:
        finer = [name for name, d in LEVEL_DEPTH.items() if d >= row.depth and name in LEVELS]
        raise InvalidInput(f"level {params.level!r} is above grid {under!r}",
                           field="level", value=params.level, valid=", ".join(finer))
    return grid_outlines(session, level=params.level, under=under)


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh"
          ) -> folium.Map:
    """The grid KPI page of ``params`` on ``basemap``."""
    text = LABELS[lang]
    flt = params.to_filter(session)
    assert flt.reported_from is not None and flt.reported_to is not None
    features = _areas(session, params)
    figures = grid_figures(session, [f["properties"]["code"] for f in features],
                           since=flt.reported_from, until=flt.reported_to,
                           categories=flt.categories)
    values = [metric_value(figures[f["properties"]["code"]], params.metric) for f in features]
    classes = classify(values, params.scheme, params.k,
                       reverse=params.metric == "resolution_rate")
    for i, feature in enumerate(features):
        props = feature["properties"]
        props.update(popup_values(figures[props["code"]], str(props["name"]), lang))
        props["fill"] = classes.colour(i)
    m = page_map(session, basemap, under=params.grid)
    folium.GeoJson(
        shift_geojson(basemap, {"type": "FeatureCollection", "features": features}),
        name=text[params.metric],
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "fillOpacity": 0.7,
                                  "color": "#333", "weight": 0.8},
        highlight_function=lambda _: {"weight": 3, "color": "#000"},
        **(_hover_and_click(params.metric, text) if features else {}),
    ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    rate = params.metric == "resolution_rate"
    add_legend(m, text[params.metric], list(zip(
        classes.colours, classes.labels("{:.0%}" if rate else "{:,.1f}" if
                                        params.metric == "avg_close_h" else "{:,.0f}",
                                        integer=params.metric in ("reported", "open", "overdue")),
        strict=True)))
    reported = sum(f.reported for f in figures.values())
    rows = [(text["grids"], f"{len(features):,}"), (text["metric"], html.escape(
        text[params.metric])), (text["reported"], f"{reported:,}"),
        (text["overdue"], f"{sum(f.overdue for f in figures.values()):,}")]
    add_panel(m, TITLE[lang], rows_table(rows) + describe_filters(session, params, flt, lang,
                                                           matched=reported))
    return m


def _hover_and_click(metric: str, text: dict[str, str]) -> dict[str, Any]:
    """The tooltip (name, the figure shown) and the popup (every figure) of the grids."""
    return {"tooltip": folium.GeoJsonTooltip(fields=["name", metric],
                                             aliases=[text["name"], text[metric]]),
            "popup": folium.GeoJsonPopup(fields=list(POPUP_FIELDS),
                                         aliases=[text[f] for f in POPUP_FIELDS],
                                         max_width=360)}


def metric_value(fig: GridFigures, metric: str) -> float | None:
    """The figure ``metric`` of a grid (None when it has none, e.g. no closed incident)."""
    if metric == "resolution_rate":
        return fig.resolution_rate
    if metric == "avg_close_h":
        return fig.avg_close_h
    return float(getattr(fig, metric))


def popup_values(fig: GridFigures, name: str, lang: str) -> dict[str, Any]:
    """The popup's values of a grid, as escaped display strings."""
    text = LABELS[lang]
    people = ", ".join(f"{html.escape(p['name'])} ({text[p['kind']]})" for p in fig.responsible)
    rate = fig.resolution_rate
    return {"name": html.escape(name), "responsible": people or text["nobody"],
            "reported": fig.reported, "open": fig.open, "overdue": fig.overdue,
            "closed": fig.closed,
            "resolution_rate": "—" if rate is None else f"{rate:.1%}",
            "avg_close_h": "—" if fig.avg_close_h is None else f"{fig.avg_close_h:,.1f}"}
