"""The pure Open311 GeoReport v2 mapping of geo.open311 (no database)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from geo import open311
from geo.errors import Conflict, InvalidInput, NotFound
from geo.incidents.loop import ALLOWED
from geo.incidents.schema import validate_incident
from geo.store.models import INCIDENT_STATUSES

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_every_status_maps_and_only_final_ones_are_closed() -> None:
    assert set(open311.STATUS) == set(INCIDENT_STATUSES)
    for status in INCIDENT_STATUSES:
        final = not ALLOWED[status]  # nothing can follow a final status
        assert open311.open311_status(status) == ("closed" if final else "open"), status


def test_status_filter_is_the_union_of_its_parts() -> None:
    opened = open311.parse_statuses("open")
    closed = open311.parse_statuses("closed")
    assert opened is not None and closed is not None
    assert set(opened) | set(closed) == set(INCIDENT_STATUSES)
    assert not set(opened) & set(closed)
    assert open311.parse_statuses(" Open , closed ") == tuple(INCIDENT_STATUSES)
    assert open311.parse_statuses("") is None
    with pytest.raises(InvalidInput) as err:
        open311.parse_statuses("open,pending")
    assert err.value.field == "status" and err.value.value == "open,pending"
    assert "open" in (err.value.valid or "")


def test_ids_codes_and_dates_are_parsed_or_refused_by_name() -> None:
    assert open311.parse_ids("3, 7,11") == [3, 7, 11]
    assert open311.parse_ids(None) is None
    with pytest.raises(InvalidInput) as err:
        open311.parse_ids("3,x")
    assert err.value.field == "service_request_id" and err.value.value == "3,x"
    assert open311.parse_codes("E0101, C0104,") == ["E0101", "C0104"]
    assert open311.parse_datetime("2025-06-02T01:30:00Z", "start_date", SHANGHAI) == \
        dt.datetime(2025, 6, 2, 1, 30, tzinfo=dt.UTC)
    naive = open311.parse_datetime("2025-06-02", "end_date", SHANGHAI)
    assert naive == dt.datetime(2025, 6, 2, tzinfo=SHANGHAI)
    with pytest.raises(InvalidInput) as err:
        open311.parse_datetime("yesterday", "start_date", SHANGHAI)
    assert err.value.field == "start_date" and "W3C" in (err.value.valid or "")


def _form(**fields: str) -> list[tuple[str, str]]:
    return list(fields.items())


def test_a_posted_form_becomes_a_valid_incident_with_its_extras_kept() -> None:
    form = _form(service_code="E0101", lat="26.0845", long="119.2966",
                 description="rubbish by the gate", first_name="Li", last_name="Lei",
                 email="li@example.org", address_string="鼓东路 1号",
                 media_url="https://example.org/p.jpg", jurisdiction_id="fz")
    form += [("attribute[WHERE]", "gate"), ("attribute[SIZE][]", "big"),
             ("attribute[SIZE][]", "smelly")]
    raw = open311.intake_fields(form, idempotency_key="k-1")
    item = validate_incident(raw, tz=SHANGHAI)
    assert (item.lon, item.lat, item.crs) == (119.2966, 26.0845, "wgs84")
    assert item.category == "E0101" and item.source == open311.SOURCE
    assert item.description == "rubbish by the gate"
    assert item.reporter == "Li Lei <li@example.org>"
    assert item.idempotency_key == "k-1"
    kept = item.attrs["open311"]
    assert kept["address_string"] == "鼓东路 1号" and kept["jurisdiction_id"] == "fz"
    assert kept["attributes"] == {"WHERE": "gate", "SIZE": ["big", "smelly"]}


def test_crs_extension_passes_through_to_validation() -> None:
    raw = open311.intake_fields(_form(service_code="E0101", lat="26.08", long="119.30",
                                      crs="gcj02"))
    assert validate_incident(raw, tz=SHANGHAI).crs == "gcj02"
    bad = open311.intake_fields(_form(service_code="E0101", lat="26.08", long="119.30",
                                      crs="mars"))
    with pytest.raises(InvalidInput) as err:
        validate_incident(bad, tz=SHANGHAI)
    assert err.value.field == "crs" and err.value.value == "mars"


@pytest.mark.parametrize(("form", "field"), [
    ({"service_code": "E0101", "lat": "26.08"}, "long"),
    ({"service_code": "E0101", "long": "119.3", "address_string": "鼓东路"}, "lat"),
    ({"service_code": "E0101", "lat": "26.08", "long": "119.3", "colour": "red"}, "colour"),
])
def test_forms_without_coordinates_or_with_unknown_fields_are_refused(
        form: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        open311.intake_fields(list(form.items()))
    assert err.value.field == field
    assert err.value.valid


def test_a_field_given_twice_is_refused_unless_it_repeats_the_value() -> None:
    form = [("service_code", "E0101"), ("lat", "26.0845"), ("long", "119.2966"), ("lat", "27")]
    with pytest.raises(InvalidInput) as err:
        open311.intake_fields(form)
    assert (err.value.field, err.value.value) == ("lat", "27")
    assert "'26.0845' and '27'" in err.value.message
    same = open311.intake_fields([*form[:3], ("lat", "26.0845")])
    assert (same["lat"], same["lon"]) == ("26.0845", "119.2966")


def test_domain_errors_use_the_spec_field_names_and_statuses() -> None:
    raw = open311.intake_fields(_form(service_code="E0101", lat="26.08", long="east"))
    with pytest.raises(InvalidInput) as err:
        validate_incident(raw, tz=SHANGHAI)
    code, body = open311.domain_error_body(err.value)
    assert code == 400 and len(body) == 1
    assert body[0]["code"] == 400 and body[0]["field"] == "long"
    assert body[0]["value"] == "east" and body[0]["description"].startswith("long:")
    assert open311.error_status(NotFound("x")) == 404
    assert open311.error_status(Conflict("x")) == 409
    swapped = open311.intake_fields(_form(service_code="E0101", lat="119.3", long="26.08"))
    with pytest.raises(InvalidInput) as err:
        validate_incident(swapped, tz=SHANGHAI)
    assert "swap" in open311.domain_error_body(err.value)[1][0]["description"]


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 42, "status": "dispatched", "category_code": "E0101",
        "service_name": "Exposed rubbish", "description": "by the gate",
        "department": "环卫处", "sla_hours": 4.0,
        "reported_at": dt.datetime(2025, 6, 2, 1, 0, tzinfo=dt.UTC),
        "received_at": dt.datetime(2025, 6, 2, 1, 0, 5, tzinfo=dt.UTC),
        "due_at": dt.datetime(2025, 6, 2, 5, 0, tzinfo=dt.UTC), "duplicate_of": None,
        "attrs": {"open311": {"email": "li@example.org", "media_url": "https://x/p.jpg"}},
        "lon": 119.3, "lat": 26.08, "grid_name": "中山社区 第001网格",
        "updated_at": None, "last_note": None,
    }
    row.update(over)
    return row


def test_a_request_shows_times_in_local_w3c_and_hides_the_reporter() -> None:
    out = open311.request_of(_row(), SHANGHAI)
    assert out["service_request_id"] == "42" and out["status"] == "open"
    assert out["requested_datetime"] == "2025-06-02T09:00:00+08:00"
    assert out["updated_datetime"] == "2025-06-02T09:00:05+08:00"
    assert out["expected_datetime"] == "2025-06-02T13:00:00+08:00"
    assert out["address"] == "中山社区 第001网格" and out["agency_responsible"] == "环卫处"
    assert (out["lat"], out["long"]) == (26.08, 119.3)
    assert out["media_url"] == "https://x/p.jpg"
    assert "li@example.org" not in str(out)
    assert out["status_notes"] == "dispatched"
    assert "4 hours" in (out["service_notice"] or "")


def test_status_notes_explain_closed_requests() -> None:
    rejected = open311.request_of(_row(status="rejected", last_note="not our city"), SHANGHAI)
    assert rejected["status"] == "closed" and "not our city" in rejected["status_notes"]
    merged = open311.request_of(_row(status="duplicate", duplicate_of=7), SHANGHAI)
    assert merged["status"] == "closed" and "7" in merged["status_notes"]


def test_services_come_from_categories() -> None:
    cat = {"code": "C0104", "name_zh": "路灯", "name_en": "Street lamp", "kind": "component",
           "department": "城市照明管理处", "sla_hours": 48.0}
    service = open311.service_of(cat)
    assert service["service_code"] == "C0104" and service["service_name"] == "Street lamp"
    assert service["metadata"] is False and service["type"] == "realtime"
    assert service["group"] == "城市照明管理处" and "48 hours" in service["description"]
    assert open311.service_definition("C0104") == {"service_code": "C0104", "attributes": []}
