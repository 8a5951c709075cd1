"""Open311 GeoReport v2 over HTTP, on a small city in a real PostGIS.

The city: street ``S1`` = community ``C1`` = lon 120.00-120.02, lat 30.00-30.02;
grids ``G1`` (west half) and ``G2`` (east half), each with a grid worker always on
duty. Categories ``E1`` (SLA 4 h) and ``E2`` (24 h).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.app import create_app
from geo import crs
from geo.incidents.intake import register
from geo.incidents.loop import change_status
from geo.incidents.schema import validate_incident
from geo.index_cache import get_index
from geo.settings import Settings
from geo.store import db
from geo.store.grids import GridRecord, write_versions
from geo.store.models import Duty, Worker
from geo.store.roster_write import CategoryRecord, upsert_categories

V2 = "/open311/v2"
IN_G1 = {"lat": "30.01", "long": "120.005"}


@pytest.fixture
def city(db_url: str) -> dict[str, int]:
    """Write the city; returns grid code -> id of the worker on it."""
    return build_small_city(db_url)


def build_small_city(db_url: str) -> dict[str, int]:
    """The city of the module docstring; grid code -> id of the worker on it."""
    with db.session_scope(db_url) as s:
        write_versions(s, [GridRecord("S1", "一号街道", "street", box(120, 30, 120.02, 30.02))])
        write_versions(s, [GridRecord("C1", "一号社区", "community",
                                      box(120, 30, 120.02, 30.02), parent_code="S1")])
        write_versions(s, [
            GridRecord("G1", "第1网格", "grid", box(120, 30, 120.01, 30.02), parent_code="C1"),
            GridRecord("G2", "第2网格", "grid", box(120.01, 30, 120.02, 30.02),
                       parent_code="C1")])
        upsert_categories(s, [
            CategoryRecord("E1", "暴露垃圾", "Exposed rubbish", "event", "环卫处", 4),
            CategoryRecord("E2", "占道经营", "Street vending", "event", "城管执法中队", 24)])
        ids: dict[str, int] = {}
        for grid in ("G1", "G2"):
            worker = Worker(code=f"W{grid}", name=f"网格员{grid}", role="grid_worker",
                            active=True)
            worker.duties.append(Duty(grid_code=grid, kind="primary", shifts=[]))
            s.add(worker)
            s.flush()
            ids[grid] = worker.id
    return ids


@pytest.fixture
def client(settings: Settings, auth: Callable[[str], dict[str, str]]) -> Iterator[TestClient]:
    """A client whose requests carry a dispatcher's bearer token: Open311 reads need a key
    unless PATROLGRID_OPEN311_PUBLIC_READ is true."""
    with TestClient(create_app(settings), headers=auth("dispatcher")) as c:
        yield c


@pytest.fixture
def key(auth: Callable[[str], dict[str, str]]) -> str:
    """An API token of a patrol user (the least role) as Open311's api_key."""
    return auth("patrol")["Authorization"].removeprefix("Bearer ")


