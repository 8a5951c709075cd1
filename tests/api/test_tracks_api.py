"""The track REST endpoints on PostGIS: uploads, cleaning, atomicity, queries, partitions."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.crs import gcj02_to_wgs84
from geo.store.db import session_scope
from geo.store.grids import GridRecord, write_versions
from geo.store.roster import create_worker
from geo.store.track_queries import load_points
from geo.store.tracks import save_track
from geo.tracks.clean import Limits
from geo.tracks.points import points_from_records
from tests.in_flight import assign_uncommitted
from tests.users import field_user

Auth = Callable[[str], dict[str, str]]
CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=CST)
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * float(np.cos(np.radians(26.085)))


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    """Two side-by-side grids and two patrol workers; returns the workers' ids."""
    write_versions(session, [
        GridRecord("G1", "网格一", "grid", box(119.30, 26.08, 119.31, 26.09)),
        GridRecord("G2", "网格二", "grid", box(119.31, 26.08, 119.32, 26.09)),
    ])
    ids = {code: create_worker(session, code=code, name=code, role="patrol").id
           for code in ("P-1", "P-2")}
    session.commit()
    return ids


def walk(n: int, *, start: dt.datetime = T0, lon0: float = 119.305, lat0: float = 26.085,
         east_mps: float = 1.4, north_mps: float = 0.0, step_s: int = 5) -> list[dict[str, Any]]:
    """Fixes of a walk every ``step_s`` s (times in +08:00)."""
    return [{"lon": lon0 + i * step_s * east_mps / M_PER_DEG_LON,
             "lat": lat0 + i * step_s * north_mps / M_PER_DEG_LAT,
             "t": (start + dt.timedelta(seconds=i * step_s)).isoformat()} for i in range(n)]


def post(client: TestClient, auth: Auth, body: dict[str, Any], role: str = "dispatcher",
         status: int = 201) -> dict[str, Any]:
    answer = client.post("/api/v1/tracks", json=body, headers=auth(role))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out


