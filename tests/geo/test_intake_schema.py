"""validate_incident: what a report may contain, and errors naming field, value and valid."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from geo.errors import InvalidInput
from geo.incidents.schema import FIELDS, IncidentIn, validate_incident

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=SH)
BASE = {"lon": 119.2965, "lat": 26.0745, "category": "E0101", "source": "hotline"}


def check(raw: dict[str, Any], **kwargs: Any) -> IncidentIn:
    return validate_incident(raw, tz=SH, now=NOW, **kwargs)


def refused(raw: dict[str, Any], **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        check(raw, **kwargs)
    return info.value


def test_a_minimal_report_gets_the_defaults() -> None:
    item = check(BASE)
    assert item == IncidentIn(lon=119.2965, lat=26.0745, category="E0101", source="hotline")
    assert item.crs == "wgs84" and item.reported_at is None and item.attrs == {}


def test_every_field_is_kept_and_normalised() -> None:
    item = check({**BASE, "lon": "119.3", "lat": " 26.08", "crs": "GCJ-02", "source": "APP",
                  "external_id": 12345, "idempotency_key": "k-1", "reporter": " 张三 ",
                  "description": "井盖缺失", "reported_at": "2025-06-02T09:30:00",
                  "attrs": {"photo": "a.jpg"}}, row=7)
    assert (item.lon, item.lat, item.crs, item.source) == (119.3, 26.08, "gcj02", "app")
    assert item.external_id == "12345" and item.reporter == "张三" and item.row == 7
    assert item.reported_at == dt.datetime(2025, 6, 2, 9, 30, tzinfo=SH)
    assert item.attrs == {"photo": "a.jpg"} and item.idempotency_key == "k-1"


def test_empty_strings_count_as_omitted() -> None:
    item = check({**BASE, "crs": "", "external_id": " ", "reported_at": "", "reporter": ""})
    assert item.crs == "wgs84" and item.external_id is None and item.reported_at is None


@pytest.mark.parametrize(("changes", "field", "value", "valid_part"), [
    ({"lon": "east"}, "lon", "east", "-180 to 180"),
    ({"lat": None}, "lat", None, "latitude"),
    ({"lat": "nan"}, "lat", "nan", "-90 to 90"),
    ({"lon": True}, "lon", True, "-180 to 180"),
    ({"lon": 190.0, "lat": 26.0}, "lon", 190.0, "-180 to 180"),
    ({"lat": -91}, "lat", -91, "-90 to 90"),
    ({"crs": "utm50"}, "crs", "utm50", "gcj02"),
    ({"source": "twitter"}, "source", "twitter", "hotline, app, patrol, camera, sensor, other"),
    ({"category": ""}, "category", "", "GET /api/v1/categories"),
    ({"category": 12}, "category", 12, "text"),
    ({"external_id": "x" * 129}, "external_id", "x" * 80 + "…", "128"),
    ({"reported_at": "yesterday"}, "reported_at", "yesterday", "ISO 8601"),
    ({"reported_at": "2025-06-02T14:00:00+08:00"}, "reported_at", "2025-06-02T14:00:00+08:00",
     "to now"),
    ({"reported_at": "1969-12-31T00:00:00Z"}, "reported_at", "1969-12-31T00:00:00Z", "1970"),
    ({"attrs": [1, 2]}, "attrs", "[1, 2]", "JSON object"),
    ({"attrs": {"x": float("nan")}}, "attrs", "{'x': nan}", "JSON object"),
    ({"categroy": "E0101"}, "categroy", "E0101", "category"),
])
def test_bad_values_name_field_value_and_what_is_valid(changes: dict[str, Any], field: str,
                                                       value: Any, valid_part: str) -> None:
    err = refused({**BASE, **changes})
    assert err.field == field
    assert err.value == value
    assert err.valid is not None and valid_part in err.valid


def test_swapped_chinese_coordinates_are_called_swapped() -> None:
    err = refused({**BASE, "lon": 26.0745, "lat": 119.2965})
    assert err.field == "lat" and "look swapped" in err.message
    assert "lon=119.2965" in err.message


def test_missing_required_fields_are_named() -> None:
    for key in ("lon", "lat", "category", "source"):
        raw = {k: v for k, v in BASE.items() if k != key}
        err = refused(raw)
        assert err.field == key and "required" in err.message


def test_not_an_object() -> None:
    err = refused([1, 2])  # type: ignore[arg-type]
    assert err.field == "body" and err.valid is not None and "lon" in err.valid


def test_unknown_field_lists_the_known_ones() -> None:
    err = refused({**BASE, "colour": "red"})
    assert err.valid == ", ".join(FIELDS)


def test_row_number_travels_with_the_error() -> None:
    err = refused({**BASE, "lat": 100}, row=42)
    assert err.extra["row"] == 42 and err.to_dict()["row"] == 42


def test_time_formats() -> None:
    def at(value: str) -> dt.datetime | None:
        return check({**BASE, "reported_at": value}).reported_at

    utc = dt.datetime(2025, 6, 2, 1, 30, tzinfo=dt.UTC)
    assert at("2025-06-02T01:30:00Z") == utc
    assert at("2025-06-02T09:30:00.000") == utc  # Chicago portal style, local time
    assert at("2025/06/02 09:30") == utc
    assert at("06/02/2025 09:30:00 AM") == utc
    assert at("2025-06-02T12:59:00+08:00") is not None  # within the clock skew allowed
    # 1970 as written, as check_moment reads from/to: the first hours of 1970 in Shanghai
    # are 1969 in UTC, and were refused as "before 1970"
    first = dt.datetime(1969, 12, 31, 16, tzinfo=dt.UTC)
    assert at("1970-01-01T00:00:00+08:00") == first and at("1970-01-01T00:00:00") == first


def test_projected_coordinates_are_eastings_and_northings() -> None:
    item = check({**BASE, "lon": 1176813, "lat": 1908120, "crs": "EPSG:3435"})
    assert (item.lon, item.lat, item.crs, item.projected) == (1176813.0, 1908120.0,
                                                              "EPSG:3435", True)
    err = refused({**BASE, "lon": "inf", "crs": "EPSG:3435"})
    assert err.field == "lon"
    for text in ("1_176_813", "１１７６８１３"):  # float() reads both; degrees refuse them too
        assert refused({**BASE, "lon": text, "crs": "EPSG:3435"}).field == "lon"
    assert check({**BASE, "lon": " 1176813.5", "crs": "EPSG:3435"}).lon == 1176813.5


def test_default_time_zone_comes_from_the_settings() -> None:
    item = validate_incident({**BASE, "reported_at": "2020-01-01T08:00:00"})
    assert item.reported_at == dt.datetime(2020, 1, 1, 0, 0, tzinfo=dt.UTC)
