"""The import's quick row check accepts only what the full validation accepts, identically."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from data.incident_fields import ImportOptions, resolve_fields
from data.incident_import import ImportSummary, _Importer
from data.incident_io import CsvChunk, SourceRow, open_rows
from data.incident_quick import QuickCheck
from geo.settings import Settings
from tests.geo import intake_city as city

HEADER = ["lon", "lat", "crs", "category", "source", "external_id", "reported_at",
          "description", "reporter"]
PLAIN = {"lon": "120.005", "lat": "30.01", "crs": None, "category": "E0101",
         "source": "hotline", "external_id": " X1 ", "reported_at": "2024-06-03T10:00:00+08:00",
         "description": " 路灯不亮 ", "reporter": "r"}
#: Variations of PLAIN; True: the quick path must take the row itself.
CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"reported_at": "2024-06-03 10:00:00"}, True),          # local time
    ({"reported_at": "2024-06-03T02:00:00Z"}, True),
    ({"reported_at": None}, True),                           # "now"
    ({"reported_at": "  "}, True),
    ({"crs": "GCJ-02"}, True), ({"crs": "EPSG:4490"}, True), ({"crs": " wgs84 "}, True),
    ({"source": " HOTLINE "}, True), ({"source": None}, True), ({"source": "  "}, True),
    ({"category": " C0101 "}, True), ({"lon": " 120.0 "}, True), ({"lat": "30"}, True),
    ({"external_id": None, "description": None, "reporter": None}, True),
    ({"lon": 120.005, "lat": 30}, True),                     # JSON numbers
    ({"crs": "EPSG:3857", "lon": "13358338", "lat": "3503549"}, False),  # projected
    ({"crs": "bogus"}, False), ({"source": "radio"}, False), ({"category": "X9"}, False),
    ({"category": None}, False), ({"category": 5}, False), ({"lon": "abc"}, False),
    ({"lon": "nan"}, False), ({"lon": "inf"}, False), ({"lon": "200"}, False),
    ({"lon": "30.01", "lat": "120.005"}, False), ({"lon": None}, False), ({"lon": True}, False),
    ({"external_id": "x" * 129}, False), ({"external_id": 17}, False),
    ({"description": "d" * 10_001}, False), ({"reporter": "r" * 201}, False),
    ({"reported_at": "2099-01-01T00:00:00+00:00"}, False),
    ({"reported_at": "1969-12-31T00:00:00Z"}, False),
    ({"reported_at": "06/03/2024 10:00:00 AM"}, False),      # read by the full path only
    ({"reported_at": "yesterday"}, False), ({"reported_at": 1717380000}, False),
]


@pytest.fixture
def importer(session: Session, settings: Settings) -> _Importer:
    city.build(session)
    session.flush()
    imp = _Importer(session, ImportOptions(), settings, ImportSummary("t", "csv"), "t", None,
                    index=None)
    imp.fields = resolve_fields(SourceRow(row=1, values=dict(PLAIN)), HEADER, ImportOptions())
    imp.tz = city.SH
    imp.now = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    return imp


@pytest.mark.parametrize(("change", "quick"), CASES)
def test_quick_check_equals_the_full_validation(importer: _Importer, change: dict[str, Any],
                                                quick: bool) -> None:
    row = SourceRow(row=7, values={**PLAIN, **change})
    assert importer.fields is not None
    check = QuickCheck(importer.fields, importer.options, importer.categories, importer.tz,
                       importer.now)
    got = check(row)
    raw = importer.raw(row, importer.fields)
    full = importer.validate(row, raw) if raw is not None else None
    assert (got is not None) == quick, (got, full)
    if got is not None:
        assert got == full


def test_default_category_and_options(session: Session, settings: Settings,
                                      importer: _Importer) -> None:
    options = ImportOptions(default_category="C0101", source="app", crs="gcj02")
    row = SourceRow(row=3, values={**PLAIN, "category": None})
    fields = resolve_fields(row, HEADER, options)
    check = QuickCheck(fields, options, importer.categories, importer.tz, importer.now)
    imp = _Importer(session, options, settings, ImportSummary("t", "csv"), "t", None,
                    index=None)
    imp.fields, imp.tz, imp.now = fields, importer.tz, importer.now
    raw = imp.raw(row, fields)
    assert raw is not None
    got = check(row)
    assert got is not None and got == imp.validate(row, raw)
    assert (got.category, got.source, got.crs) == ("C0101", "app", "gcj02")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize(("change", "quick"),
                         [c for c in CASES if all(isinstance(v, str | None)
                                                  for v in c[0].values())])
def test_quick_check_of_raw_csv_cells_equals_that_of_the_row(importer: _Importer,
                                                             change: dict[str, Any],
                                                             quick: bool) -> None:
    """``QuickCheck.cells`` on a CSV record gives what ``QuickCheck`` gives on its SourceRow."""
    header = [*HEADER, "lon"]  # a repeated name: the last cell counts, as in the row's dict
    values = {**PLAIN, **change}
    record = [_cell(values[h]) for h in HEADER] + [_cell(values["lon"])]
    record[0] = "999"  # the first "lon" cell is shadowed by the last
    chunk = CsvChunk(header, [7], [record])
    row = chunk.source_row(0)
    assert importer.fields is not None
    check = QuickCheck(importer.fields, importer.options, importer.categories, importer.tz,
                       importer.now)
    at = check.columns(header)
    assert at is not None
    got = check.cells(7, record, at)
    assert got == check(row)
    assert (got is not None) == quick


def test_a_csv_chunk_gives_the_rows_iterating_the_file_gives(tmp_path: Any) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("lon,lat,category\n120,30,A\n\n  \n121,31\n122,32,B,extra\n, ,C\n",
                    encoding="utf-8")
    with open_rows(path) as reader:
        rows = list(reader)
    with open_rows(path) as reader:
        chunks = reader.csv_chunks(size=2)
        assert chunks is not None
        from_chunks = [c.source_row(k) for c in chunks for k in range(len(c))]
    assert from_chunks == rows
    assert [r.row for r in rows] == [1, 4, 5, 6]
    assert rows[1].problem and rows[2].problem and rows[3].values == \
        {"lon": None, "lat": None, "category": "C"}
