"""The incident filters the heatmap, hexbins and grids pages share, checked.

``since``/``until`` (ISO 8601 dates or date-times, local time without an
offset; default the 90 days up to now), ``category`` and ``status`` (comma
lists or repeated; ``open`` stands for every status not final) and ``grid`` (a
current grid code: its incidents and those of every grid below it). Values that
need the database (category codes, grid codes) are checked by :meth:`to_filter`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.errors import MOMENT_VALID, InvalidInput
from geo.incidents.loop import OPEN_STATUSES
from geo.settings import get_settings
from geo.store.incident_queries import TIME_VALID, IncidentFilter, parse_categories, parse_time
from geo.store.models import INCIDENT_STATUSES, Grid

DEFAULT_DAYS = 90
STATUS_VALID = ("a comma-separated list of open (every status not final), "
                + ", ".join(INCIDENT_STATUSES))
GRID_VALID = "the code of a current grid (GET /api/v1/grids)"


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    parts = value if isinstance(value, list | tuple) else [value]
    out = [p.strip() for part in parts for p in str(part).split(",") if p.strip()]
    return out or None


class IncidentParams(BaseModel):
    """Filters on the incidents a page shows (every one optional)."""

    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(None, description=f"start of the window (inclusive): {TIME_VALID}; "
                              f"default {DEFAULT_DAYS} days before `until`")
    until: str | None = Field(None, description=f"end of the window (exclusive): {TIME_VALID}; "
                              "default now")
    category: list[str] | None = Field(
        None, description="a comma-separated list of category codes (GET /api/v1/categories)")
    status: list[str] | None = Field(None, description=STATUS_VALID)
    grid: str | None = Field(None, description=GRID_VALID)

    @field_validator("since", "until")
    @classmethod
    def _time(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value.strip():
            try:
                parse_time(value, info.field_name or "time", get_settings().tz)
            except InvalidInput as exc:  # unreadable, or outside 1970-2199: say which
                raise ValueError(f"{value!r} is not a date or date-time" if exc.valid !=
                                 MOMENT_VALID else exc.message) from exc
        return value or None

    @field_validator("category", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> list[str] | None:
        return _as_list(value)

    @field_validator("status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> list[str] | None:
        items = _as_list(value)
        for item in items or ():
            if item != "open" and item not in INCIDENT_STATUSES:
                raise ValueError(f"{item!r} is not an incident status")
        return items

    def window(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """``(since, until)`` as aware datetimes, defaults filled in; since < until."""
        tz = get_settings().tz
        until = parse_time(self.until, "until", tz) or (now or dt.datetime.now(dt.UTC))
        since = parse_time(self.since, "since", tz) or until - dt.timedelta(days=DEFAULT_DAYS)
        if since >= until:
            raise InvalidInput(f"since {since.isoformat()} is not before until "
                               f"{until.isoformat()}", field="since", value=self.since,
                               valid="a moment before `until`")
        return since, until

    def statuses(self) -> list[str] | None:
        """The statuses asked for, ``open`` expanded."""
        if not self.status:
            return None
        out: list[str] = []
        for item in self.status:
            for status in (OPEN_STATUSES if item == "open" else (item,)):
                if status not in out:
                    out.append(status)
        return out

    def to_filter(self, session: Session, now: dt.datetime | None = None) -> IncidentFilter:
        """The checked :class:`IncidentFilter`; InvalidInput (422) for unknown codes."""
        since, until = self.window(now)
        categories = parse_categories(session, ",".join(self.category)) if self.category else None
        if self.grid is not None:
            check_grid(session, self.grid)
        return IncidentFilter(grid=self.grid, statuses=self.statuses(), categories=categories,
                              reported_from=since, reported_to=until)


def check_grid(session: Session, code: str, field: str = "grid") -> None:
    """InvalidInput unless ``code`` is a current grid."""
    found = session.scalar(select(Grid.id).where(Grid.code == code, Grid.valid_to.is_(None))
                           .limit(1))
    if found is None:
        raise InvalidInput(f"{field} {code!r} is not a current grid", field=field, value=code,
                           valid=GRID_VALID)
