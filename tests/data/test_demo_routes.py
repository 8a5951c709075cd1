"""The demo network (grid boundaries as streets) and the demo patrol routes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import h3
import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.city import build_city
from data.demo.load import load_demo
from data.demo.patrol_tracks import PatrolPlan, demo_plans, month_of_tracks
from data.demo.routes import BUDGET_M, SCHEDULE, load_demo_routes
from geo.routes.network import MetricFrame
from geo.settings import Settings


def test_demo_routes_are_closed_loops_on_the_demo_network_in_their_street(
        session: Session) -> None:
    first = load_demo(session)
    assert first.routes is not None and first.routes.network_changed
    assert len(first.routes.routes.created) == 10 and not first.routes.skipped
    rows = session.execute(text("""
        SELECT r.code, t.code AS team, t.grid_code, r.grid_codes, r.schedule,
               ST_Length(r.geom::geography) AS length_m,
               ST_NumGeometries(r.geom) AS parts, ST_IsClosed(ST_GeometryN(r.geom, 1)) AS closed,
               (SELECT max(ST_Distance(p.geom::geography, g.geom::geography))
                  FROM ST_DumpPoints(r.geom) p, grid g
                 WHERE g.code = t.grid_code AND g.valid_to IS NULL) AS off_street_m
          FROM patrol_route r JOIN team t ON t.id = r.team_id ORDER BY r.code""")).all()
    assert len(rows) == 10
    for row in rows:
        assert row.code == "R" + row.team and row.grid_codes == [row.grid_code]
        assert row.parts == 1 and row.closed and 500 < row.length_m <= BUDGET_M
        assert row.off_street_m < 0.01 and row.schedule == SCHEDULE
    # every vertex of every route lies on an edge of the stored demo network
    off = session.execute(text("""
        SELECT count(*) FROM patrol_route r, ST_DumpPoints(r.geom) p
         WHERE NOT EXISTS (SELECT 1 FROM street_edge e WHERE e.network = 'demo'
                            AND ST_DWithin(e.geom, p.geom, 1e-8))""")).scalar()
    assert off == 0
    again = load_demo(session)
    assert again.routes is not None and not again.routes.changed
    assert len(again.routes.routes.unchanged) == 10
    plans = demo_plans(session)
    assert [p.route_code for p in plans] == [r.code for r in rows]
    members = session.execute(text("""SELECT count(*) FROM worker w JOIN team t ON t.id = w.team_id
                                       WHERE t.kind = 'patrol' AND w.role = 'patrol'""")).scalar()
    assert sum(len(p.workers) for p in plans) == members


def test_incidents_turn_a_route_towards_the_hotspots(session: Session) -> None:
    load_demo(session)
    city = build_city()
    street = city.streets[0]
    team = f"T{street.code[:9]}-PATROL"
    before = session.execute(text("SELECT geom FROM patrol_route WHERE code = :c"),
                             {"c": "R" + team}).scalar()
    # a hotspot in the street: 12 incidents at one point inside a grid of the street
    spot = next(g for g in city.grids if g.parent_code in
                {c.code for c in city.communities if c.parent_code == street.code})
    point = spot.geom.representative_point()
    category = session.execute(text("SELECT min(code) FROM category")).scalar()
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    for i in range(12):
        session.execute(text("""INSERT INTO incident (source, category_code, geom, reported_at)
                                VALUES ('app', :c, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :t)"""),
                        {"c": category, "x": point.x, "y": point.y,
                         "t": at - dt.timedelta(days=i)})
    report = load_demo_routes(session, city)
    assert report.targets[team] == "hotspots+communities"
    assert report.routes.updated == ["R" + team] and len(report.routes.unchanged) == 9
    cell = h3.latlng_to_cell(point.y, point.x, Settings.model_construct().hotspot_resolution)
    ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(cell)]
    near = session.execute(text("""
        SELECT ST_DWithin(r.geom::geography,
                          ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY(
                              SELECT ST_MakePoint(x, y) FROM unnest(CAST(:xs AS float8[]),
                                                                    CAST(:ys AS float8[]))
                              AS u(x, y)))), 4326)::geography, 25.5),
               r.geom = CAST(:before AS geometry)
          FROM patrol_route r WHERE r.code = :c"""),
                           {"xs": [p[0] for p in [*ring, ring[0]]],
                            "ys": [p[1] for p in [*ring, ring[0]]],
                            "before": before, "c": "R" + team}).one()
    assert near[0] and not near[1]


# --------------------------------------------------------------------------- synthetic tracks

def _circle(radius_m: float = 300.0) -> np.ndarray:
    lon0, lat0 = 119.30, 26.08
    angle = np.linspace(0, 2 * np.pi, 73)
    kx = 111_320 * np.cos(np.radians(lat0))
    return np.column_stack([lon0 + radius_m * np.cos(angle) / kx,
                            lat0 + radius_m * np.sin(angle) / 110_574])


def test_a_month_of_synthetic_tracks_follows_the_schedule_with_real_noise() -> None:
    route = _circle()
    plan = PatrolPlan(route_code="R1", coords=route, schedule=SCHEDULE, workers=["P1", "P2"])
    tracks = list(month_of_tracks([plan], first_day=dt.date(2025, 5, 1), days=30, seed=7))
    again = list(month_of_tracks([plan], first_day=dt.date(2025, 5, 1), days=30, seed=7))
    assert all(np.array_equal(a.t_us, b.t_us) and np.array_equal(a.lon, b.lon)
               for a, b in zip(tracks, again, strict=True))
    assert 0.8 * 60 <= len(tracks) < 60  # some walks are missed
    assert {t.worker_code for t in tracks} == {"P1", "P2"}
    frame = MetricFrame(119.30, 26.08)
    line = frame.to_metric(shapely.LineString(route))
    zone = ZoneInfo("Asia/Shanghai")
    offsets, dupes, gaps = [], 0, 0
    for track in tracks:
        step = np.diff(track.t_us)
        assert (step >= 0).all()
        dupes += int((step == 0).sum())
        gaps += int((step > 60e6).sum())
        start = dt.datetime.fromtimestamp(track.t_us[0] / 1e6, dt.UTC).astimezone(zone)
        assert any(dt.time.fromisoformat(str(w["start"])) <= start.time()
                   <= dt.time.fromisoformat(str(w["end"])) for w in SCHEDULE)
        x, y = frame.xy(track.lon, track.lat)
        offsets.append(shapely.distance(line, shapely.points(x, y)))
        if track.missed:  # turned back: nobody near the middle of the part left out
            a, b = track.missed[0]
            middle = line.interpolate((a + b) / 2, normalized=True)
            near = shapely.distance(middle, shapely.points(x, y))
            assert np.quantile(near, 0.01) > 50
    off = np.concatenate(offsets)
    assert 2.5 < float(np.median(off)) < 7.0  # sigma 4 m per axis
    assert (off > 40).sum() > 0 and (off > 40).mean() < 0.01  # rare jumps
    assert dupes > 0 and gaps > 0
    assert any(t.missed for t in tracks) and sum(bool(t.missed) for t in tracks) < len(tracks) / 2
