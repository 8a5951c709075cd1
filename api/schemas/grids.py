"""GeoJSON answers of the grid endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from geo.store.grid_queries import GridRow


class Link(BaseModel):
    """A link to a related page (``rel`` is ``self``, ``next`` or ``prev``)."""

    rel: str
    href: str
    type: str = "application/geo+json"


class GridProperties(BaseModel):
    """The properties of a grid feature."""

    code: str
    name: str
    level: str
    parent: str | None = Field(description="Code of the parent grid.")
    depth: int = Field(description="0 district, 1 street, 2 community, 3 grid, ...")
    population: int | None
    households: int | None
    version: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None = Field(description="null for the current version.")
    attrs: dict[str, Any] = Field(default_factory=dict)


class GridFeature(BaseModel):
    """A grid as a GeoJSON Feature (``id`` is the code; coordinates are lon, lat WGS-84)."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: GridProperties

    @classmethod
    def of(cls, row: GridRow) -> GridFeature:
        """The feature of a stored grid version."""
        return cls(id=row.code, geometry=row.geometry, properties=GridProperties(
            code=row.code, name=row.name, level=row.level, parent=row.parent_code,
            depth=row.depth, population=row.population, households=row.households,
            version=row.version, valid_from=row.valid_from, valid_to=row.valid_to,
            attrs=row.attrs))


class GridCollection(BaseModel):
    """A GeoJSON FeatureCollection of grids, with paging links."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[GridFeature]
    numberMatched: int | None = Field(None, description="How many grids match in all.")
    numberReturned: int
    links: list[Link] = Field(default_factory=list)