def _count(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM incident")).scalar_one())


def _post(client: TestClient, key: str | None, **fields: str) -> Any:
    form = {"service_code": "E1", **IN_G1, **fields}
    if key is not None:
        form["api_key"] = key
    return client.post(f"{V2}/requests.json", data=form)


def _error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["code"] == status and body[0]["description"]
    if field is not None:
        assert body[0].get("field") == field, body
    return dict(body[0])


def test_services_list_the_categories(client: TestClient, city: dict[str, int]) -> None:
    response = client.get(f"{V2}/services.json")
    assert response.status_code == 200
    services = {s["service_code"]: s for s in response.json()}
    assert set(services) == {"E1", "E2"}
    assert services["E2"]["service_name"] == "Street vending"
    assert services["E2"]["group"] == "城管执法中队" and "24 hours" in services["E2"]["description"]
    assert client.get(f"{V2}/services/E1.json").json() == {"service_code": "E1",
                                                            "attributes": []}
    _error(client.get(f"{V2}/services/X9.json"), 404, "service_code")


def test_a_posted_request_gets_its_grid_worker_and_deadline(
        client: TestClient, city: dict[str, int], key: str, session: Session) -> None:
    response = _post(client, key, description="垃圾堆在门口", first_name="Li",
                     email="li@example.org", media_url="https://example.org/p.jpg",
                     **{"attribute[SIZE]": "big"})
    assert response.status_code == 201, response.text
    [answer] = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert "4 hours" in answer["service_notice"]
    row = session.execute(text(
        "SELECT grid_code, worker_id, source, category_code, status, attrs, reporter, "
        "due_at - reported_at AS sla FROM incident WHERE id = :id"),
        {"id": int(answer["service_request_id"])}).mappings().one()
    assert row["grid_code"] == "G1" and row["worker_id"] == city["G1"]
    assert row["source"] == "app" and row["category_code"] == "E1"
    assert row["sla"] == dt.timedelta(hours=4)
    assert row["attrs"]["open311"]["attributes"] == {"SIZE": "big"}
    assert row["reporter"] == "Li <li@example.org>"
    actors = session.execute(text("SELECT actor FROM incident_event WHERE incident_id = :id"),
                             {"id": int(answer["service_request_id"])}).scalars().all()
    assert actors and all(a.startswith("open311:") for a in actors)

    [shown] = client.get(f"{V2}/requests/{answer['service_request_id']}.json").json()
    assert shown["service_request_id"] == answer["service_request_id"]
    assert shown["status"] == "open" and shown["service_code"] == "E1"
    assert shown["address"] == "第1网格" and shown["agency_responsible"] == "环卫处"
    assert shown["media_url"] == "https://example.org/p.jpg"
    assert (shown["lat"], shown["long"]) == pytest.approx((30.01, 120.005))
    assert shown["requested_datetime"].endswith("+08:00")
    assert "li@example.org" not in response.text + str(shown)


@pytest.mark.parametrize(("fields", "status", "field"), [
    ({"lat": "north"}, 400, "lat"),
    ({"long": "200"}, 400, "long"),
    ({"lat": "120.005", "long": "30.01"}, 400, "lat"),  # swapped
    ({"service_code": "X9"}, 400, "service_code"),
    ({"service_code": ""}, 400, "service_code"),
    ({"long": ""}, 400, "long"),
    ({"crs": "mars"}, 400, "crs"),
    ({"colour": "red"}, 400, "colour"),
])
def test_bad_requests_are_refused_by_name_and_write_nothing(
        client: TestClient, city: dict[str, int], key: str, session: Session,
        fields: dict[str, str], status: int, field: str) -> None:
    error = _error(_post(client, key, **fields), status, field)
    assert "valid" in error
    assert _count(session) == 0


def test_swapped_coordinates_are_named_as_swapped(client: TestClient, city: dict[str, int],
                                                  key: str) -> None:
    error = _error(_post(client, key, lat="120.005", long="30.01"), 400)
    assert "swap" in error["description"]


def test_api_key_is_required_and_checked(settings: Settings, city: dict[str, int],
                                         session: Session,
                                         auth: Callable[[str], dict[str, str]]) -> None:
    planner = auth("planner")["Authorization"].removeprefix("Bearer ")
    with TestClient(create_app(settings)) as bare:
        _error(_post(bare, None), 401, "api_key")
        _error(_post(bare, "pg_not-a-token"), 403, "api_key")
        refused = _error(_post(bare, planner), 403, "api_key")
        assert refused["value"] == "planner" and "dispatcher" in refused["valid"]
    assert _count(session) == 0


def test_a_json_body_is_refused_with_the_content_type_to_use(
        client: TestClient, city: dict[str, int], key: str) -> None:
    response = client.post(f"{V2}/requests.json", json={"service_code": "E1", "api_key": key,
                                                         **IN_G1})
    error = _error(response, 400, "Content-Type")
    assert "form" in error["valid"]


def test_a_retry_with_the_same_idempotency_key_returns_the_same_request(
        client: TestClient, city: dict[str, int], key: str, session: Session) -> None:
    headers = {"Idempotency-Key": "o311-retry-1"}
    form = {"service_code": "E1", "api_key": key, **IN_G1}
    first = client.post(f"{V2}/requests.json", data=form, headers=headers)
    again = client.post(f"{V2}/requests.json", data=form, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()[0]["service_request_id"] == again.json()[0]["service_request_id"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post(
            f"{V2}/requests.json", data=form, headers={"Idempotency-Key": "o311-burst"}),
            range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()[0]["service_request_id"] for a in answers}) == 1
    assert _count(session) == 2


def test_crs_extension_converts_gcj02_before_choosing_the_grid(
        client: TestClient, city: dict[str, int], key: str, session: Session) -> None:
    # A true (WGS-84) point in G1, 50 m west of the G1/G2 border; its GCJ-02 numbers
    # lie ~500 m east of it, in G2.
    glon, glat = crs.from_wgs84([120.0095], [30.01], "gcj02")
    form = {"lat": f"{glat[0]:.7f}", "long": f"{glon[0]:.7f}"}
    assert glon[0] > 120.01
    as_gcj = _post(client, key, crs="gcj02", **form).json()[0]["service_request_id"]
    as_wgs = _post(client, key, **form).json()[0]["service_request_id"]
    grids: dict[int, str] = dict(session.execute(text("SELECT id, grid_code FROM incident")).all())
    assert grids == {int(as_gcj): "G1", int(as_wgs): "G2"}


@pytest.fixture
def history(db_url: str, city: dict[str, int], settings: Settings) -> Iterator[dict[str, int]]:
    """Four incidents: E1 open, E2 rejected, E1 merged-like closed, and one 100 days old."""
    now = dt.datetime.now(dt.UTC)
    made: dict[str, int] = {}
    with db.session_scope(db_url) as s:
        index = get_index(s)
        for name, category, ago in (("open", "E1", 1), ("rejected", "E2", 2),
                                    ("closed", "E1", 3), ("old", "E1", 100 * 24)):
            item = validate_incident({"lon": 120.005, "lat": 30.005 + ago * 1e-6,
                                      "category": category, "source": "hotline",
                                      "external_id": f"h-{name}",
                                      "reported_at": (now - dt.timedelta(hours=ago)).isoformat(),
                                      "attrs": {"open311": {"email": "x@example.org"}}},
                                     tz=settings.tz)
            made[name] = register(s, item, actor="test", settings=settings, index=index).id
        change_status(s, made["rejected"], "rejected", note="outside our remit", actor="test")
        for status in ("accepted", "in_progress", "disposed", "verified", "closed"):
            change_status(s, made["closed"], status, actor="test")
    yield made


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {int(r["service_request_id"]) for r in response.json()}


def test_requests_filter_by_status_code_ids_and_dates(client: TestClient,
                                                      history: dict[str, int]) -> None:
    recent = {history["open"], history["rejected"], history["closed"]}
    assert _ids(client.get(f"{V2}/requests.json")) == recent  # default: the last 90 days
    assert _ids(client.get(f"{V2}/requests.json", params={"status": "open"})) == \
        {history["open"]}
    closed = client.get(f"{V2}/requests.json", params={"status": "closed"}).json()
    assert {int(r["service_request_id"]) for r in closed} == {history["rejected"],
                                                              history["closed"]}
    notes = {int(r["service_request_id"]): r["status_notes"] for r in closed}
    assert "outside our remit" in notes[history["rejected"]]
    assert _ids(client.get(f"{V2}/requests.json", params={"service_code": "E2"})) == \
        {history["rejected"]}
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=120)).isoformat()
    assert _ids(client.get(f"{V2}/requests.json", params={"start_date": start})) == \
        recent | {history["old"]}
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(days=50)).isoformat()
    assert _ids(client.get(f"{V2}/requests.json", params={"start_date": start,
                                                           "end_date": end})) == {history["old"]}
    wanted = f"{history['old']},{history['open']}"
    assert _ids(client.get(f"{V2}/requests.json", params={"service_request_id": wanted,
                                                           "status": "closed"})) == \
        {history["old"], history["open"]}
    newest_first = client.get(f"{V2}/requests.json").json()
    times = [r["requested_datetime"] for r in newest_first]
    assert times == sorted(times, reverse=True)
    assert "x@example.org" not in str(newest_first)


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "pending"}, "status"),
    ({"service_code": "E1,X9"}, "service_code"),
    ({"start_date": "last week"}, "start_date"),
    ({"start_date": "2025-02-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}, "end_date"),
    ({"service_request_id": "1,two"}, "service_request_id"),
])
def test_bad_filters_are_refused_by_name(client: TestClient, city: dict[str, int],
                                         params: dict[str, str], field: str) -> None:
    _error(client.get(f"{V2}/requests.json", params=params), 400, field)


