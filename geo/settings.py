"""Configuration, read from the environment (and a ``.env`` file) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: The ceilings of limits that an upload, a request or these settings may set (one place:
#: the settings, the API models, the CLI options and the domain checks read them here).
#: A speed limit (m/s) and a segment gap (s) beyond them would clean and split nothing.
SPEED_LIMIT_MAX_MPS = 1000.0
GAP_LIMIT_MAX_S = 86_400.0
#: A topology tolerance (m²) beyond a hectare hides real overlaps, not digitising slivers.
TOLERANCE_MAX_M2 = 10_000.0
#: The widest margin (m) around a grid whose streets a route plan may use.
MARGIN_MAX_M = 10_000.0

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/patrolgrid"
#: The basemaps of the map pages (``maps.basemap.KINDS``; kept here so that the settings
#: need no map code).
BASEMAPS = ("none", "osm", "custom", "amap", "tianditu")


class Settings(BaseSettings):
    """Every knob of patrolgrid; environment variables are prefixed ``PATROLGRID_``.

    ``DATABASE_URL`` is also read without the prefix, as most tools expect.
    """

    model_config = SettingsConfigDict(env_prefix="PATROLGRID_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "PATROLGRID_DATABASE_URL"),
        description="SQLAlchemy URL of the PostGIS database (psycopg 3 driver).",
    )
    timezone: str = Field("Asia/Shanghai", description="Local time zone of shifts and reports.")
    host: str = Field("127.0.0.1", description="Address `patrolgrid serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `patrolgrid serve` binds to.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    page_limit: int = Field(
        100, ge=1, le=100_000, description="Default page size of list endpoints.")
    max_page_limit: int = Field(
        1000, ge=1, le=100_000, description="Largest page size a client may ask.")
    topology_tolerance_m2: float = Field(
        1.0, ge=0, le=TOLERANCE_MAX_M2, description="Overlaps, gaps and spills smaller than "
        "this (m², at most a hectare) are ignored."
    )
    max_upload_mb: int = Field(
        200, ge=1, le=100_000, description="Largest accepted upload, in MiB.")
    snap_tolerance_m: float = Field(
        30.0, ge=0, le=10_000,
        description="An incident outside every grid within this distance (m) "
        "goes to the nearest grid; beyond it stays unassigned.")
    duplicate_radius_m: float = Field(
        50.0, ge=0, le=10_000,
        description="A new incident this close (m) to an open one of the same "
        "category is linked to it as a duplicate candidate.")
    duplicate_window_h: float = Field(
        2.0, ge=0, le=8760, description="... and reported within this many hours of it.")
    escalation_interval_s: float = Field(
        300.0, ge=0, le=604_800, description="How often the server escalates overdue incidents "
        "(0 turns the in-server job off; `patrolgrid escalate` still works).")

    # --- patrol routes and route planning (issue 4, T2) ---
    route_tolerance_m: float = Field(
        20.0, ge=0, le=10_000,
        description="A route may stray this far (m) outside the grids it claims.")
    hotspot_resolution: int = Field(
        10, ge=7, le=12, description="H3 resolution of incident hotspot cells (10: ~66 m edge).")
    hotspot_top: int = Field(
        20, ge=1, le=200, description="Hotspots are this many cells with the most incidents.")
    hotspot_lookback_days: float = Field(
        90.0, gt=0, le=3660, description="Incidents reported this many days back make hotspots.")
    hotspot_reach_m: float = Field(
        25.0, ge=0, le=1000,
        description="A patrol passing this close (m) to a hotspot cell visits it.")
    plan_margin_m: float = Field(
        200.0, ge=0, le=MARGIN_MAX_M, description="Route planning may use streets this far (m) "
        "outside the grid.")
    plan_snap_m: float = Field(
        300.0, gt=0, le=10_000,
        description="A start point farther than this (m) from the network is refused.")
    plan_max_length_m: float = Field(
        50_000.0, gt=0, le=1_000_000, description="Largest length budget (m) of a planned route.")

    # --- Open311 GeoReport v2 (issue 3, I5) ---
    open311_public_read: bool = Field(
        False, description="true lets Open311 GETs (services, requests) go without an api_key, "
        "as GeoReport allows; by default every endpoint but /healthz needs a token.")

    # --- incident intake (issue 3, I2) ---
    auto_dispatch: bool = Field(
        True, description="An incident for which the intake finds a responsible worker is "
        "dispatched to them at once (status dispatched, with its event); false leaves every "
        "new incident registered for a dispatcher.")

    # --- GPS tracks (issue 4, T1) ---
    track_max_speed_mps: float = Field(
        3.0, gt=0, le=SPEED_LIMIT_MAX_MPS, description="Legs faster than this (m/s, walking "
        "patrols) are speed spikes or jumps when cleaning tracks; an upload may set its own limit.")
    track_max_gap_s: float = Field(
        120.0, gt=0, le=GAP_LIMIT_MAX_S, description="A pause longer than this (s, at most a day) "
        "between fixes splits a track into segments.")
    track_jitter_m: float = Field(
        10.0, ge=0, le=1000,
        description="GPS noise (m) allowed on every leg before it counts as fast.")
    track_max_burst: int = Field(
        3, ge=1, le=50, description="A run of at most this many fixes that jumps out and back "
        "is dropped as a spike.")
    track_max_points: int = Field(
        200_000, ge=1, le=10_000_000, description="Most points accepted in one track upload.")
    track_clock_skew_s: float = Field(
        600.0, ge=0, le=86_400,
        description="Fixes later than now plus this (s) are refused (device clock).")
    track_max_window_days: float = Field(
        31.0, gt=0, le=3660, description="Longest time window (days) of a track query.")

    # --- grab-order patrol tasks (issue 4, C2) ---
    task_coverage_m: float = Field(
        25.0, ge=0, le=1000,
        description="A task's route counts as walked, and its area as covered, "
        "within this distance (m) of the claimant's track.")
    task_near_radius_m: float = Field(
        3000.0, gt=0, le=1_000_000, description="Default radius (m) of `GET /tasks?near=lon,lat`.")
    task_max_radius_m: float = Field(
        50_000.0, gt=0, le=1_000_000, description="Largest radius (m) a client may ask for.")
    task_max_window_h: float = Field(
        24.0, gt=0, le=744, description="Longest time window (hours) of a patrol task.")
    task_max_area_km2: float = Field(
        10.0, gt=0, le=10_000, description="Largest area (km²) of an area patrol task.")

    # --- patrol coverage (issue 4, C1) ---
    coverage_distance_m: float = Field(
        25.0, gt=0, le=500, description="Area within this distance (m) of a track counts as "
        "covered (a request may pass its own `distance_m`).")
    coverage_cell_m: float = Field(
        2.0, ge=0.25, le=50, description="Raster cell (m) of area coverage; the error is well "
        "under one percentage point at 2 m with a 25 m buffer.")
    route_walk_tolerance_m: float = Field(
        25.0, gt=0, le=500, description="Planned vs actual: a piece of a route within this "
        "distance (m) of a team member's track was walked.")

    # --- maps (issue 5) ---
    basemap: str = Field(
        "none", description="Basemap of the map pages: none, osm, custom (PATROLGRID_BASEMAP_URL),"
        " amap (GCJ-02: overlays are shifted to match) or tianditu (needs "
        "PATROLGRID_BASEMAP_KEY); a page may override it with ?basemap=.")
    basemap_url: str | None = Field(
        None, description="Tile URL template of your own tile server, e.g. "
        "http://tiles.intranet/{z}/{x}/{y}.png (the custom basemap).")
    basemap_attribution: str | None = Field(
        None, description="Attribution shown for the custom basemap.")
    basemap_key: str | None = Field(
        None, description="Tianditu API key (tk) for the tianditu basemap.")

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"timezone {value!r} is not an IANA time zone name such as 'Asia/Shanghai'"
            ) from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        valid = "a PostgreSQL URL such as postgresql+psycopg://postgres@127.0.0.1:5432/patrolgrid"
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parsing the port is the check ("abc" raises ValueError)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"DATABASE_URL {value!r} is not {valid}") from exc
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"DATABASE_URL {value!r} is not {valid} (patrolgrid needs "
                             "PostGIS)")
        return value

    @field_validator("basemap")
    @classmethod
    def _check_basemap(cls, value: str) -> str:
        if value not in BASEMAPS:
            raise ValueError(f"basemap {value!r} is not one of {', '.join(BASEMAPS)}")
        return value

    @model_validator(mode="after")
    def _check_pages(self) -> Settings:
        if self.page_limit > self.max_page_limit:
            raise ValueError(f"page_limit {self.page_limit} is above max_page_limit "
                             f"{self.max_page_limit}: every list would refuse its own default")
        if self.task_near_radius_m > self.task_max_radius_m:
            raise ValueError(f"task_near_radius_m {self.task_near_radius_m:g} is above "
                             f"task_max_radius_m {self.task_max_radius_m:g}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
