"""Configuration, read from the environment (and a ``.env`` file) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/patrolgrid"


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
    page_limit: int = Field(100, ge=1, description="Default page size of list endpoints.")
    max_page_limit: int = Field(1000, ge=1, description="Largest page size a client may ask.")
    topology_tolerance_m2: float = Field(
        1.0, ge=0, description="Overlaps, gaps and spills smaller than this (m²) are ignored."
    )
    max_upload_mb: int = Field(200, ge=1, description="Largest accepted upload, in MiB.")
    snap_tolerance_m: float = Field(
        30.0, ge=0, description="An incident outside every grid within this distance (m) "
        "goes to the nearest grid; beyond it stays unassigned.")
    duplicate_radius_m: float = Field(
        50.0, ge=0, description="A new incident this close (m) to an open one of the same "
        "category is linked to it as a duplicate candidate.")
    duplicate_window_h: float = Field(
        2.0, ge=0, description="... and reported within this many hours of it.")
    escalation_interval_s: float = Field(
        300.0, ge=0, description="How often the server escalates overdue incidents "
        "(0 turns the in-server job off; `patrolgrid escalate` still works).")

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

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
