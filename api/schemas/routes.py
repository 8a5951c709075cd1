"""Request bodies and answers of the route endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.grids import Link
from geo.settings import MARGIN_MAX_M

ROUTE_EXAMPLE: dict[str, Any] = {
    "type": "Feature",
    "geometry": {"type": "LineString",
                 "coordinates": [[119.2950, 26.0800], [119.2965, 26.0812], [119.2980, 26.0805]]},
    "properties": {"code": "R-ANTAI-1", "name": "安泰街道夜巡", "team": "T350102001-PATROL",
                   "grid_codes": ["350102001000"],
                   "schedule": [{"days": [0, 1, 2, 3, 4], "start": "19:00", "end": "23:00"}]},
}


class RouteCollection(BaseModel):
    """Routes as a GeoJSON FeatureCollection, with paging links."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]
    numberMatched: int
    numberReturned: int
    links: list[Link] = Field(default_factory=list)


class StartPoint(BaseModel):
    """A start point, (lon, lat)."""

    model_config = ConfigDict(extra="forbid")
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)


class PlanRequest(BaseModel):
    """What to plan: a grid or a team (exactly one), a length budget, optionally a start."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"grid": "350102001001", "length_m": 3000},
        {"team": "T350102001-PATROL", "length_m": 5000,
         "start": {"lon": 119.2961, "lat": 26.0807}, "crs": "gcj02"}]})
    grid: str | None = Field(None, description="A current grid code.")
    team: str | int | None = Field(None, description="A team (code or id): plans in its grid.")
    # checked by check_budget, which names true (a float field would read it as 1.0)
    length_m: Any = Field(description="Length budget of the loop, metres.",
                          json_schema_extra={"type": "number"})
    start: StartPoint | None = Field(None, description="Start and end of the loop; default: "
                                                       "at the top hotspot.")
    crs: str | None = Field(None, description="CRS of start: wgs84 (default), gcj02, bd09, "
                                              "cgcs2000 or EPSG:<n>.")
    network: str | None = Field(None, description="Street network to plan on (default: the "
                                                  "one with most streets near the grid).")
    margin_m: float | None = Field(None, ge=0, le=MARGIN_MAX_M,
                                   description="Streets this far outside the grid may be used, "
                                   "0 to 10000 m (default plan_margin_m).")
