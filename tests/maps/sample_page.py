"""A small page used to test the page machinery (router, CLI, browser fixtures).

It draws the current grids of one level from the database, so it goes through
the same session, basemap shift and rendering as the real pages.
"""

from __future__ import annotations

import json
from typing import Literal

import folium
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import NotFound
from maps.basemap import Basemap, new_map, shift_geojson

KIND = "sample"
TITLE = {"zh": "测试页", "en": "Sample page"}


class Params(BaseModel):
    """The level to draw, and optionally one grid code that must exist."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["street", "community", "grid"] = Field(
        "street", description="street, community or grid")
    code: str | None = Field(None, description="a current grid code")
    limit: int = Field(50, ge=1, le=1000, description="an integer from 1 to 1000")


def build(session: Session, params: Params, basemap: Basemap, *, lang: str = "zh"
          ) -> folium.Map:
    """The grids of ``params.level`` as one GeoJSON layer."""
    rows = session.execute(text(
        "SELECT code, name, ST_AsGeoJSON(geom, 6) AS g FROM grid WHERE valid_to IS NULL "
        "AND level = :level AND (CAST(:code AS text) IS NULL OR code = :code) "
        "ORDER BY code LIMIT :limit"), {"level": params.level, "code": params.code,
                                       "limit": params.limit}).all()
    if params.code is not None and not rows:
        raise NotFound(f"no current grid {params.code!r}", field="code", value=params.code,
                       valid="a current grid code")
    features = [{"type": "Feature", "properties": {"code": r.code, "name": r.name},
                 "geometry": json.loads(r.g)} for r in rows]
    m = new_map(basemap=basemap, center=(119.29, 26.08), zoom=13)
    collection = shift_geojson(basemap, {"type": "FeatureCollection", "features": features})
    folium.GeoJson(collection, name=TITLE[lang]).add_to(m)
    return m