def test_unknown_requests_and_resources_answer_in_georeport_format(
        client: TestClient, city: dict[str, int]) -> None:
    _error(client.get(f"{V2}/requests/999999.json"), 404, "service_request_id")
    _error(client.get(f"{V2}/requests/abc.json"), 400, "service_request_id")
    _error(client.get(f"{V2}/requests.xml"), 404, "path")
    assert client.get("/open311/discovery.json").json()["endpoints"][0]["url"].endswith(
        "/open311/v2")


def test_reads_need_a_key_unless_opened_to_the_public(settings: Settings,
                                                      city: dict[str, int], key: str) -> None:
    with TestClient(create_app(settings)) as bare:
        _error(bare.get(f"{V2}/services.json"), 401, "api_key")
        _error(bare.get("/open311/discovery.json"), 401, "api_key")
        _error(bare.get(f"{V2}/requests.json", params={"api_key": "pg_nope"}), 403)
        assert bare.get(f"{V2}/services.json", params={"api_key": key}).status_code == 200
        bearer = {"Authorization": f"Bearer {key}"}
        assert bare.get(f"{V2}/requests.json", headers=bearer).status_code == 200
    public = settings.model_copy(update={"open311_public_read": True})
    with TestClient(create_app(public)) as bare:
        assert bare.get(f"{V2}/services.json").status_code == 200
        assert bare.get(f"{V2}/requests.json").status_code == 200
        _error(_post(bare, None), 401, "api_key")


