"""Request bodies and answers of the grab-order patrol task endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.schemas.grids import Link
from geo.store.models import INT4_MAX

TASK_EXAMPLE: dict[str, Any] = {
    "title": "安泰街道夜巡 19:00-21:00",
    "route": "R-ANTAI-1",
    "window_start": "2024-05-01T19:00:00+08:00",
    "window_end": "2024-05-01T21:00:00+08:00",
}
AREA_EXAMPLE: dict[str, Any] = {
    "title": "三坊七巷 area sweep",
    "area": {"type": "Polygon", "coordinates": [[[119.290, 26.080], [119.296, 26.080],
                                                 [119.296, 26.085], [119.290, 26.085],
                                                 [119.290, 26.080]]]},
    "window_start": "2024-05-01T08:00:00+08:00",
    "window_end": "2024-05-01T10:00:00+08:00",
}


class TaskCreate(BaseModel):
    """A new task: a route, a grid or an area (exactly one), and a time window."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(description="What to do, shown to patrols (1-200 characters).")
    description: str | None = Field(None, max_length=4000)
    route: StrictInt | str | None = Field(None, description="Id or code of a patrol route: its "
                                    "line is copied into the task.")
    grid: str | None = Field(None, description="Code of a current grid: its polygon is the "
                             "task's area.")
    area: dict[str, Any] | None = Field(None, description="A GeoJSON Polygon or MultiPolygon, "
                                        "(lon, lat).")
    crs: str | None = Field(None, description="CRS of `area`: wgs84 (default), gcj02, bd09, "
                            "cgcs2000 or EPSG:<n>.")
    window_start: str = Field(description="ISO 8601; without an offset the time is local.")
    window_end: str = Field(description="ISO 8601, after window_start and after now.")
    attrs: dict[str, Any] = Field(default_factory=dict)


class ClaimBody(BaseModel):
    """Who claims: a patrol user claims as their linked worker (``worker_id`` may be left
    out); a dispatcher or admin claims for the worker named."""

    model_config = ConfigDict(extra="forbid")
    worker_id: StrictInt | None = Field(None, ge=1, le=INT4_MAX)


class CancelBody(BaseModel):
    """Why the task is cancelled; ``version`` (optional) must be the task's current one."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=1000)
    version: StrictInt | None = Field(None, ge=1, le=INT4_MAX)


class TaskCollection(BaseModel):
    """Tasks as a GeoJSON FeatureCollection, with paging links."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]
    numberMatched: int
    numberReturned: int
    links: list[Link] = Field(default_factory=list)