def get(client: TestClient, auth: Auth, status: int = 200, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/tracks", params=params, headers=auth("planner"))
    assert answer.status_code == status, answer.text
    out: dict[str, Any] = answer.json()
    return out


def scalar(session: Session, sql: str, **params: Any) -> Any:
    session.rollback()
    return session.execute(text(sql), params).scalar()


DAY: dict[str, Any] = {"from": "2024-05-01T00:00:00+08:00", "to": "2024-05-02T00:00:00+08:00"}


def test_upload_reports_cleaning_and_stores_the_clean_points(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    points = walk(100)
    points[50]["lat"] += 500 / M_PER_DEG_LAT  # a spike 500 m north
    points[20], points[21] = points[21], points[20]  # one point late
    points.append({**points[10], "lon": points[10]["lon"] + 0.0005})  # same time as [10]
    report = post(client, auth, {"worker_id": city["P-1"], "points": points})
    clean = report["cleaning"]
    assert (report["received"], report["stored"]) == (101, 99)
    assert (clean["duplicates"], clean["spikes"], clean["out_of_order"]) == (1, 1, 1)
    assert (clean["jumps"], clean["gaps"], clean["segments"]) == (0, 0, 1)
    assert clean["limits"] == {"max_speed_mps": 3.0, "max_gap_s": 120.0, "jitter_m": 10.0,
                               "max_burst": 3}
    assert clean["dropped"] == [{"index": 50, "reason": "spike"},
                                {"index": 100, "reason": "duplicate"}]
    assert scalar(session, "SELECT count(*) FROM track_point WHERE worker_id = :w",
                  w=city["P-1"]) == 99
    assert scalar(session, "SELECT count(*) FROM track_point WHERE ST_Y(geom) > 26.087") == 0
    last = walk(100)[99]
    row = session.execute(text("SELECT ST_X(last_geom), ST_Y(last_geom), last_seen_at FROM worker"
                               " WHERE id = :w"), {"w": city["P-1"]}).one()
    assert row[0] == pytest.approx(last["lon"]) and row[1] == pytest.approx(last["lat"])
    assert row[2] == dt.datetime.fromisoformat(last["t"])
    assert report["last_position"]["t"] == dt.datetime.fromisoformat(last["t"]).astimezone(
        dt.UTC).isoformat()


def test_a_patrol_user_uploads_only_as_their_own_worker(
        client: TestClient, auth: Auth, city: dict[str, int], db_url: str,
        session: Session) -> None:
    """Any patrol user could upload fixes for any worker: coverage, and the last known
    positions the nearest-worker rule chooses by, were theirs to write."""
    mine = field_user(db_url, city["P-1"])
    body = {"worker_id": city["P-2"], "points": walk(3)}
    other = client.post("/api/v1/tracks", json=body, headers=mine)
    assert other.status_code == 403
    detail = other.json()["detail"]
    assert (detail["field"], detail["value"]) == ("worker_id", city["P-2"])
    assert detail["valid"] == f"{city['P-1']} (your worker)"
    form = {"worker_id": str(city["P-2"])}
    files = [("file", ("w.gpx", _gpx(walk(3)), "application/gpx+xml"))]
    assert client.post("/api/v1/tracks/import", data=form, files=files,
                       headers=mine).status_code == 403
    unlinked = client.post("/api/v1/tracks", json=body, headers=auth("patrol"))
    assert unlinked.status_code == 403
    assert "patrolgrid tasks link" in unlinked.json()["detail"]["valid"]
    assert scalar(session, "SELECT count(*) FROM track_point") == 0  # nothing written
    own = client.post("/api/v1/tracks", json={**body, "worker_id": city["P-1"]}, headers=mine)
    assert own.status_code == 201, own.text
    assert post(client, auth, body)["stored"] == 3  # a dispatcher for any worker


def test_roles(client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    body = {"worker_id": city["P-1"], "points": walk(3)}
    assert client.post("/api/v1/tracks", json=body).status_code == 401
    post(client, auth, body, role="planner", status=403)
    post(client, auth, body, role="dispatcher", status=201)
    later = {"worker_id": city["P-1"], "points": walk(3, start=T0 + dt.timedelta(hours=1))}
    post(client, auth, later, role="admin", status=201)
    assert get(client, auth, worker="P-1", **DAY)["numberMatched"] == 2


@pytest.mark.parametrize(("change", "field", "status"), [
    (lambda p: p[73].update(t="2024-05-01T08:06:05"), "points[73].t", 422),
    (lambda p: p[5].update(lon=p[5]["lat"], lat=p[5]["lon"]), "points[5].lat", 422),
    (lambda p: p[9].update(lon="east"), "points[9].lon", 422),
    (lambda p: p[2].update(t="yesterday"), "points[2].t", 422),
    (lambda p: p[99].update(t="2999-01-01T00:00:00Z"), "points[99].t", 422),
    (lambda p: p[3].pop("t"), "points[3].t", 422),  # pydantic said points.3.t
])
def test_a_bad_point_refuses_the_whole_upload(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int],
        change: Callable[[list[dict[str, Any]]], Any], field: str, status: int) -> None:
    points = walk(100)
    change(points)
    answer = post(client, auth, {"worker_id": city["P-1"], "points": points}, status=status)
    assert answer["detail"]["field"] == field
    assert "valid" in answer["detail"] or "errors" in answer["detail"]
    if field == "points[5].lat":
        assert "swapped" in answer["detail"]["message"]
    assert scalar(session, "SELECT count(*) FROM track_point") == 0
    assert scalar(session, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                           "'track_point'::regclass") == 0
    assert scalar(session, "SELECT last_seen_at FROM worker WHERE id = :w", w=city["P-1"]) is None


def test_unknown_worker_crs_and_empty_uploads_are_refused(
        client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    missing = post(client, auth, {"worker_id": 999, "points": walk(3)}, status=404)
    assert missing["detail"]["field"] == "worker_id"
    crs = post(client, auth, {"worker_id": city["P-1"], "points": walk(3), "crs": "mars"},
               status=422)
    assert crs["detail"]["field"] == "crs"
    empty = post(client, auth, {"worker_id": city["P-1"], "points": []}, status=422)
    assert empty["detail"]["field"] == "points"


def test_gcj02_points_are_stored_in_wgs84(client: TestClient, auth: Auth, session: Session,
                                          city: dict[str, int]) -> None:
    points = walk(5)
    post(client, auth, {"worker_id": city["P-1"], "points": points, "crs": "gcj02"})
    stored = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM track_point ORDER BY t")
                             ).all()
    lon, lat = gcj02_to_wgs84([p["lon"] for p in points], [p["lat"] for p in points])
    assert np.allclose([s[0] for s in stored], lon, atol=1e-9)
    assert np.allclose([s[1] for s in stored], lat, atol=1e-9)


def test_resent_and_late_batches(client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    points = walk(120)
    body = {"worker_id": city["P-1"], "points": points[:40] + points[80:]}
    first = post(client, auth, body)
    assert first["cleaning"]["gaps"] == 1 and first["cleaning"]["segments"] == 2
    lines = get(client, auth, worker=city["P-1"], **DAY)
    assert [f["properties"]["points"] for f in lines["features"]] == [40, 40]
    again = post(client, auth, body)
    assert again["stored"] == 0 and again["cleaning"]["already_stored"] == 80
    late = post(client, auth, {"worker_id": city["P-1"], "points": points[40:80]})
    assert late["stored"] == 40 and late["stored_flags_changed"] == 1
    assert late["last_position"] is None  # older than the newest fix on record
    lines = get(client, auth, worker=city["P-1"], **DAY)
    assert [f["properties"]["points"] for f in lines["features"]] == [120]
    length = lines["features"][0]["properties"]["length_m"]
    assert length == pytest.approx(119 * 5 * 1.4, rel=0.01)


def _held(session: Session, worker: int) -> int:
    return int(scalar(session, "SELECT count(*) FROM track_held WHERE worker_id = :w", w=worker))


def test_fixes_after_a_ride_at_the_end_of_an_upload_wait_for_the_next_one(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    worker = city["P-1"]
    ride_start = T0 + dt.timedelta(seconds=100)  # 5 s after the walk, 1.1 km east
    walked, rode = walk(20), walk(10, start=ride_start, lon0=119.316)
    first = post(client, auth, {"worker_id": worker, "points": walked + rode[:3]})
    assert (first["stored"], first["held"], first["cleaning"]["spikes"]) == (20, 3, 0)
    assert first["last_position"]["lon"] == pytest.approx(walked[-1]["lon"])
    assert _held(session, worker) == 3
    lines = get(client, auth, worker=worker, **DAY)
    assert [f["properties"]["points"] for f in lines["features"]] == [20]
    body = {"worker_id": worker, "points": rode[3:]}
    dry = post(client, auth, {**body, "dry_run": True}, status=200)
    assert (dry["would_store"], dry["cleaning"]["released"]) == (10, 3)
    assert _held(session, worker) == 3
    second = post(client, auth, body)
    assert (second["stored"], second["held"], second["cleaning"]["released"]) == (10, 0, 3)
    assert second["cleaning"]["jumps"] == 1 and second["stored_flags_changed"] == 0
    assert second["start"] == dt.datetime.fromisoformat(rode[0]["t"]).astimezone(
        dt.UTC).isoformat()
    assert second["last_position"]["lon"] == pytest.approx(rode[-1]["lon"])
    assert _held(session, worker) == 0
    lines = get(client, auth, worker=worker, **DAY)
    assert [f["properties"]["points"] for f in lines["features"]] == [20, 10]


def test_held_glitches_are_dropped_when_the_walk_goes_on_where_it_was(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    worker = city["P-2"]
    points = walk(30)
    for point in points[20:23]:
        point["lat"] += 2000 / M_PER_DEG_LAT
    first = post(client, auth, {"worker_id": worker, "points": points[:23]})
    assert (first["stored"], first["held"]) == (20, 3)
    late = post(client, auth, {"worker_id": worker, "points": walk(
        5, start=T0 - dt.timedelta(hours=2))})  # a late batch long before: out of reach
    assert (late["stored"], late["held"], _held(session, worker)) == (5, 3, 3)
    second = post(client, auth, {"worker_id": worker, "points": points[23:]})
    assert (second["stored"], second["cleaning"]["held_dropped"]) == (7, 3)
    assert second["cleaning"]["jumps"] == 0 and _held(session, worker) == 0
    lines = get(client, auth, worker=worker, **DAY)
    assert [f["properties"]["points"] for f in lines["features"]] == [5, 27]
    assert scalar(session, "SELECT ST_Y(last_geom) FROM worker WHERE id = :w",
                  w=worker) == pytest.approx(points[-1]["lat"])


def test_a_resent_old_batch_and_the_true_fixes_of_held_glitches(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    worker = city["P-1"]
    good = walk(60, start=T0 - dt.timedelta(seconds=200))
    ride = walk(10, start=T0 + dt.timedelta(seconds=100), lon0=119.321)
    post(client, auth, {"worker_id": worker, "points": good + ride[:3]})
    assert _held(session, worker) == 3
    # an old batch sent again, its last fix within a pause's reach of the held ones
    again = post(client, auth, {"worker_id": worker, "points": good[:37]})
    assert (again["stored"], again["held"], again["cleaning"]["held_dropped"]) == (0, 3, 0)
    done = post(client, auth, {"worker_id": worker, "points": ride[3:]})
    assert (done["stored"], done["cleaning"]["released"]) == (10, 3)
    other = city["P-2"]
    bad = [dict(p) for p in good]
    for point in bad[40:43]:
        point["lat"] += 2000 / M_PER_DEG_LAT
    post(client, auth, {"worker_id": other, "points": bad[:43]})
    assert _held(session, other) == 3
    # the phone sends the true fixes of those times: they take the glitches' places
    fixed = post(client, auth, {"worker_id": other, "points": good[40:]})
    assert (fixed["stored"], fixed["cleaning"]["held_replaced"]) == (20, 3)
    assert fixed["cleaning"]["already_stored"] == 0
    count = scalar(session, "SELECT count(*) FROM track_point WHERE worker_id = :w", w=other)
    assert (count, _held(session, other)) == (60, 0)


def test_lines_by_grid_are_cut_where_the_track_leaves_it(
        client: TestClient, auth: Auth, city: dict[str, int]) -> None:
    out = walk(150)  # east from 119.305, across the G1/G2 border at 119.31
    back = walk(150, start=T0 + dt.timedelta(seconds=750), lon0=out[-1]["lon"], east_mps=-1.4)
    post(client, auth, {"worker_id": city["P-1"], "points": out + back})
    whole = get(client, auth, **DAY)
    assert whole["numberMatched"] == 1
    assert whole["features"][0]["geometry"]["type"] == "LineString"
    in_g1 = get(client, auth, grid="G1", **DAY)
    in_g2 = get(client, auth, grid="G2", **DAY)
    assert in_g1["numberMatched"] == 2 and in_g2["numberMatched"] == 1
    inside_g1 = sum(1 for p in out + back if p["lon"] <= 119.31)
    assert sum(f["properties"]["points"] for f in in_g1["features"]) == inside_g1
    assert sum(f["properties"]["points"] for f in in_g2["features"]) == 300 - inside_g1
    for feature in in_g1["features"]:
        assert all(x <= 119.31 for x, _ in feature["geometry"]["coordinates"])
    assert get(client, auth, grid="G2", worker="P-2", **DAY)["numberMatched"] == 0


def test_window_paging_and_query_errors(client: TestClient, auth: Auth,
                                        city: dict[str, int]) -> None:
    for code in ("P-1", "P-2"):
        first = walk(20)
        second = walk(20, start=T0 + dt.timedelta(minutes=10))  # 8 min pause: a gap
        post(client, auth, {"worker_id": city[code], "points": first + second})
    page = get(client, auth, limit=3, **DAY)
    assert (page["numberMatched"], page["numberReturned"]) == (4, 3)
    assert [f["properties"]["worker_code"] for f in page["features"]] == ["P-1", "P-1", "P-2"]
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    rest = client.get(nxt, headers=auth("patrol")).json()
    assert rest["numberReturned"] == 1 and rest["features"][0]["properties"]["worker_code"] == "P-2"
    window: dict[str, Any] = {"from": (T0 + dt.timedelta(seconds=52)).isoformat(),
                              "to": (T0 + dt.timedelta(minutes=11)).isoformat()}
    cut = get(client, auth, worker="P-2", **window)
    assert [f["properties"]["points"] for f in cut["features"]] == [9, 12]
    assert cut["features"][0]["properties"]["start"] == (
        T0 + dt.timedelta(seconds=55)).astimezone(dt.UTC).isoformat()
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({"from": "2024-05-02", "to": "2024-05-01"}, "to", 422),
        ({"from": "2024-01-01", "to": "2024-05-01"}, "from", 422),
        ({"from": "soon", "to": "2024-05-01"}, "from", 422),
        ({**DAY, "grid": "NOPE"}, "grid", 404),
        ({**DAY, "worker": "NOPE"}, "worker", 404),
        ({**DAY, "limit": 0}, "limit", 422),
    ]
    for params, field, status in cases:
        assert get(client, auth, status=status, **params)["detail"]["field"] == field


def test_a_track_across_months_goes_to_two_partitions(
        client: TestClient, auth: Auth, session: Session, city: dict[str, int]) -> None:
    start = dt.datetime(2024, 5, 31, 23, 58, tzinfo=dt.UTC)
    report = post(client, auth, {"worker_id": city["P-1"], "points": walk(48, start=start)})
    assert report["partitions"] == ["track_point_y2024m05", "track_point_y2024m06"]
    per_month = session.execute(text(
        "SELECT tableoid::regclass::text, count(*) FROM track_point GROUP BY 1 ORDER BY 1")).all()
    assert per_month == [("track_point_y2024m05", 24), ("track_point_y2024m06", 24)]
    window: dict[str, Any] = {"from": "2024-05-31T23:00:00Z", "to": "2024-06-01T01:00:00Z"}
    lines = get(client, auth, **window)
    assert [f["properties"]["points"] for f in lines["features"]] == [48]
    plan = session.execute(text(
        "EXPLAIN SELECT * FROM track_point WHERE t >= '2024-06-01T00:00Z' "
        "AND t < '2024-06-01T01:00Z'")).scalars().all()
    assert not any("y2024m05" in line for line in plan)  # pruned


def _gpx(points: list[dict[str, Any]]) -> str:
    rows = "".join(f'<trkpt lat="{p["lat"]}" lon="{p["lon"]}"><time>{p["t"]}</time></trkpt>'
                   for p in points)
    return (f'<?xml version="1.0"?><gpx version="1.1" creator="test" '
            f'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>{rows}</trkseg></trk></gpx>')


def test_multipart_uploads_of_every_format(client: TestClient, auth: Auth, session: Session,
                                           city: dict[str, int], shared_data: Path,
                                           db_url: str) -> None:
    plt = sorted((shared_data / "gps" / "geolife" / "000" / "Trajectory").glob("*.plt"))[1]
    gpx_points = walk(10, start=dt.datetime(2024, 5, 2, 8, tzinfo=CST))
    csv_points = walk(10, start=dt.datetime(2024, 5, 3, 8, tzinfo=CST))
    csv_text = "lon,lat,t\n" + "".join(f"{p['lon']},{p['lat']},{p['t']}\n" for p in csv_points)
    files: list[tuple[str, tuple[str, str | bytes, str]]] = [
        ("file", ("walk.gpx", _gpx(gpx_points), "application/gpx+xml")),
        ("file", (plt.name, plt.read_bytes(), "text/plain")),
        ("file", ("walk.csv", csv_text, "text/csv"))]
    form = {"worker_id": str(city["P-2"])}
    p2 = field_user(db_url, city["P-2"])  # a patrol user uploads as their own worker
    dry = client.post("/api/v1/tracks/import", files=files,
                      data={**form, "dry_run": "true"}, headers=p2)
    assert dry.status_code == 200, dry.text
    assert dry.json()["written"] is False
    assert scalar(session, "SELECT count(*) FROM track_point") == 0
    done = client.post("/api/v1/tracks/import", files=files, data=form, headers=p2)
    assert done.status_code == 201, done.text
    report = done.json()
    assert [s["file"] for s in report["sources"]] == ["walk.gpx", plt.name, "walk.csv"]
    assert report["received"] == 20 + report["sources"][1]["points"]
    assert report["stored"] == dry.json()["would_store"]
    assert scalar(session, "SELECT count(*) FROM track_point") == report["stored"]
    geojson = ('{"type": "FeatureCollection", "features": [' + ",".join(
        f'{{"type": "Feature", "properties": {{"t": "{p["t"]}"}}, "geometry": '
        f'{{"type": "Point", "coordinates": [{p["lon"]}, {p["lat"]}]}}}}'
        for p in walk(5, start=dt.datetime(2024, 5, 4, 8, tzinfo=CST))) + "]}")
    more = client.post("/api/v1/tracks/import", data=form, headers=auth("dispatcher"),
                       files=[("file", ("w.geojson", geojson, "application/geo+json"))])
    assert more.status_code == 201 and more.json()["stored"] == 5
    bad = client.post("/api/v1/tracks/import", data=form, headers=p2,
                      files=[("file", ("walk.kml", "<kml/>", "text/xml"))])
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "file"
    naive = client.post("/api/v1/tracks/import", data=form, headers=p2, files=[
        ("file", ("ok.csv", csv_text, "text/csv")),
        ("file", ("late.csv", "lon,lat,t\n119.3,26.08,2024-05-05T08:00:00\n", "text/csv"))])
    assert naive.status_code == 422 and naive.json()["detail"]["field"] == "late.csv[0].t"
    assert scalar(session, "SELECT count(*) FROM track_point") == report["stored"] + 5


def test_concurrent_uploads_of_one_batch_store_it_once(db_url: str, city: dict[str, int]) -> None:
    track = points_from_records(walk(200))
    barrier = threading.Barrier(2)
    reports: list[dict[str, Any]] = []

    def upload() -> None:
        with session_scope(db_url) as s:
            barrier.wait()
            reports.append(save_track(s, worker_id=city["P-1"], track=track,
                                      limits=Limits()).to_dict())

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["stored"] for r in reports) == [0, 200]
    assert sorted(r["cleaning"]["already_stored"] for r in reports) == [0, 200]
    with session_scope(db_url) as s:
        assert s.execute(text("SELECT count(*) FROM track_point")).scalar() == 200


def test_an_upload_does_not_wait_for_a_transaction_that_assigned_the_worker_an_incident(
        db_url: str, city: dict[str, int]) -> None:
    track = points_from_records(walk(20))
    with session_scope(db_url) as importing:  # a bulk import holds this until it commits
        assign_uncommitted(importing, city["P-1"], 119.305, 26.085)
        with session_scope(db_url) as uploading:
            uploading.execute(text("SET lock_timeout = '2s'"))  # it waited for the import
            report = save_track(uploading, worker_id=city["P-1"], track=track, limits=Limits())
            uploading.commit()
        assert report.to_dict()["stored"] == 20


def test_load_points_reads_the_window_as_arrays(client: TestClient, auth: Auth, session: Session,
                                                city: dict[str, int]) -> None:
    out = walk(150)
    back = walk(150, start=T0 + dt.timedelta(seconds=750), lon0=out[-1]["lon"], east_mps=-1.4)
    post(client, auth, {"worker_id": city["P-1"], "points": out + back})
    post(client, auth, {"worker_id": city["P-2"], "points": walk(10, lat0=26.0855)})
    session.rollback()
    lo, hi = dt.datetime.fromisoformat(DAY["from"]), dt.datetime.fromisoformat(DAY["to"])
    every = load_points(session, start=lo, end=hi)
    assert every.worker_id.tolist() == [city["P-1"]] * 300 + [city["P-2"]] * 10
    assert every.seg_start.tolist() == [True] + [False] * 299 + [True] + [False] * 9
    given = np.array([[p["lon"], p["lat"]] for p in out + back])
    assert np.allclose(np.c_[every.lon[:300], every.lat[:300]], given, atol=1e-12)
    assert every.t_us[0] == round(T0.timestamp()) * 1_000_000
    in_g1 = load_points(session, start=lo, end=hi, grid="G1", worker_id=city["P-1"])
    assert len(in_g1.t_us) == sum(1 for p in out + back if p["lon"] <= 119.31)
    assert int(in_g1.seg_start.sum()) == 2 and bool((in_g1.lon <= 119.31).all())
    later = load_points(session, start=lo + dt.timedelta(hours=9), end=hi)
    assert len(later.t_us) == 0 and later.lon.dtype == np.float64
