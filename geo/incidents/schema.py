"""Validation of one reported incident, shared by REST, bulk import and Open311.

:func:`validate_incident` turns a mapping of user-given values into an
:class:`IncidentIn` or raises :class:`~geo.errors.InvalidInput` naming the
field, the value given and what would be valid (and the ``row`` when one is
given, for import reports). It needs no database: the category is checked
against the category table by the intake (:mod:`geo.incidents.intake`), which
also converts the coordinates to WGS-84 (vectorised over a batch).

Fields
------
``lon``, ``lat``
    Required numbers (numeric text is accepted), longitude first. In a
    geographic CRS lon must lie in [-180, 180] and lat in [-90, 90]; a pair that
    becomes valid when swapped is reported as swapped. In a projected CRS
    (``EPSG:<n>``) they are easting and northing.
``crs``
    ``wgs84`` (default), ``gcj02``, ``bd09``, ``cgcs2000`` (aliases such as
    ``GCJ-02`` and ``EPSG:4326`` are accepted) or ``EPSG:<n>``.
``category``
    Required category code (at most 64 characters).
``source``
    Required: ``hotline``, ``app``, ``patrol``, ``camera``, ``sensor`` or ``other``.
``external_id``
    Optional id in the source system (text or integer, at most 128 characters);
    ``(source, external_id)`` is unique, so a retry finds the same incident.
``idempotency_key``
    Optional (the HTTP ``Idempotency-Key`` header); unique like ``external_id``.
``reported_at``
    Optional ISO 8601 date-time (also ``YYYY/MM/DD HH:MM[:SS]`` and the
    ``MM/DD/YYYY hh:mm:ss AM`` of US open-data portals); without an offset it is
    local time in the configured time zone. Not before 1970, not more than
    :data:`MAX_FUTURE` ahead of now. Omitted: the time the incident is received.
``description`` (at most 10,000 characters), ``reporter`` (at most 200)
    Optional text.
``attrs``
    Optional JSON object kept with the incident.

Empty strings count as omitted, so CSV rows with empty cells validate like
JSON without those keys. Unknown keys are refused (they are usually typos).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from pyproj import CRS

from geo import crs as crs_mod
from geo.errors import InvalidInput, storable_json, storable_offset, storable_text
from geo.store.models import INCIDENT_SOURCES

FIELDS = ("lon", "lat", "crs", "category", "source", "external_id", "idempotency_key",
          "reported_at", "description", "reporter", "attrs")
REQUIRED = ("lon", "lat", "category", "source")
#: How far ahead of the clock a ``reported_at`` may be (devices' clocks drift).
MAX_FUTURE = dt.timedelta(hours=1)
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DESCRIPTION_MAX = 10_000
REPORTER_MAX = 200
KEY_MAX = 128
CATEGORY_MAX = 64
TIME_VALID = ("an ISO 8601 date-time such as 2025-06-02T09:30:00+08:00 (without an offset it is "
              "local time; also YYYY/MM/DD HH:MM[:SS] and MM/DD/YYYY hh:mm:ss AM), from 1970 "
              "to now")
_OTHER_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
                       "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S")


@dataclass(frozen=True, slots=True)
class IncidentIn:
    """A checked incident report, coordinates still in their input ``crs``.

    ``reported_at`` is timezone-aware, or None for "when received".
    ``row`` is the row number of a bulk import (None elsewhere).
    """

    lon: float
    lat: float
    category: str
    source: str
    crs: str = "wgs84"
    external_id: str | None = None
    idempotency_key: str | None = None
    reported_at: dt.datetime | None = None
    description: str | None = None
    reporter: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    row: int | None = None

    @property
    def projected(self) -> bool:
        """Whether ``lon``/``lat`` are easting/northing of a projected CRS."""
        return is_projected(self.crs)


@lru_cache(maxsize=64)
def is_projected(name: str) -> bool:
    """Whether a normalised CRS name (see :func:`geo.crs.parse_crs`) is projected."""
    return name.startswith("EPSG:") and bool(CRS.from_user_input(name).is_projected)


def _omitted(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any, name: str, max_len: int, *, allow_int: bool = False) -> str | None:
    if _omitted(value):
        return None
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value.strip()) > max_len:
        kind = "a text or an integer" if allow_int else "a text"
        shown = value[:80] + "…" if isinstance(value, str) else value
        raise InvalidInput(f"{name} must be {kind} of at most {max_len} characters",
                           field=name, value=shown,
                           valid=f"{kind} of at most {max_len} characters (empty: none given)")
    return storable_text(value.strip(), name)


def _finite(value: Any, name: str) -> float:
    number = math.nan
    plain = not isinstance(value, str) or (value.isascii() and "_" not in value)
    if not isinstance(value, bool) and isinstance(value, int | float | str) and plain:
        try:  # float() would also read "1_000" and full-width digits, as check_lonlat does not
            number = float(value)
        except (ValueError, OverflowError):
            number = math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}", field=name,
                           value=value, valid="a finite easting/northing in the given crs")
    return number


def _source(value: Any) -> str:
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in INCIDENT_SOURCES:
        raise InvalidInput(f"source {value!r} is not a known source", field="source",
                           value=value, valid=", ".join(INCIDENT_SOURCES))
    return str(key)


def parse_reported_at(value: Any, tz: ZoneInfo, now: dt.datetime,
                      name: str = "reported_at") -> dt.datetime | None:
    """A report time from text or a datetime; see the module docstring for the rules.

    Returns
    -------
    datetime or None
        Timezone-aware; None when omitted.
    """
    if _omitted(value):
        return None
    parsed: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for fmt in _OTHER_TIME_FORMATS:
                try:
                    parsed = dt.datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
    if parsed is None:
        raise InvalidInput(f"{name} {value!r} is not a date-time", field=name,
                           value=value if isinstance(value, str) else repr(value),
                           valid=TIME_VALID)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    early = parsed.replace(tzinfo=None) < EARLIEST.replace(tzinfo=None)  # its date as written:
    if early or parsed > now + MAX_FUTURE:                  # 1970-01-01 in Shanghai is in 1970
        when = "before 1970" if early else "in the future"
        raise InvalidInput(f"{name} {value!s} is {when}", field=name, value=str(value),
                           valid=TIME_VALID)
    return storable_offset(parsed)


def _attrs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    valid = "a JSON object"
    if not isinstance(value, Mapping):
        raise InvalidInput("attrs must be a JSON object", field="attrs", value=repr(value)[:80],
                           valid=valid)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"attrs cannot be stored as JSON: {exc}", field="attrs",
                           value=repr(value)[:80], valid=valid) from None
    storable_json(value, "attrs")
    return dict(value)


def _coordinates(raw: Mapping[str, Any], crs: str) -> tuple[float, float]:
    if is_projected(crs):
        return _finite(raw["lon"], "lon"), _finite(raw["lat"], "lat")
    return crs_mod.check_lonlat(raw["lon"], raw["lat"])


def validate_incident(raw: Mapping[str, Any], *, row: int | None = None,
                      tz: ZoneInfo | str | None = None,
                      now: dt.datetime | None = None) -> IncidentIn:
    """Check one incident report.

    Parameters
    ----------
    raw : mapping
        The fields of the module docstring (JSON body, CSV row, Open311 form...).
    row : int, optional
        Row number in a bulk import: kept on the result and added to errors as
        ``extra["row"]``.
    tz : ZoneInfo or str, optional
        Time zone of times without an offset (default: the configured one).
    now : datetime, optional
        The present (for tests); defaults to the clock.

    Returns
    -------
    IncidentIn

    Raises
    ------
    InvalidInput
        The first problem found, naming the field, the value and what is valid.
    """
    try:
        return _validate(raw, row=row, tz=tz, now=now)
    except InvalidInput as exc:
        if row is not None:
            exc.extra.setdefault("row", row)
        raise


def _validate(raw: Mapping[str, Any], *, row: int | None, tz: ZoneInfo | str | None,
              now: dt.datetime | None) -> IncidentIn:
    if not isinstance(raw, Mapping):
        raise InvalidInput("an incident must be a JSON object", field="body",
                           value=repr(raw)[:80], valid="an object with " + ", ".join(FIELDS))
    for key in raw:
        if key not in FIELDS:
            raise InvalidInput(f"{key!r} is not a field of an incident", field=str(key),
                               value=raw[key] if isinstance(raw[key], str | int | float)
                               else repr(raw[key])[:80], valid=", ".join(FIELDS))
    for key in REQUIRED:
        if _omitted(raw.get(key)):
            raise InvalidInput(f"{key} is required", field=key, value=raw.get(key),
                               valid=_REQUIRED_VALID[key])
    crs = crs_mod.parse_crs(None if _omitted(raw.get("crs")) else raw["crs"])
    lon, lat = _coordinates(raw, crs)
    category = _text(raw["category"], "category", CATEGORY_MAX)
    assert category is not None
    zone = _zone(tz)
    clock = now if now is not None else dt.datetime.now(dt.UTC)
    return IncidentIn(
        lon=lon, lat=lat, crs=crs, category=category, source=_source(raw["source"]),
        external_id=_text(raw.get("external_id"), "external_id", KEY_MAX, allow_int=True),
        idempotency_key=_text(raw.get("idempotency_key"), "idempotency_key", KEY_MAX),
        reported_at=parse_reported_at(raw.get("reported_at"), zone, clock),
        description=_text(raw.get("description"), "description", DESCRIPTION_MAX),
        reporter=_text(raw.get("reporter"), "reporter", REPORTER_MAX),
        attrs=_attrs(raw.get("attrs")), row=row)


def _zone(tz: ZoneInfo | str | None) -> ZoneInfo:
    if tz is None:
        from geo.settings import get_settings

        return get_settings().tz
    return ZoneInfo(tz) if isinstance(tz, str) else tz


_REQUIRED_VALID = {
    "lon": "a longitude in degrees from -180 to 180 (lon first)",
    "lat": "a latitude in degrees from -90 to 90",
    "category": "a category code (GET /api/v1/categories)",
    "source": ", ".join(INCIDENT_SOURCES),
}
