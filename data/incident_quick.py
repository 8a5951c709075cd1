"""The quick path of the bulk import's row validation: the common row in a few microseconds.

:func:`data.incident_import` checks every row with
:func:`geo.incidents.schema.validate_incident`, which is thorough and costs about
a hundred microseconds a row in Python (type checks, error texts prepared,
helpers per field). Almost every row of a real file is plain: text cells,
numbers in range, a known category, an ISO time. :class:`QuickCheck` accepts
such a row with a handful of direct tests and builds its
:class:`~geo.incidents.schema.IncidentIn` itself; for **anything** else (an
empty or odd value, a projected or unknown CRS, a text too long, a time it
cannot read or out of range, a type other than text or number) it answers
``None`` and the importer runs the full validation, so that every reject keeps
the exact reason and message of :func:`validate_incident`. A row the quick path
accepts gives the same ``IncidentIn`` as the full validation
(``tests/data/test_incident_quick.py`` checks this on edge cases).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from data.incident_fields import Fields, ImportOptions
from data.incident_io import SourceRow
from geo.crs import parse_crs
from geo.errors import InvalidInput, unstorable
from geo.incidents.schema import (
    DESCRIPTION_MAX,
    EARLIEST,
    KEY_MAX,
    MAX_FUTURE,
    REPORTER_MAX,
    IncidentIn,
    is_projected,
)
from geo.store.models import INCIDENT_SOURCES

_fromiso = dt.datetime.fromisoformat
_EMPTY: tuple[()] = ()


class QuickCheck:
    """Accepts plain rows directly (see the module docstring); ``None`` means: validate fully."""

    def __init__(self, fields: Fields, options: ImportOptions, categories: set[str],
                 tz: ZoneInfo, now: dt.datetime) -> None:
        self.f = fields
        self.categories = categories
        self.default_category = options.default_category
        self.crs_option = options.crs
        self.source_option = options.source
        self.tz = tz
        self.latest = now + MAX_FUTURE
        self.crs_names: dict[Any, str | None] = {}
        self.sources: dict[Any, str | None] = {}

    def _crs(self, value: Any) -> str | None:
        if value is None:
            return "wgs84"
        if type(value) is not str:
            return None
        name = self.crs_names.get(value, _EMPTY)
        if name is _EMPTY:
            try:
                parsed: str | None = parse_crs(value) if value.strip() else "wgs84"
            except InvalidInput:
                parsed = None
            # Projected input goes the full way (its checks differ).
            name = self.crs_names[value] = None if parsed is None or is_projected(parsed) \
                else parsed
        return name  # type: ignore[return-value]

    def _source(self, value: Any) -> str | None:
        if value is None:
            return "other"
        if type(value) is not str:
            return None
        name = self.sources.get(value, _EMPTY)
        if name is _EMPTY:
            key = value.strip().lower()
            name = self.sources[value] = key if key in INCIDENT_SOURCES else (
                None if key else "other")
        return name  # type: ignore[return-value]

    def __call__(self, row: SourceRow) -> IncidentIn | None:
        """The row's incident when it is plain, else None (then validate it fully)."""
        if row.problem is not None:
            return None
        f = self.f
        v = row.values
        lon, lat, _, _ = f.coordinates(row)
        return self._check(
            row.row, lon, lat, v.get(f.category) if f.category else None,
            self.crs_option if f.crs is None else v.get(f.crs),
            self.source_option if f.source is None else v.get(f.source),
            v.get(f.external_id) if f.external_id else None,
            v.get(f.description) if f.description else None,
            v.get(f.reporter) if f.reporter else None,
            v.get(f.time) if f.time else None)

    def columns(self, header: list[str]) -> list[int | None] | None:
        """Where :meth:`cells` finds each field in a CSV record of ``header`` (None: a
        record of this file has no plain fast path, e.g. coordinates from a geometry)."""
        f = self.f
        if f.lon is None or f.lat is None:
            return None
        last = {name: k for k, name in enumerate(header)}  # a repeated name: its last cell
        names = (f.lon, f.lat, f.category, f.crs, f.source, f.external_id, f.description,
                 f.reporter, f.time)
        if any(n is not None and n not in last for n in names):
            return None
        return [None if n is None else last[n] for n in names]

    def cells(self, number: int, cells: list[str], at: list[int | None]) -> IncidentIn | None:
        """:meth:`__call__` for the raw cells of a CSV record of the header's width,
        ``at`` from :meth:`columns`: the same answer as for its :class:`SourceRow`
        (empty and blank cells count as missing), without building the row."""
        v = [None if k is None or not (c := cells[k]).strip() else c for k in at]
        return self._check(number, v[0], v[1], v[2],
                           self.crs_option if at[3] is None else v[3],
                           self.source_option if at[4] is None else v[4],
                           v[5], v[6], v[7], v[8])

    def _check(self, number: int, lon: Any, lat: Any, category: Any, crs_value: Any,
               source_value: Any, external: Any, described: Any, reported_by: Any,
               at: Any) -> IncidentIn | None:
        if type(lon) not in (str, float, int) or type(lat) not in (str, float, int):
            return None
        if (type(lon) is str and (not lon.isascii() or "_" in lon)) or \
                (type(lat) is str and (not lat.isascii() or "_" in lat)):
            return None  # float() reads "1_0" and full-width digits: the full check refuses
        try:
            x = float(lon)
            y = float(lat)
        except (ValueError, OverflowError):
            return None
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            return None  # NaN fails too
        if type(category) is str:
            category = category.strip()
        elif category is not None:
            return None
        if not category:
            category = self.default_category
        if category not in self.categories:
            return None
        crs = self._crs(crs_value)
        if crs is None:
            return None
        source = self._source(source_value)
        if source is None:
            return None
        external_id: Any = _short(external, KEY_MAX)
        description: Any = _short(described, DESCRIPTION_MAX)
        reporter: Any = _short(reported_by, REPORTER_MAX)
        if external_id is False or description is False or reporter is False:
            return None
        if at is not None:
            if type(at) is not str:
                return None
            text = at.strip()
            if text:
                try:
                    at = _fromiso(text.replace("Z", "+00:00"))
                except ValueError:
                    return None
                if at.tzinfo is None:
                    at = at.replace(tzinfo=self.tz)
                if not EARLIEST <= at <= self.latest:
                    return None
            else:
                at = None
        return IncidentIn(x, y, category, source, crs, external_id, None, at, description,
                          reporter, {}, number)


def _short(value: Any, limit: int) -> str | bool | None:
    """A stripped text of at most ``limit`` characters, None when empty, False: go the full way
    (too long, not a text, or with a NUL or an unpaired surrogate, which PostgreSQL cannot
    store)."""
    if value is None:
        return None
    if type(value) is not str:
        return False
    text = value.strip()
    if not text:
        return None
    return text if len(text) <= limit and unstorable(text) is None else False
