"""``/maps/hexbins``: H3 hexagons coloured by their number of incidents, with a legend.

The same filters and bulk read as the heatmap; each H3 cell with incidents is
one hexagon, its class from mapclassify breaks (``scheme``, ``k``) of the cell
counts, a legend of the classes, and the count on hover.
"""

from __future__ import annotations

from typing import Any

import folium
import h3
from pydantic import Field
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.h3bins import MAX_RESOLUTION, MIN_RESOLUTION, CellBins, bin_points
from geo.settings import get_settings
from geo.store.map_grids import grid_outlines
from geo.store.map_incidents import incident_points
from maps.basemap import Basemap, shift_geojson
from maps.pages.classes import SCHEMES, Classes, Scheme, classify
from maps.pages.common import (
    LEVEL_NAMES,
    OutlineLevel,
    add_outlines,
    describe_filters,
    page_map,
)
from maps.pages.filters import IncidentParams
from maps.panel import BASE_CSS, add_legend, add_panel, rows_table

KIND = "hexbins"
#: Hexagons one page draws at most (about 340 bytes each, 7 MB); more get a 422 naming the
#: finest resolution that stays within it (resolution 12 over the demo year made 19 MB).
MAX_CELLS = 20_000
TITLE = {"zh": "事件六边形分布", "en": "Incidents per H3 hexagon"}
EXTRA_CSS = BASE_CSS
_TEXT = {
    "zh": {"layer": "H3 六边形", "incidents": "事件数", "cells": "H3 单元",
           "resolution": "H3 分辨率", "scheme": "分级", "cell": "单元",
           "quantiles": "分位数", "equal_interval": "等间距", "head_tail_breaks": "头尾分割"},
    "en": {"layer": "H3 hexagons", "incidents": "incidents", "cells": "H3 cells",
           "resolution": "H3 resolution", "scheme": "classes", "cell": "cell",
           "quantiles": "quantiles", "equal_interval": "equal intervals",
           "head_tail_breaks": "head/tail breaks"},
}


class Params(IncidentParams):
    """The shared incident filters, plus the hexagon size and the classes."""

    resolution: int = Field(9, ge=MIN_RESOLUTION, le=MAX_RESOLUTION,
                            description=f"an integer {MIN_RESOLUTION}-{MAX_RESOLUTION}: the H3 "
                            "resolution of the hexagons (9: edges of about 174 m)")
    scheme: Scheme = Field("quantiles", description=", ".join(SCHEMES))
    k: int = Field(5, ge=2, le=9, description="an integer 2-9: the number of classes")
    outline: OutlineLevel = Field("street", description="grid, community, street or none: "
                                  "the boundaries drawn over the hexagons")


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh"
          ) -> folium.Map:
    """The hexbin page of ``params`` on ``basemap``."""
    text = _TEXT[lang]
    flt = params.to_filter(session)
    points = incident_points(session, flt, timezone=get_settings().timezone)
    bins = bin_points(points.lon, points.lat, params.resolution)
    check_cells(bins, params.resolution)
    classes = classify(bins.count.tolist(), params.scheme, params.k)
    m = page_map(session, basemap, under=params.grid, bins=bins)
    tooltip = (folium.GeoJsonTooltip(fields=["count", "cell"],
                                     aliases=[text["incidents"], text["cell"]])
               if len(bins) else None)  # folium refuses a tooltip on an empty layer
    folium.GeoJson(
        shift_geojson(basemap, hexagons(bins, classes)), name=text["layer"],
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "fillOpacity": 0.75,
                                  "color": "#666", "weight": 0.5},
        highlight_function=lambda _: {"weight": 2, "color": "#000"}, tooltip=tooltip,
    ).add_to(m)
    if params.outline != "none":
        add_outlines(m, basemap, grid_outlines(session, level=params.outline, under=params.grid),
                     name=LEVEL_NAMES[lang][params.outline], lang=lang, interactive=False)
    folium.LayerControl(collapsed=False).add_to(m)
    add_legend(m, f"{text['incidents']} ({text[params.scheme]})",
               list(zip(classes.colours, classes.labels(integer=True), strict=True)))
    rows = [(text["incidents"], f"{len(points):,}"), (text["cells"], f"{len(bins):,}"),
            (text["resolution"], str(params.resolution)),
            (text["scheme"], f"{text[params.scheme]}, k={len(classes.bins)}" if len(bins)
             else "—")]
    add_panel(m, TITLE[lang], rows_table(rows) + describe_filters(session, params, flt, lang,
                                                           matched=len(points)))
    return m


def check_cells(bins: CellBins, resolution: int) -> None:
    """Refuse (:class:`InvalidInput` on ``resolution``) more than :data:`MAX_CELLS` hexagons,
    naming the finest coarser resolution that draws at most that many."""
    if len(bins) <= MAX_CELLS:
        return
    cells = bins.cell_ids()
    fits = next((r for r in range(resolution - 1, MIN_RESOLUTION - 1, -1)
                 if len({h3.cell_to_parent(c, r) for c in cells}) <= MAX_CELLS), None)
    narrower = "fewer incidents (grid, category, since/until)"
    raise InvalidInput(
        f"resolution {resolution} makes {len(bins):,} hexagons of these incidents; a page draws "
        f"at most {MAX_CELLS:,}", field="resolution", value=resolution,
        valid=(f"an integer {MIN_RESOLUTION}-{fits} for these incidents, or {narrower}"
               if fits is not None else narrower))


def hexagons(bins: CellBins, classes: Classes) -> dict[str, Any]:
    """The cells as a GeoJSON FeatureCollection (WGS-84) with ``count``, ``cell``, ``fill``."""
    features = []
    for i, (cell, count) in enumerate(zip(bins.cell_ids(), bins.count.tolist(), strict=True)):
        ring = [[round(lng, 6), round(lat, 6)] for lat, lng in h3.cell_to_boundary(cell)]
        features.append({"type": "Feature", "geometry": {"type": "Polygon",
                                                         "coordinates": [[*ring, ring[0]]]},
                         "properties": {"cell": cell, "count": int(count),
                                        "fill": classes.colour(i)}})
    return {"type": "FeatureCollection", "features": features}
