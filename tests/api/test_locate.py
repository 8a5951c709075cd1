"""GET /api/v1/locate: chains, the boundary rule, nearest, swapped pairs, CRS, responsible."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from shapely.geometry import Point, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.crs import wgs84_to_gcj02
from geo.settings import Settings
from geo.store import roster
from geo.store.grids import GridRecord, write_versions
from geo.store.models import Category

Auth = Callable[[str], dict[str, str]]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
X0, Y0, STEP = 119.30, 26.08, 0.01
X1, X2, X3, X4 = (X0 + k * STEP for k in range(1, 5))
Y1, Y2 = Y0 + STEP, Y0 + 2 * STEP
MONDAY_NOON = "2024-06-03T12:00:00+08:00"
SATURDAY_NOON = "2024-06-08T12:00:00+08:00"


def cell(i: int, j: int, w: int = 1, h: int = 1) -> Any:
    return box(X0 + i * STEP, Y0 + j * STEP, X0 + (i + w) * STEP, Y0 + (j + h) * STEP)


def city() -> list[GridRecord]:
    """S1 = C11 + C12, each of two grids; S2 has no children; a grid near Chicago."""
    return [
        GridRecord("S1", "一号街道", "street", cell(0, 0, 2, 2)),
        GridRecord("S2", "二号街道", "street", cell(2, 0, 2, 2)),
        GridRecord("C11", "甲社区", "community", cell(0, 0, 1, 2), parent_code="S1"),
        GridRecord("C12", "乙社区", "community", cell(1, 0, 1, 2), parent_code="S1"),
        GridRecord("G111", "网格111", "grid", cell(0, 0), parent_code="C11"),
        GridRecord("G112", "网格112", "grid", cell(0, 1), parent_code="C11"),
        GridRecord("G121", "网格121", "grid", cell(1, 0), parent_code="C12"),
        GridRecord("G122", "网格122", "grid", cell(1, 1), parent_code="C12"),
        GridRecord("CHI", "Chicago beat", "grid", box(-87.70, 41.85, -87.60, 41.95)),
    ]


@pytest.fixture
def grids(session: Session) -> None:
    write_versions(session, city(), at=T0)
    session.commit()


def locate(client: TestClient, auth: Auth, lon: float, lat: float,
           **params: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/locate", params={"lon": lon, "lat": lat, **params},
                        headers=auth("patrol"))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def chain(body: dict[str, Any]) -> list[str]:
    return [g["code"] for g in body["chain"]]


def test_inside_point_gets_street_community_grid_chain(client: TestClient, auth: Auth,
                                                       grids: None) -> None:
    body = locate(client, auth, 119.305, 26.085)
    assert body["chain"] == [
        {"code": "S1", "name": "一号街道", "level": "street", "depth": 1},
        {"code": "C11", "name": "甲社区", "level": "community", "depth": 2},
        {"code": "G111", "name": "网格111", "level": "grid", "depth": 3},
    ]
    assert body["grid"] == "G111" and body["ties"] == [] and body["nearest"] is None
    assert body["crs"] == "wgs84" and body["wgs84"] == [119.305, 26.085]
    # No duty on G111: nobody is responsible, and the answer says why.
    assert body["responsible"] is None and "no worker" in body["responsible_reason"]


@pytest.mark.parametrize(("lon", "lat", "expected", "ties"), [
    # On the vertical edge G111 | G121 (and C11 | C12): the smaller code wins.
    (X1, (Y0 + Y1) / 2, ["S1", "C11", "G111"], ["G121"]),
    # On the horizontal edge G121 | G122: G121.
    ((X1 + X2) / 2, Y1, ["S1", "C12", "G121"], ["G122"]),
    # On the vertex shared by all four grids (and both communities): G111.
    (X1, Y1, ["S1", "C11", "G111"], ["G112", "G121", "G122"]),
    # On the street edge S1 | S2: G121 is the only grid, and its ancestors follow it.
    (X2, (Y0 + Y1) / 2, ["S1", "C12", "G121"], []),
    # On the outer corner of S1: still inside (covers counts the boundary).
    (X0, Y0, ["S1", "C11", "G111"], []),
])
def test_boundary_points_go_to_the_documented_grid(client: TestClient, auth: Auth, grids: None,
                                                    lon: float, lat: float,
                                                    expected: list[str],
                                                    ties: list[str]) -> None:
    body = locate(client, auth, lon, lat)
    assert chain(body) == expected
    assert body["ties"] == ties
    assert "smallest code" in body["rule"]


def test_outside_every_grid_gives_nearest_with_geodesic_metres(client: TestClient, auth: Auth,
                                                               grids: None) -> None:
    geod = Geod(ellps="WGS84")
    # South-east of S2's south-east corner: the corner is the nearest point.
    lon, lat = X4 + 0.01, Y0 - 0.008
    body = locate(client, auth, lon, lat)
    assert body["chain"] == [] and body["grid"] is None and body["responsible"] is None
    assert body["nearest"]["code"] == "S2"
    _, _, metres = geod.inv(lon, lat, X4, Y0)
    assert body["nearest"]["distance_m"] == pytest.approx(metres, abs=0.05)
    assert 1000 < metres < 2000
    # South-west of the corner shared by S1, C11 and G111: equal distances, the finest wins.
    lon, lat = X0 - 0.003, Y0 - 0.004
    body = locate(client, auth, lon, lat)
    assert body["nearest"]["code"] == "G111"
    _, _, metres = geod.inv(lon, lat, X0, Y0)
    assert body["nearest"]["distance_m"] == pytest.approx(metres, abs=0.05)


def test_swapped_pair_that_would_be_inside_a_grid_is_refused(client: TestClient, auth: Auth,
                                                             grids: None) -> None:
    # Chicago: (41.9, -87.65) is a valid lon/lat in the ocean, but swapped it is in CHI.
    answer = client.get("/api/v1/locate", params={"lon": 41.9, "lat": -87.65},
                        headers=auth("patrol"))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "swapped" in detail["message"] and "CHI" in detail["message"]
    assert detail["fields"] == ["lon", "lat"]
    assert "lon" in detail["message"] and "lat" in detail["message"]
    # The right order works, and a valid point near nothing is not called swapped.
    assert chain(locate(client, auth, -87.65, 41.9)) == ["CHI"]
    assert locate(client, auth, 41.9, -80.0)["chain"] == []


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"lon": 26.085, "lat": 119.305}, "lat", "swapped"),
    ({"lon": "nan", "lat": 26.0}, "lon", "finite"),
    ({"lon": 200, "lat": 26.0}, "lon", "180"),
    ({"lon": "east", "lat": 26.0}, "lon", ""),
    ({"lat": 26.0}, "lon", ""),
    ({"lon": 119.3, "lat": 26.08, "crs": "mars"}, "crs", ""),
    ({"lon": 119.3, "lat": 26.08, "at": "soon"}, "at", ""),
    ({"lon": 119.3, "lat": 26.08, "category": "nope"}, "category", ""),
])
def test_bad_inputs_are_422_naming_the_field(client: TestClient, auth: Auth, grids: None,
                                             params: dict[str, Any], field: str,
                                             words: str) -> None:
    answer = client.get("/api/v1/locate", params=params, headers=auth("patrol"))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field
    assert words in detail["message"]


def test_gcj02_input_is_converted_before_lookup(client: TestClient, auth: Auth,
                                                grids: None) -> None:
    wgs = (119.308, 26.085)  # inside G111, 2 m west of G121
    glon, glat = (float(v) for v in wgs84_to_gcj02(*wgs))
    # Read as WGS-84, the GCJ-02 numbers land in another grid ...
    assert locate(client, auth, glon, glat)["grid"] != "G111"
    # ... and said to be GCJ-02 they are converted back into G111.
    body = locate(client, auth, glon, glat, crs="gcj02")
    assert body["grid"] == "G111" and body["crs"] == "gcj02"
    assert body["wgs84"] == [pytest.approx(wgs[0], abs=1e-7), pytest.approx(wgs[1], abs=1e-7)]


def test_projected_crs_takes_easting_and_northing(client: TestClient, auth: Auth,
                                                  grids: None) -> None:
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
    easting, northing = to_utm.transform(119.315, 26.095)
    body = locate(client, auth, easting, northing, crs="EPSG:32650")
    assert body["grid"] == "G122" and body["crs"] == "EPSG:32650"
    far = locate(client, auth, easting + 50_000, northing, crs="EPSG:32650")
    assert far["chain"] == [] and far["nearest"]["code"] in {"S2"}
    answer = client.get("/api/v1/locate", params={"lon": "inf", "lat": northing,
                                                  "crs": "EPSG:32650"}, headers=auth("patrol"))
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "lon"


def test_at_locates_in_the_grids_of_that_date(client: TestClient, auth: Auth, session: Session,
                                              grids: None) -> None:
    grown = next(r for r in city() if r.code == "G111")
    grown.geom = cell(0, 0).union(box(X0 - STEP / 2, Y0, X0, Y1))
    write_versions(session, [grown], at=T1)
    session.commit()
    lon, lat = X0 - STEP / 4, (Y0 + Y1) / 2
    assert chain(locate(client, auth, lon, lat)) == ["G111"]
    then = locate(client, auth, lon, lat, at="2024-03-01")
    assert then["chain"] == [] and then["nearest"]["code"] == "G111"


# --------------------------------------------------------------------------- responsible

@pytest.fixture
def duties(session: Session, grids: None) -> dict[str, int]:
    session.add(Category(code="fire", name_zh="火情", name_en="fire", kind="event",
                         department="消防", sla_hours=1))
    a = roster.create_worker(session, code="W-A", name="甲", role="grid_worker", phone="138")
    b = roster.create_worker(session, code="W-B", name="乙", role="grid_worker")
    f = roster.create_worker(session, code="W-F", name="丙", role="grid_worker")
    day = [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "17:00"}]
    roster.create_duty(session, worker_id=a.id, grid_code="G111", kind="primary", shifts=day)
    backup = roster.create_duty(session, worker_id=b.id, grid_code="G111", kind="backup")
    roster.create_duty(session, worker_id=f.id, grid_code="G111", kind="primary",
                       categories=["fire"])
    session.commit()
    return {"A": a.id, "B": b.id, "F": f.id, "backup_duty": backup.id}


def test_responsible_is_the_primary_on_shift_else_the_backup(client: TestClient, auth: Auth,
                                                             session: Session,
                                                             duties: dict[str, int]) -> None:
    on = locate(client, auth, 119.305, 26.085, at=MONDAY_NOON)["responsible"]
    assert (on["code"], on["rule"], on["duty_kind"], on["phone"]) == ("W-A", "primary",
                                                                       "primary", "138")
    off = locate(client, auth, 119.305, 26.085, at=SATURDAY_NOON)["responsible"]
    assert (off["code"], off["rule"]) == ("W-B", "backup")
    fire = locate(client, auth, 119.305, 26.085, at=SATURDAY_NOON, category="fire")
    assert fire["responsible"]["code"] == "W-F"
    roster.delete_duty(session, duties["backup_duty"])
    session.commit()
    nobody = locate(client, auth, 119.305, 26.085, at=SATURDAY_NOON)
    assert nobody["responsible"] is None
    assert "on shift" in nobody["responsible_reason"]


def test_at_on_a_grid_retired_since_says_the_roster_has_no_history(
        client: TestClient, auth: Auth, session: Session, duties: dict[str, int]) -> None:
    """Its duties moved with its area: "no worker has a duty on this grid" was false. One
    whose duties stayed (no grid inherited it) still answers with them."""
    redrawn = next(r for r in city() if r.code == "G111")  # v2 from T1, retired a month on
    redrawn.geom = cell(0, 0).union(box(X0 - STEP / 2, Y0, X0, Y1))
    write_versions(session, [redrawn], at=T1)
    session.execute(text("UPDATE grid SET valid_to = :t WHERE code = 'G111' "
                         "AND valid_to IS NULL"), {"t": T1 + dt.timedelta(days=30)})
    session.commit()
    monday = MONDAY_NOON.replace("06-03", "05-06")
    kept = locate(client, auth, 119.305, 26.085, at=monday)
    assert kept["grid"] == "G111" and kept["responsible"]["code"] == "W-A"
    session.execute(text("DELETE FROM duty WHERE grid_code = 'G111'"))  # moved to heirs
    session.commit()
    then = locate(client, auth, 119.305, 26.085, at=monday)
    assert then["grid"] == "G111" and then["responsible"] is None
    assert "retired on 2024-07-01" in then["responsible_reason"], then
    assert "no worker has a duty" not in then["responsible_reason"]


def test_responsible_now_follows_the_clock(client: TestClient, auth: Auth, session: Session,
                                          settings: Settings, grids: None) -> None:
    now = dt.datetime.now(settings.tz)
    every_day = list(range(7))

    def hhmm(hours: float) -> str:
        return (now + dt.timedelta(hours=hours)).strftime("%H:%M")

    on = roster.create_worker(session, code="W-ON", name="在岗", role="grid_worker")
    off = roster.create_worker(session, code="W-OFF", name="下班", role="grid_worker")
    roster.create_duty(session, worker_id=off.id, grid_code="G122", kind="primary",
                       shifts=[{"days": every_day, "start": hhmm(2), "end": hhmm(3)}])
    roster.create_duty(session, worker_id=on.id, grid_code="G122", kind="backup",
                       shifts=[{"days": every_day, "start": hhmm(-1), "end": hhmm(1)}])
    session.commit()
    body = locate(client, auth, 119.315, 26.095)
    assert body["grid"] == "G122"
    assert (body["responsible"]["code"], body["responsible"]["rule"]) == ("W-ON", "backup")


def test_point_geometry_helper_is_consistent() -> None:
    # The boundary cases above rely on these vertices being exactly shared.
    assert cell(0, 0).touches(cell(1, 0)) and Point(X1, Y1).touches(cell(1, 1))


def test_nearest_is_geodesic_even_where_degrees_mislead(session: Session) -> None:
    """At 80° N a degree of longitude is 19 km and one of latitude 111 km: 40 grids half a
    degree north are nearer in degrees than one 1.5 degrees east, but 55 km away against
    29 km. The index's candidates by degrees held only the 40; the answer is the east one."""
    from geo.store import grid_queries

    decoys = [GridRecord(f"D{k:02d}", "北", "grid",
                         box(-0.4 + 0.02 * k, 80.5, -0.39 + 0.02 * k, 80.51)) for k in range(40)]
    east = GridRecord("EAST", "东", "grid", box(1.5, 79.995, 1.51, 80.005))
    write_versions(session, [*decoys, east], at=T0)
    found = grid_queries.nearest(session, 0.0, 80.0)
    assert found is not None
    row, metres = found
    _, _, expected = Geod(ellps="WGS84").inv(0.0, 80.0, 1.5, 80.0)
    assert row.code == "EAST" and metres == pytest.approx(expected, rel=1e-3)
