"""POST/GET /api/v1/incidents and GET /api/v1/categories over HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store import db
from tests.geo import intake_city as city
from tests.geo.intake_city import IN_C2_ONLY, IN_G11, IN_G12, IN_G21, MONDAY_10, SUNDAY_10

Auth = Callable[[str], dict[str, str]]
URL = "/api/v1/incidents"


@pytest.fixture
def ids(session: Session) -> dict[str, int]:
    made = city.build(session)
    session.commit()
    return made


def body(lonlat: tuple[float, float] = IN_G11, **kw: Any) -> dict[str, Any]:
    return {"lon": lonlat[0], "lat": lonlat[1], "category": "E0101", "source": "app",
            "reported_at": MONDAY_10.isoformat(), **kw}


def post(client: TestClient, auth: Auth, payload: Any, role: str = "patrol",
         headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, json=payload, headers={**auth(role), **(headers or {})})


def problem(answer: Any, status: int = 422) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    detail: dict[str, Any] = answer.json()["detail"]
    return detail


# --------------------------------------------------------------------------- intake

def test_post_answers_201_with_grid_chain_worker_and_rule(client: TestClient, auth: Auth,
                                                          ids: dict[str, int]) -> None:
    answer = post(client, auth, body(external_id="APP-1", description="垃圾"))
    assert answer.status_code == 201, answer.text
    got = answer.json()
    assert got["created"] is True and got["status"] == "dispatched"
    assert got["grid"] == {"code": "G11", "name": "网格11", "level": "grid", "chain": [
        {"code": "S1", "name": "一号街道", "level": "street"},
        {"code": "C1", "name": "甲社区", "level": "community"},
        {"code": "G11", "name": "网格11", "level": "grid"}]}
    assert got["worker"] == {"id": ids["WG11"], "code": "WG11", "name": "员工WG11"}
    assert got["rule"] == "primary" and got["snapped_m"] is None
    assert [got["lon"], got["lat"]] == list(IN_G11) and got["crs"] == "wgs84"
    assert dt.datetime.fromisoformat(got["due_at"]) == MONDAY_10 + dt.timedelta(hours=4)
    location = answer.headers["location"]
    assert location.endswith(f"{URL}/{got['id']}")
    assert client.get(location, headers=auth("planner")).status_code == 200


def test_retry_answers_200_with_the_same_incident(client: TestClient, auth: Auth,
                                                  ids: dict[str, int], db_url: str) -> None:
    first = post(client, auth, body(external_id="APP-2")).json()
    again = post(client, auth, body(external_id="APP-2"))
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"] and again.json()["created"] is False
    key = {"Idempotency-Key": "5f1c-retry"}
    keyed = post(client, auth, body(IN_G12), headers=key)
    assert keyed.status_code == 201
    replay = post(client, auth, body(IN_G12), headers=key)
    assert replay.status_code == 200 and replay.json()["id"] == keyed.json()["id"]
    with db.session_scope(db_url) as s:
        assert s.execute(text("SELECT count(*) FROM incident")).scalar_one() == 2
    clash = post(client, auth, body(idempotency_key="other"), headers=key)
    assert problem(clash)["field"] == "idempotency_key"
    for same in ("", "  ", " 5f1c-retry "):  # blank is "not given"; texts are trimmed
        again = post(client, auth, body(IN_G12, idempotency_key=same), headers=key)
        assert again.status_code == 200 and again.json()["id"] == keyed.json()["id"], same
    # found by its external_id, with a new key: the external_id is named, not the key
    other = post(client, auth, body(external_id="APP-2", category="C0101"),
                 headers={"Idempotency-Key": "KX1"})
    detail = problem(other, 409)
    assert (detail["field"], detail["value"]) == ("external_id", "APP-2"), detail
    assert post(client, auth, body(external_id="APP-3"),
                headers={"Idempotency-Key": "KX1"}).status_code == 201  # KX1 was not kept


@pytest.mark.parametrize(("payload", "field", "value", "valid_part"), [
    (body(lon="east"), "lon", "east", "-180 to 180"),
    (body(lon=190), "lon", 190, "-180 to 180"),
    (body(lat=-95), "lat", -95, "-90 to 90"),
    (body(lon=30.01, lat=120.005), "lat", 120.005, "-90 to 90"),
    (body(crs="mars2000"), "crs", "mars2000", "gcj02"),
    (body(category="NOPE"), "category", "NOPE", "E0101"),
    (body(source="fax"), "source", "fax", "hotline"),
    (body(reported_at="last tuesday"), "reported_at", "last tuesday", "ISO 8601"),
    ({"lat": 30.0, "category": "E0101", "source": "app"}, "lon", None, "longitude"),
])
def test_bad_input_names_field_value_and_valid(client: TestClient, auth: Auth,
                                               ids: dict[str, int], payload: dict[str, Any],
                                               field: str, value: Any, valid_part: str) -> None:
    detail = problem(post(client, auth, payload))
    assert detail["field"] == field and detail["value"] == value
    assert valid_part in detail["valid"], detail
    assert detail["message"]


def test_swapped_pairs_are_called_swapped(client: TestClient, auth: Auth,
                                          ids: dict[str, int]) -> None:
    detail = problem(post(client, auth, body(lon=30.01, lat=120.005)))
    assert "look swapped" in detail["message"]
    near_chicago = problem(post(client, auth, body((41.9, -87.65))))
    assert "look swapped" in near_chicago["message"] and near_chicago["swapped_grid"] == "CHI"


def test_body_must_be_an_object_and_a_token_is_needed(client: TestClient, auth: Auth,
                                                      ids: dict[str, int]) -> None:
    assert client.post(URL, json=body()).status_code == 401
    assert post(client, auth, [body()]).status_code == 422
    bad_key = post(client, auth, body(), headers={"Idempotency-Key": "k" * 129})
    assert problem(bad_key)["field"] == "Idempotency-Key"


def test_outside_every_grid_is_kept_in_the_queue(client: TestClient, auth: Auth,
                                                 ids: dict[str, int]) -> None:
    snapped = post(client, auth, body((120.005, 29.9999))).json()
    assert snapped["grid"]["code"] == "G11" and 10 < snapped["snapped_m"] < 12
    lost = post(client, auth, body((120.2, 30.5)))
    assert lost.status_code == 201
    got = lost.json()
    assert got["grid"] is None and got["worker"] is None and got["rule"] == "none"
    assert got["status"] == "registered" and "snap tolerance" in got["unassigned_reason"]
    queue = client.get(URL, params={"unassigned": "true"}, headers=auth("dispatcher")).json()
    assert [f["id"] for f in queue["features"]] == [got["id"]]
    assert queue["features"][0]["properties"]["unassigned_reason"] == got["unassigned_reason"]


def test_categories(client: TestClient, auth: Auth, ids: dict[str, int]) -> None:
    answer = client.get("/api/v1/categories", headers=auth("patrol"))
    assert answer.status_code == 200
    assert answer.json() == [
        {"code": "C0101", "name_zh": "上水井盖", "name_en": "Water manhole cover",
         "kind": "component", "department": "自来水公司", "sla_hours": 24.0},
        {"code": "E0101", "name_zh": "暴露垃圾", "name_en": "Exposed rubbish",
         "kind": "event", "department": "环卫处", "sla_hours": 4.0}]
    assert client.get("/api/v1/categories").status_code == 401


# --------------------------------------------------------------------------- reading

@pytest.fixture
def reported(client: TestClient, auth: Auth, ids: dict[str, int]) -> dict[str, int]:
    """Six incidents: key -> id."""
    plan = {
        "g11_old": body(reported_at="2024-05-01T10:00:00+08:00"),
        "g11": body(),
        "g12_c": body(IN_G12, category="C0101"),
        "g21": body(IN_G21, reported_at=SUNDAY_10.isoformat()),
        "c2": body(IN_C2_ONLY, category="C0101"),
        "lost": body((120.2, 30.5), reported_at="2024-06-04T09:00:00+08:00"),
    }
    out = {}
    for key, payload in plan.items():
        answer = post(client, auth, payload)
        assert answer.status_code == 201, answer.text
        out[key] = answer.json()["id"]
    return out


def listing(client: TestClient, auth: Auth, **params: Any) -> list[int]:
    answer = client.get(URL, params=params, headers=auth("planner"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/geo+json")
    return [f["id"] for f in answer.json()["features"]]


def test_filters(client: TestClient, auth: Auth, reported: dict[str, int],
                 db_url: str) -> None:
    r = reported
    # Newest report first; equal times (Monday 10:00) by id, descending.
    assert listing(client, auth) == [r["g21"], r["lost"], r["c2"], r["g12_c"], r["g11"],
                                     r["g11_old"]]
    assert set(listing(client, auth, grid="C1")) == {r["g11_old"], r["g11"], r["g12_c"]}
    assert set(listing(client, auth, grid="S1")) == set(r.values()) - {r["lost"]}
    assert listing(client, auth, grid="G21") == [r["g21"]]
    assert set(listing(client, auth, category="C0101")) == {r["g12_c"], r["c2"]}
    assert set(listing(client, auth, category="C0101,E0101")) == set(r.values())
    assert listing(client, auth, bbox="120.02,30.0,120.03,30.02") == [r["g21"]]
    assert set(listing(client, auth, status="registered")) == {r["lost"]}
    assert r["lost"] not in listing(client, auth, status="dispatched,accepted")
    assert listing(client, auth, **{"from": "2024-06-04", "to": "2024-06-05"}) == [r["lost"]]
    assert listing(client, auth, to="2024-05-02") == [r["g11_old"]]
    assert listing(client, auth, unassigned="true") == [r["lost"]]
    assert r["lost"] not in listing(client, auth, unassigned="false")
    # All are past due (2024) while still pending: overdue; one closed is not.
    assert set(listing(client, auth, overdue="true")) == set(r.values())
    with db.session_scope(db_url) as s:
        s.execute(text("UPDATE incident SET status = 'closed' WHERE id = :i"), {"i": r["g11"]})
    assert r["g11"] not in listing(client, auth, overdue="true")
    assert listing(client, auth, overdue="false") == [r["g11"]]


def test_paging_walks_every_incident_once(client: TestClient, auth: Auth,
                                          reported: dict[str, int]) -> None:
    seen: list[int] = []
    url: str | None = URL + "?limit=2"
    pages = 0
    while url is not None:
        page = client.get(url, headers=auth("planner")).json()
        assert page["numberMatched"] == 6 and page["numberReturned"] <= 2
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        pages += 1
    assert pages == 3 and sorted(seen) == sorted(reported.values())
    assert seen == listing(client, auth)


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "open"}, "status"), ({"category": "X1"}, "category"),
    ({"from": "soon"}, "from"), ({"overdue": "maybe"}, "overdue"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"bbox": "1,2,3"}, "bbox"),
    # an id of true (JSON's bool is a Python int) was a 500
    ({"cursor": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgdHJ1ZV0"}, "cursor"),
    ({"limit": "0"}, "limit"),
])
def test_bad_filters_are_named(client: TestClient, auth: Auth, ids: dict[str, int],
                               params: dict[str, str], field: str) -> None:
    answer = client.get(URL, params=params, headers=auth("planner"))
    assert problem(answer)["field"] == field


def test_unknown_grid_filter_is_404(client: TestClient, auth: Auth, ids: dict[str, int]) -> None:
    answer = client.get(URL, params={"grid": "NOPE"}, headers=auth("planner"))
    assert problem(answer, 404)["field"] == "grid"


def test_one_incident_with_events_and_etag(client: TestClient, auth: Auth,
                                           reported: dict[str, int]) -> None:
    answer = client.get(f"{URL}/{reported['g12_c']}", headers=auth("patrol"))
    assert answer.status_code == 200 and answer.headers["etag"] == '"1"'
    got = answer.json()
    assert got["type"] == "Feature" and got["geometry"] == {"type": "Point",
                                                            "coordinates": list(IN_G12)}
    props = got["properties"]
    assert (props["grid_code"], props["worker_code"], props["rule"], props["category_name"]) \
        == ("G12", "WG12", "primary", "上水井盖")
    assert props["overdue"] is True and props["version"] == 1
    assert [g["code"] for g in got["grid_chain"]] == ["S1", "C1", "G12"]
    assert [(e["from_status"], e["to_status"]) for e in got["events"]] == [
        (None, "registered"), ("registered", "dispatched")]
    assert got["events"][0]["actor"].startswith("test-patrol")
    missing = client.get(f"{URL}/999999", headers=auth("patrol"))
    assert problem(missing, 404)["field"] == "id"


def test_an_offset_beyond_postgresqls_range_is_the_same_moment_in_utc(
        client: TestClient, auth: Auth, ids: dict[str, int]) -> None:
    """``+20:00`` is valid ISO 8601 but PostgreSQL refuses offsets from 16 h: it was a 422
    naming no field; it is the same moment, stored in UTC."""
    answer = post(client, auth, body(reported_at="2024-05-02T10:00:00+20:00"))
    assert answer.status_code == 201, answer.text
    stored = dt.datetime.fromisoformat(answer.json()["reported_at"])
    assert stored == dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.UTC)
    listed = client.get(URL, params={"from": "2024-05-02T09:00:00+20:00",
                                     "to": "2024-05-02T11:00:00+20:00"},
                        headers=auth("planner"))
    assert listed.status_code == 200, listed.text
    assert [f["id"] for f in listed.json()["features"]] == [answer.json()["id"]]


def test_paging_reaches_incidents_reported_at_1970_at_their_own_offset(
        client: TestClient, auth: Auth, ids: dict[str, int]) -> None:
    """1970-01-01 at +14:00 is accepted (1970 as written) but stored in 1969 UTC: the next
    link's cursor then carried a time the cursor check refused, and paging stopped."""
    made = [post(client, auth, body(external_id=f"OLD-{k}", reported_at=at)).json()["id"]
            for k, at in enumerate(("1970-01-01T00:00:00+14:00", "1970-01-01T00:30:00+14:00"))]
    seen: list[int] = []
    url: str | None = URL + "?to=1971-01-01&limit=1"
    while url is not None:
        answer = client.get(url, headers=auth("planner"))
        assert answer.status_code == 200, answer.text
        seen += [f["id"] for f in answer.json()["features"]]
        url = next((link["href"] for link in answer.json()["links"] if link["rel"] == "next"),
                   None)
    assert sorted(seen) == sorted(made)


def test_a_body_too_deeply_nested_to_read_is_a_422(client: TestClient, auth: Auth,
                                                   ids: dict[str, int]) -> None:
    """FastAPI answers 400 for a body it cannot read; like any other unreadable body, 422."""
    deep = '{"attrs": ' + "[" * 3000 + "]" * 3000 + "}"
    answer = client.post(URL, content=deep, headers={**auth("patrol"),
                                                     "Content-Type": "application/json"})
    detail = problem(answer)
    assert detail["field"] == "body" and "JSON" in detail["valid"]
