"""Bodies and answers of the track endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from api.schemas.grids import Link
from geo.settings import GAP_LIMIT_MAX_S, SPEED_LIMIT_MAX_MPS
from geo.store.models import INT4_MAX


class TrackPointIn(BaseModel):
    """One GPS fix: (lon, lat) in the upload's crs and a time with a time zone."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is refused, not dropped

    # strict: JSON true is not the number 1 (pydantic would turn it into 1.0)
    lon: StrictFloat | StrictInt | StrictStr = Field(
        description="Longitude (or easting for a projected crs).", examples=[119.2965])
    lat: StrictFloat | StrictInt | StrictStr = Field(
        description="Latitude (or northing for a projected crs).", examples=[26.0817])
    t: StrictStr | StrictFloat | StrictInt = Field(
        description="ISO 8601 with a time zone, or seconds since 1970-01-01 UTC.",
        examples=["2024-05-01T08:30:05+08:00"])


class TrackUpload(BaseModel):
    """A batch of one worker's fixes, in any order."""

    model_config = ConfigDict(extra="forbid")  # "dryrun": true stored the fixes

    worker_id: StrictInt = Field(ge=1, le=INT4_MAX, description="The worker (GET /api/v1/workers).")
    points: list[TrackPointIn] = Field(description="The fixes; checked one by one, the first "
                                                   "bad one refuses the upload.")
    crs: str | None = Field(None, description="wgs84 (default), gcj02, bd09, cgcs2000 or "
                                              "EPSG:<n>.")
    max_speed_mps: float | None = Field(None, gt=0, le=SPEED_LIMIT_MAX_MPS,
                                        description="Speed limit of this upload (m/s); default "
                                        "PATROLGRID_TRACK_MAX_SPEED_MPS.")
    max_gap_s: float | None = Field(None, gt=0, le=GAP_LIMIT_MAX_S,
                                    description="Gap (s) that splits segments, at most a day; "
                                    "default PATROLGRID_TRACK_MAX_GAP_S.")
    dry_run: bool = Field(False, description="Clean and report without storing.")


class TrackCollection(BaseModel):
    """Track lines as a GeoJSON FeatureCollection (one feature per line, lon/lat WGS-84)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]
    numberMatched: int
    numberReturned: int
    window: dict[str, str] = Field(description="The window [from, to) used.")
    links: list[Link] = Field(default_factory=list)