def test_a_form_with_raw_utf8_text_is_read_as_utf8(client: TestClient, city: dict[str, int],
                                                    key: str, session: Session) -> None:
    # what `curl -d 'description=暴露垃圾'` sends: the UTF-8 bytes, not %-escaped
    body = (f"service_code=E1&lat={IN_G1['lat']}&long={IN_G1['long']}&api_key={key}&"
            "description=暴露垃圾 门口").encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post(f"{V2}/requests.json", content=body, headers=headers)
    assert response.status_code == 201, response.text
    new_id = int(response.json()[0]["service_request_id"])
    assert session.scalar(text("SELECT description FROM incident WHERE id = :id"),
                          {"id": new_id}) == "暴露垃圾 门口"
    before = _count(session)
    gbk = body.replace("暴露垃圾 门口".encode(), "暴露垃圾".encode("gbk"))
    _error(client.post(f"{V2}/requests.json", content=gbk, headers=headers), 400,
           "description")
    # a %-escaped bad byte: named in its own field, never showing the bytes of api_key
    escaped = body.replace("暴露垃圾 门口".encode(), b"a" * 30 + b"%FF")
    error = _error(client.post(f"{V2}/requests.json", content=escaped, headers=headers), 400,
                   "description")
    assert error["value"] == (b"a" * 8 + b"\xff").hex()
    assert key.encode().hex()[:16] not in error["description"] + str(error["value"])
    bad_key = body.replace(f"api_key={key}".encode(), b"api_key=" + key.encode() + b"%FF")
    error = _error(client.post(f"{V2}/requests.json", content=bad_key, headers=headers), 400,
                   "api_key")
    assert error["value"] is None
    session.rollback()
    assert _count(session) == before


def _pairs(client: TestClient, pairs: list[tuple[str, str]], **query: str) -> Any:
    """POST a urlencoded form whose fields may repeat."""
    return client.post(f"{V2}/requests.json", content=urlencode(pairs), params=query,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_attributes_and_api_key_given_twice_are_refused(
        client: TestClient, city: dict[str, int], key: str, session: Session,
        auth: Callable[[str], dict[str, str]]) -> None:
    before = _count(session)
    form = {"service_code": "E1", **IN_G1, "api_key": key}
    both = [*form.items(), ("attribute[X]", "a"), ("attribute[X][]", "b")]
    _error(_pairs(client, both), 400, "attribute[X][]")  # was a 500
    twice = [*form.items(), ("attribute[SIZE]", "big"), ("attribute[SIZE]", "small")]
    assert "small" in _error(_pairs(client, twice), 400, "attribute[SIZE]")[
        "description"]
    other = auth("dispatcher")["Authorization"].removeprefix("Bearer ")
    error = _error(_pairs(client, [*form.items(), ("api_key", other)]), 400, "api_key")
    assert error["value"] is None and other not in str(error)
    _error(_pairs(client, list(form.items()), api_key=other), 400, "api_key")
    session.rollback()
    assert _count(session) == before
    same = [*form.items(), ("attribute[SIZE]", "big"), ("attribute[SIZE]", "big"),
            ("attribute[TAGS][]", "a"), ("attribute[TAGS][]", "b"), ("api_key", key)]
    response = _pairs(client, same)
    assert response.status_code == 201, response.text
    new_id = int(response.json()[0]["service_request_id"])
    assert session.scalar(text("SELECT attrs->'open311'->'attributes' FROM incident "
                               "WHERE id = :id"), {"id": new_id}) == {
        "SIZE": "big", "TAGS": ["a", "b"]}


def test_errors_before_the_handler_answer_in_georeport_format(
        client: TestClient, city: dict[str, int], key: str) -> None:
    error = _error(client.delete(f"{V2}/requests.json"), 405)
    assert "DELETE is not allowed" in error["description"] and error["field"] == "method"
    assert error["valid"] == "one of GET, HEAD, POST"  # it named neither
    _error(client.post(f"{V2}/services.json"), 405)
    garbled = _error(client.post(f"{V2}/requests.json", params={"api_key": key},
                                 content=b"garbage",
                                 headers={"Content-Type": "multipart/form-data"}), 400, "body")
    assert "boundary" in garbled["valid"], garbled  # it named neither the body nor the fix
