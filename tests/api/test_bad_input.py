"""Input that used to reach the database as a 500, and the answers that replace it.

Text PostgreSQL cannot store (a NUL character, an unpaired surrogate), ids beyond
their column's range, malformed bodies, Unicode digits as Open311 ids: each is a 4xx
naming the field, the value and what is valid, and nothing is written. The city is
Open311's (fixture ``small_city``): grids G1 and G2, categories E1 and E2.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

Auth = Callable[[str], dict[str, str]]
IN_G1 = {"lon": 120.005, "lat": 30.01, "category": "E1", "source": "app"}


def _counts(session: Session) -> tuple[int, int]:
    session.rollback()
    return (int(session.execute(text("SELECT count(*) FROM incident")).scalar_one()),
            int(session.execute(text("SELECT count(*) FROM incident_event")).scalar_one()))


def _detail(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["detail"]
    assert detail["field"] == field, detail
    assert detail["valid"], detail
    return detail


def _post(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    # json.dumps escapes what a client may send as escapes: "\u0000", "\ud800"
    return client.post("/api/v1/incidents", content=json.dumps({**IN_G1, **fields}),
                       headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize(("fields", "field"), [
    ({"description": "a\u0000b"}, "description"),
    ({"external_id": "x\u0000"}, "external_id"),
    ({"reporter": "\ud800"}, "reporter"),
    ({"attrs": {"k\u0000": 1}}, "attrs"),
    ({"attrs": {"k": ["ok", "b\u0000"]}}, "attrs.k[1]"),
    ({"attrs": {"k": {"deep": "\udfff"}}}, "attrs.k.deep"),
])
def test_unstorable_text_is_refused_by_field(client: TestClient, auth: Auth, session: Session,
                                             small_city: dict[str, int], fields: dict[str, Any],
                                             field: str) -> None:
    before = _counts(session)
    detail = _detail(_post(client, auth("dispatcher"), **fields), 422, field)
    assert "NUL" in detail["valid"] and "surrogate" in detail["valid"]
    assert _counts(session) == before


def test_unstorable_text_in_a_status_note(client: TestClient, auth: Auth,
                                          small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    iid = _post(client, d).json()["id"]
    answer = client.post(f"/api/v1/incidents/{iid}/status",
                         content=json.dumps({"status": "accepted", "note": "a\u0000b"}),
                         headers={**d, "Content-Type": "application/json"})
    _detail(answer, 422, "note")
    assert client.get(f"/api/v1/incidents/{iid}", headers=d).json()["properties"][
        "status"] == "dispatched"


def test_nul_in_a_query_parameter(client: TestClient, auth: Auth,
                                  small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    detail = _detail(client.get("/api/v1/incidents?grid=G%00", headers=d), 422, "grid")
    assert detail["value"] == "G\\x00"
    body = client.get("/open311/v2/requests.json?service_code=E%00", headers=d)
    assert body.status_code == 400
    assert body.json()[0]["field"] == "service_code" and body.json()[0]["code"] == 400
    assert client.get("/api/v1/incidents?grid=G1", headers=d).status_code == 200
    # in a path: named as the path (it was the database's error, naming no field)
    detail = _detail(client.get("/api/v1/grids/G%00", headers=d), 422, "path")
    assert detail["message"].startswith("the path ")  # not "query parameter 'path'"
    assert detail["value"] == "/api/v1/grids/G\\x00"
    # a browser on a map page gets a page, not JSON
    page = client.get("/maps/heatmap?since=%00", headers={**d, "Accept": "text/html"})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "since" in page.text and "NUL" in page.text


def test_nul_in_an_open311_form_field(client: TestClient, auth: Auth, session: Session,
                                      small_city: dict[str, int]) -> None:
    before = _counts(session)
    key = auth("patrol")["Authorization"].removeprefix("Bearer ")
    for form in ({"description": "a\u0000b"}, {"attribute[k]": "a\u0000b"}):
        answer = client.post("/open311/v2/requests.json", data={
            "api_key": key, "service_code": "E1", "lat": "30.01", "long": "120.005", **form})
        assert answer.status_code == 400, answer.text
        assert answer.json()[0]["field"] in ("description", "attribute[k]")
    assert _counts(session) == before


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("get", "/api/v1/incidents/99999999999999999999", None, "incident_id"),
    ("post", "/api/v1/incidents/9223372036854775808/status", {"status": "accepted"},
     "incident_id"),
    ("get", "/api/v1/incidents/0/candidates", None, "incident_id"),
    ("delete", "/api/v1/duties/9999999999", None, "duty_id"),
    ("get", "/api/v1/plans/33832590315577556/impact", None, "plan_id"),
    ("get", "/api/v1/workers?team_id=2147483648", None, "team_id"),
    ("get", "/maps/dispatch/99999999999999999999", None, "incident_id"),
    ("get", "/maps/planner?parent=C1&plan=99999999999999999999", None, "plan"),
    ("post", "/api/v1/duties", {"worker_id": -7552547480603, "grid_code": "G1",
                                "kind": "primary"}, "worker_id"),
])
def test_ids_beyond_their_column(client: TestClient, auth: Auth, small_city: dict[str, int],
                                 method: str, path: str, body: Any, field: str) -> None:
    kwargs: dict[str, Any] = {"headers": auth("admin")}
    if body is not None:
        kwargs["json"] = body
    detail = _detail(getattr(client, method)(path, **kwargs), 422, field)
    assert any(bound in detail["valid"] for bound in ("<=", ">=", "2147483647",
                                                       "9223372036854775807"))


def test_dispatch_to_a_worker_id_beyond_int4(client: TestClient, auth: Auth,
                                             small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    iid = _post(client, d).json()["id"]
    client.post(f"/api/v1/incidents/{iid}/status", json={"status": "registered"}, headers=d)
    answer = client.post(f"/api/v1/incidents/{iid}/status",
                         json={"status": "dispatched", "worker_id": 2**31}, headers=d)
    assert "2147483647" in _detail(answer, 422, "worker_id")["valid"]


def test_a_forged_cursor_with_a_huge_id(client: TestClient, auth: Auth,
                                        small_city: dict[str, int]) -> None:
    raw = json.dumps(["2026-01-01T00:00:00+00:00", 10**20]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    answer = client.get(f"/api/v1/incidents?cursor={cursor}", headers=auth("dispatcher"))
    _detail(answer, 422, "cursor")


@pytest.mark.parametrize(("content", "kind", "valid"), [
    ("{", "application/json", "JSON"),
    ('{"lon": 1}', "text/plain", "Content-Type: application/json"),
    ("[" * 3000 + "]" * 3000, "application/json", "JSON"),
])
def test_bodies_that_are_not_json_objects(client: TestClient, auth: Auth,
                                          small_city: dict[str, int], content: str, kind: str,
                                          valid: str) -> None:
    answer = client.post("/api/v1/incidents", content=content,
                         headers={**auth("dispatcher"), "Content-Type": kind})
    assert answer.status_code in (400, 422), answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == "body" and valid in detail["valid"], detail


def test_field_names_of_union_types_are_plain(client: TestClient, auth: Auth,
                                              small_city: dict[str, int]) -> None:
    d = auth("dispatcher")
    iid = _post(client, d).json()["id"]
    answer = client.post(f"/api/v1/incidents/{iid}/evaluation", json={"score": None},
                         headers=d)
    assert answer.json()["detail"]["field"] == "score", answer.text


def test_from_after_to(client: TestClient, auth: Auth, small_city: dict[str, int]) -> None:
    answer = client.get("/api/v1/incidents?from=2026-01-01&to=2020-01-01",
                        headers=auth("dispatcher"))
    assert "from" in _detail(answer, 422, "to")["valid"]


@pytest.mark.parametrize("ident", ["%C2%B2", "%E2%91%A0", "%D9%A3"])
def test_open311_ids_are_ascii_digits(client: TestClient, auth: Auth, small_city: dict[str, int],
                                      ident: str) -> None:
    d = auth("dispatcher")
    assert client.get(f"/open311/v2/requests/{ident}.json", headers=d).status_code in (400,
                                                                                      404)
    listed = client.get(f"/open311/v2/requests.json?service_request_id={ident}", headers=d)
    assert listed.status_code == 400 and listed.json()[0]["field"] == "service_request_id"


def test_open311_post_takes_api_key_from_the_query(client: TestClient, auth: Auth,
                                                   small_city: dict[str, int]) -> None:
    key = auth("patrol")["Authorization"].removeprefix("Bearer ")
    answer = client.post(f"/open311/v2/requests.json?api_key={key}",
                         data={"service_code": "E1", "lat": "30.01", "long": "120.005"})
    assert answer.status_code == 201, answer.text


def test_a_track_time_beyond_any_date(client: TestClient, auth: Auth,
                                      small_city: dict[str, int]) -> None:
    answer = client.post("/api/v1/tracks", headers=auth("admin"), json={
        "worker_id": small_city["G1"], "points": [{"lon": 120.005, "lat": 30.01, "t": -1.79e308}]})
    assert answer.status_code == 422, answer.text
    assert "points[0].t" in answer.json()["detail"]["field"]


@pytest.mark.parametrize("url", [
    "/api/v1/tracks?to=0001-01-01",
    "/api/v1/tracks?from=9999-12-31T23:59:59-14:00",
    "/api/v1/coverage?level=street&to=0001-01-01",
    "/api/v1/incidents?from=0001-01-01T00:00:00%2B14:00",
    "/api/v1/grids?at=9999-12-31T23:59:59-14:00",
    "/api/v1/locate?lon=120.005&lat=30.01&at=0001-01-01",
    "/open311/v2/requests.json?start_date=0001-01-01T00:00:00%2B14:00",
    "/maps/heatmap?until=0001-01-01",
    "/maps/hexbins?until=9999-12-31T23:59:59-14:00",
    "/maps/grids?since=0001-01-01T00:00:00%2B14:00",
    "/maps/coverage?date=9999-12-31",
    "/maps/coverage?date=0001-01-01",
    "/maps/coverage?to=9999-12-31T23:59:59-14:00",
    "/maps/routes/T1?date=9999-12-31",
    "/maps/routes/T1?date=0001-01-01",
    "/maps/dispatch/{incident}?at=9999-12-31T23:59:59-14:00",
    "/maps/dispatch/{incident}?at=0001-01-01T00:00:00%2B14:00",
])
def test_moments_near_the_ends_of_the_calendar(client: TestClient, auth: Auth, session: Session,
                                               small_city: dict[str, int], url: str) -> None:
    """Year 1 and year 9999 used to overflow date arithmetic (500); now 422 naming them."""
    session.execute(text("INSERT INTO team (code, name, kind) VALUES ('T1', '巡逻一队', "
                         "'patrol')"))
    session.commit()
    incident = _post(client, auth("dispatcher")).json()["id"]
    url = url.format(incident=incident)
    answer = client.get(url, headers={**auth("admin"), "Accept": "application/json"})
    assert answer.status_code in (400, 422), (url, answer.status_code, answer.text[:300])
    body = answer.json()
    detail = body[0] if isinstance(body, list) else body["detail"]
    assert detail["field"] in url, detail


@pytest.mark.parametrize(("url", "status"), [
    ("/api/v1/incidents?from=1970-01-01", 200),              # local midnight: 1969 in UTC
    ("/api/v1/incidents?from=1969-12-31T23:59:59%2B08:00", 422),
    ("/api/v1/grids?at=2199-12-31T23:00:00-14:00", 200),     # 2200 in UTC
    ("/api/v1/grids?at=2200-01-01T00:00:00%2B14:00", 422),   # 2199 in UTC
    ("/open311/v2/requests.json?start_date=1970-01-01T00:00:00%2B08:00", 200),
])
def test_the_calendar_range_is_read_in_the_moments_own_time(
        client: TestClient, auth: Auth, small_city: dict[str, int], url: str,
        status: int) -> None:
    """The message says 1970-01-01 to 2199-12-31: the date as written, at any offset."""
    answer = client.get(url, headers=auth("admin"))
    assert answer.status_code == status, (url, answer.text[:300])
    if status == 422:
        assert answer.json()["detail"]["valid"] == "a moment from 1970-01-01 to 2199-12-31"


def test_the_openapi_document_describes_our_422s(client: TestClient, auth: Auth,
                                                 small_city: dict[str, int]) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    problem = schemas["Problem"]
    assert schemas["HTTPValidationError"]["properties"]["detail"]["$ref"].endswith("/Problem")
    answer = client.get("/api/v1/incidents/0", headers=auth("dispatcher"))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert set(problem["required"]) <= set(detail)
    assert {"message", "field", "value", "valid"} <= set(problem["properties"]) & set(detail)
    declared = doc["paths"]["/api/v1/incidents/{incident_id}"]["get"]["responses"]["422"]
    assert declared["content"]["application/json"]["schema"]["$ref"].endswith(
        "/HTTPValidationError")


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("post", "/api/v1/incidents", '{"lon": NaN, "lat": 30.01, "category": "C0101", '
                                  '"source": "hotline"}', "lon"),
    ("post", "/api/v1/plans/suggest", '{"parent": "C1", "k": 2, "weight": NaN}', "weight"),
    ("post", "/api/v1/plans/suggest", '{"parent": "C1", "k": 2, "weight": Infinity}', "weight"),
    ("get", "/api/v1/coverage?grid=G11&distance_m=nan", None, "distance_m"),
])
def test_nan_and_infinity_are_named_not_a_500(client: TestClient, auth: Auth,
                                              small_city: dict[str, int], method: str, url: str,
                                              body: str | None, field: str) -> None:
    headers = {**auth("admin"), "Content-Type": "application/json"}
    answer = client.request(method, url, headers=headers, content=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field and str(detail["value"]).lower().lstrip("+-") in (
        "nan", "inf", "infinity"), detail
    if field != "lon":
        assert "is not a number" in detail["message"] and "finite" in detail["valid"]


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/tracks?offset=9223372036854775808", "offset"),
    ("/api/v1/tasks?offset=9223372036854775808", "offset"),
    ("/api/v1/grids?offset=9223372036854775808", "offset"),
    ("/api/v1/tasks?worker_id=99999999999", "worker_id"),
])
def test_numbers_beyond_their_columns_name_the_parameter(
        client: TestClient, auth: Auth, small_city: dict[str, int], url: str,
        field: str) -> None:
    answer = client.get(url, headers=auth("admin"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field, answer.text


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("post", "/api/v1/workers", '{"code": "W-9", "name": "x\\ud800y", "role": "patrol"}',
     "name"),
    ("post", "/api/v1/teams", '{"code": "T-9", "name": "x\\u0000y"}', "name"),
    ("post", "/api/v1/duties", '{"worker_id": 1, "grid_code": "G\\udc00", "kind": "primary"}',
     "grid_code"),
    ("post", "/api/v1/routes/plan", '{"grid": "G11", "length_m": 500, "network": "\\ud800"}',
     "network"),
    ("post", "/api/v1/incidents", '{"lon": 120.005, "lat": 30.01, "category": "C0101", '
                                  '"source": "hotline", "attrs": {"a": ["\\ud800"]}}',
     "attrs.a[0]"),
])
def test_text_postgresql_cannot_store_is_named_on_every_endpoint(
        client: TestClient, auth: Auth, small_city: dict[str, int], method: str, url: str,
        body: str, field: str) -> None:
    answer = client.request(method, url, content=body.encode(),
                            headers={**auth("admin"), "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field and detail["message"].startswith(field), detail
    emoji = client.post("/api/v1/teams", content='{"code": "T-8", "name": "巡逻 \\ud83d\\ude93"}'
                        .encode(), headers={**auth("admin"), "Content-Type": "application/json"})
    assert emoji.status_code == 201, emoji.text  # a surrogate pair is a character


@pytest.mark.parametrize("day", [True, "1", 1.0])
def test_a_weekday_must_be_a_whole_number(client: TestClient, auth: Auth,
                                          small_city: dict[str, int], day: Any) -> None:
    answer = client.post("/api/v1/duties", headers=auth("admin"), json={
        "worker_id": small_city["G1"], "grid_code": "G2", "kind": "backup",
        "shifts": [{"days": [day], "start": "08:00", "end": "18:00"}]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "shifts[0].days[0]"


def test_a_key_given_twice_with_different_values_is_refused(
        client: TestClient, auth: Auth, session: Session, small_city: dict[str, int]) -> None:
    before = _counts(session)
    headers = {**auth("dispatcher"), "Content-Type": "application/json"}
    twice = ('{"lon": 120.005, "lon": 30.01, "lat": 30.01, "category": "E1", '
             '"source": "app"}')  # the parser kept the last: stored at (30.01, 30.01)
    detail = _detail(client.post("/api/v1/incidents", content=twice, headers=headers), 422,
                     "lon")
    assert "twice" in detail["message"] and "120.005" in detail["message"]
    nested = ('{"lon": 120.005, "lat": 30.01, "category": "E1", "source": "app", '
              '"attrs": {"k": 1, "k": 2}}')
    detail = _detail(client.post("/api/v1/incidents", content=nested, headers=headers), 422,
                     "attrs.k")
    assert detail["message"].startswith("attrs.k is given twice")
    assert _counts(session) == before
    typed = ('{"lon": 120.005, "lat": 30.01, "category": "E1", "source": "app", '
             '"attrs": {"k": 1, "k": true}}')  # equal in Python, not in JSON
    _detail(client.post("/api/v1/incidents", content=typed, headers=headers), 422, "attrs.k")
    deep = ('{"worker_id": 1, "points": [{"lon": 1, "lat": 2, "t": "x"}, '
            '{"lon": 1, "lat": 2, "t": "a", "t": "b"}]}')
    _detail(client.post("/api/v1/tracks", content=deep, headers=headers), 422, "points[1].t")
    same = ('{"lon": 120.005, "lon": 120.005, "lat": 30.01, "category": "E1", '
            '"source": "app"}')  # the same value twice says nothing different: taken
    assert client.post("/api/v1/incidents", content=same, headers=headers).status_code == 201


def test_an_integer_too_long_to_read_is_named(client: TestClient, auth: Auth, session: Session,
                                              small_city: dict[str, int]) -> None:
    """The parser's error named the body, not the field holding 5000 digits."""
    before = _counts(session)
    headers = {**auth("dispatcher"), "Content-Type": "application/json"}
    body = ('{"lon": 120.005, "lat": 30.01, "category": "E1", "source": "app", '
            '"attrs": {"n": [1, ' + "9" * 5000 + ']}}')
    detail = _detail(client.post("/api/v1/incidents", content=body, headers=headers), 422,
                     "attrs.n[1]")
    assert "5000 digits" in detail["message"] and "4300" in detail["valid"]
    assert _counts(session) == before


