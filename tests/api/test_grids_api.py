"""GET /api/v1/grids, /grids/{code}, /children, /history on synthetic versioned grids."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, box, shape
from sqlalchemy.orm import Session

from geo.store.grids import GridRecord, write_versions

Auth = Callable[[str], dict[str, str]]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
X0, Y0, STEP = 119.30, 26.08, 0.01


def cell(i: int, j: int, w: int = 1, h: int = 1) -> Polygon:
    """A box of w x h steps whose south-west corner is step (i, j) from (X0, Y0)."""
    return box(X0 + i * STEP, Y0 + j * STEP, X0 + (i + w) * STEP, Y0 + (j + h) * STEP)


def city() -> list[GridRecord]:
    """Two streets, two communities in S1, two grids in each community."""
    return [
        GridRecord("S1", "一号街道", "street", cell(0, 0, 2, 2), population=4000),
        GridRecord("S2", "二号街道", "street", cell(2, 0, 2, 2)),
        GridRecord("C11", "甲社区", "community", cell(0, 0, 1, 2), parent_code="S1"),
        GridRecord("C12", "乙社区", "community", cell(1, 0, 1, 2), parent_code="S1"),
        GridRecord("G111", "网格111", "grid", cell(0, 0), parent_code="C11", households=120),
        GridRecord("G112", "网格112", "grid", cell(0, 1), parent_code="C11"),
        GridRecord("G121", "网格121", "grid", cell(1, 0), parent_code="C12"),
        GridRecord("G122", "网格122", "grid", cell(1, 1), parent_code="C12"),
    ]


ORDER = ["S1", "S2", "C11", "C12", "G111", "G112", "G121", "G122"]


@pytest.fixture
def grids(session: Session) -> None:
    write_versions(session, city(), at=T0)
    session.commit()


def codes(answer: dict[str, Any]) -> list[str]:
    return [f["id"] for f in answer["features"]]


def test_list_is_a_feature_collection_ordered_by_depth_then_code(
        client: TestClient, auth: Auth, grids: None) -> None:
    answer = client.get("/api/v1/grids", headers=auth("patrol"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    assert body["type"] == "FeatureCollection"
    assert codes(body) == ORDER
    assert body["numberMatched"] == len(ORDER) == body["numberReturned"]
    assert [link["rel"] for link in body["links"]] == ["self"]
    feature = body["features"][ORDER.index("G111")]
    assert feature["type"] == "Feature" and feature["id"] == "G111"
    props = feature["properties"]
    assert {k: props[k] for k in ("code", "name", "level", "parent", "depth", "households",
                                  "version", "valid_to")} == {
        "code": "G111", "name": "网格111", "level": "grid", "parent": "C11", "depth": 3,
        "households": 120, "version": 1, "valid_to": None}
    assert dt.datetime.fromisoformat(props["valid_from"]) == T0
    geom = shape(feature["geometry"])
    assert geom.geom_type == "MultiPolygon"
    assert geom.equals(cell(0, 0))  # (lon, lat) order: x is the longitude


def test_level_parent_and_bbox_filters(client: TestClient, auth: Auth, grids: None) -> None:
    h = auth("patrol")
    assert codes(client.get("/api/v1/grids?level=grid", headers=h).json()) == ORDER[4:]
    assert codes(client.get("/api/v1/grids?parent=C12", headers=h).json()) == ["G121", "G122"]
    # A box inside S2 only, then one straddling G111/G121 (so C11, C12, S1 too).
    only_s2 = client.get("/api/v1/grids?bbox=119.325,26.085,119.33,26.09", headers=h).json()
    assert codes(only_s2) == ["S2"]
    straddle = client.get("/api/v1/grids?bbox=119.305,26.081,119.315,26.082&level=grid",
                          headers=h).json()
    assert codes(straddle) == ["G111", "G121"]


@pytest.mark.parametrize(("query", "field"), [
    ("level=comunity", "level"),
    ("bbox=1,2,3", "bbox"),
    ("bbox=a,b,c,d", "bbox"),
    ("bbox=119.33,26.08,119.32,26.09", "bbox"),
    ("bbox=26.08,119.30,26.09,119.31", "bbox"),
    ("bbox=119.3,26.08,190,26.09", "bbox"),
    ("limit=0", "limit"),
    ("limit=100000", "limit"),
    ("offset=-1", "offset"),
    ("at=yesterday", "at"),
])
def test_bad_filters_are_422_naming_the_field(client: TestClient, auth: Auth, grids: None,
                                              query: str, field: str) -> None:
    answer = client.get(f"/api/v1/grids?{query}", headers=auth("patrol"))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field
    assert detail["valid"]


def test_unknown_parent_is_404(client: TestClient, auth: Auth, grids: None) -> None:
    answer = client.get("/api/v1/grids?parent=NOPE", headers=auth("patrol"))
    assert answer.status_code == 404
    assert answer.json()["detail"]["field"] == "parent"


def test_paging_follows_next_links_to_the_end(client: TestClient, auth: Auth,
                                              grids: None) -> None:
    h = auth("patrol")
    seen: list[str] = []
    url: str | None = "/api/v1/grids?limit=3"
    pages = 0
    while url:
        body = client.get(url, headers=h).json()
        assert body["numberMatched"] == len(ORDER)
        assert body["numberReturned"] == len(body["features"]) <= 3
        seen += codes(body)
        pages += 1
        nexts = [link["href"] for link in body["links"] if link["rel"] == "next"]
        url = nexts[0] if nexts else None
        assert pages <= 5
    assert pages == 3
    assert seen == ORDER
    last = client.get("/api/v1/grids?limit=3&offset=6", headers=h).json()
    assert [link["rel"] for link in last["links"]] == ["self", "prev"]


def test_at_shows_the_version_in_force_then(client: TestClient, auth: Auth, session: Session,
                                            grids: None) -> None:
    moved = next(r for r in city() if r.code == "G111")
    moved.geom = cell(0, 0).union(box(X0 - STEP / 2, Y0, X0, Y0 + STEP))
    moved.name = "网格111(扩)"
    counts = write_versions(session, [moved], at=T1)
    session.commit()
    assert counts.updated == ["G111"]
    h = auth("patrol")

    now = client.get("/api/v1/grids/G111", headers=h).json()
    assert now["properties"]["version"] == 2 and now["properties"]["name"] == "网格111(扩)"
    assert shape(now["geometry"]).equals(moved.geom)

    before = client.get("/api/v1/grids/G111?at=2024-03-01", headers=h).json()
    assert before["properties"]["version"] == 1 and before["properties"]["name"] == "网格111"
    assert shape(before["geometry"]).equals(cell(0, 0))
    assert dt.datetime.fromisoformat(before["properties"]["valid_to"]) == T1

    listed = client.get("/api/v1/grids?level=grid&at=2024-03-01T12:00:00%2B08:00",
                        headers=h).json()
    assert {f["id"]: f["properties"]["version"] for f in listed["features"]}["G111"] == 1

    too_early = client.get("/api/v1/grids/G111?at=2023-12-01", headers=h)
    assert too_early.status_code == 404
    assert too_early.json()["detail"]["versions"][0]["version"] == 1

    hist = client.get("/api/v1/grids/G111/history", headers=h).json()
    assert [f["properties"]["version"] for f in hist["features"]] == [1, 2]
    assert hist["features"][1]["properties"]["valid_to"] is None


def test_children_of_a_grid(client: TestClient, auth: Auth, grids: None) -> None:
    h = auth("patrol")
    assert codes(client.get("/api/v1/grids/S1/children", headers=h).json()) == ["C11", "C12"]
    assert codes(client.get("/api/v1/grids/G111/children", headers=h).json()) == []
    assert codes(client.get("/api/v1/grids/S2/children", headers=h).json()) == []


@pytest.mark.parametrize("path", ["/api/v1/grids/NOPE", "/api/v1/grids/NOPE/children",
                                  "/api/v1/grids/NOPE/history"])
def test_unknown_code_is_404_with_a_clear_message(client: TestClient, auth: Auth, grids: None,
                                                  path: str) -> None:
    answer = client.get(path, headers=auth("patrol"))
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail["field"] == "code" and detail["value"] == "NOPE"
    assert "NOPE" in detail["message"] and "GET /api/v1/grids" in detail["valid"]