def test_unknown_paths_and_methods_answer_in_our_shape(client: TestClient, auth: Auth) -> None:
    headers = auth("dispatcher")
    nowhere = _detail(client.get("/api/v1/nowhere", headers=headers), 404, "path")
    assert nowhere["value"] == "/api/v1/nowhere"  # was {"detail": "Not Found"}
    wrong = client.put("/api/v1/categories", headers=headers)
    detail = _detail(wrong, 405, "method")
    assert detail["value"] == "PUT" and "GET" in detail["valid"] and wrong.headers["allow"]
    both = client.delete("/api/v1/incidents", headers=headers)  # two routes: GET and POST
    assert both.headers["allow"] == "GET, HEAD, POST"
    assert "GET, HEAD, POST" in both.json()["detail"]["valid"]
    posted_only = client.head("/api/v1/escalations", headers=headers)
    assert posted_only.status_code == 405 and posted_only.headers["allow"] == "POST"
    assert posted_only.content == b""


def test_head_answers_as_get_without_the_body(client: TestClient, auth: Auth) -> None:
    headers = auth("dispatcher")
    for path in ("/api/v1/categories", "/healthz", "/api/v1/incidents?limit=2"):
        got = client.get(path, headers=headers)
        head = client.head(path, headers=headers)
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert head.headers["content-length"] == got.headers["content-length"] != "0"
        assert head.headers["content-type"] == got.headers["content-type"]
    assert client.head("/api/v1/categories").status_code == 401  # the same rules as GET
    assert client.head("/api/v1/nowhere", headers=headers).status_code == 404


def test_unknown_and_repeated_query_parameters_are_refused(client: TestClient, auth: Auth,
                                                           small_city: dict[str, int]) -> None:
    """FastAPI ignored both: a misspelt filter returned everything, ``lon`` twice took the
    last (the map pages refused them already)."""
    headers = auth("dispatcher")
    typo = client.get("/api/v1/incidents", params={"bbxo": "1,2,3,4"}, headers=headers)
    assert typo.status_code == 422 and typo.json()["detail"]["field"] == "bbxo", typo.text
    assert "bbox" in typo.json()["detail"]["valid"]
    twice = client.get("/api/v1/locate?lon=120.005&lon=30.01&lat=30.01", headers=headers)
    assert twice.status_code == 422 and twice.json()["detail"]["field"] == "lon", twice.text
    same = client.get("/api/v1/locate?lon=120.005&lon=120.005&lat=30.01", headers=headers)
    assert same.status_code == 200, same.text
