"""Fixtures of the map query tests: a small city whose answers are known, and the demo city.

``small_city`` (per test, on the test's own database): community C1 split into
grids G1 (west) and G2 (east), patrol team T1 (attached to C1) with members P-1
and P-2, grid workers W1 (primary of G1 on weekdays), W2 (primary of G2 at
weekends) and W3 (backup of G1 at all
hours, for category C02 only), volunteer V-1 (no duty:
on call), dispatcher D-1 and an inactive patrol worker X-1; one route R1 of T1
claiming C1, 1 km east along lat 26.084 from lon 119.302 (Monday and Wednesday
09:00-12:00); positions at known distances east of the point INCIDENT.

``demo_url`` (once per run): the demo city with 3,000 incidents and 3 days of
patrol tracks, loaded as ``patrolgrid demo load`` loads it; read-only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from shapely.geometry import LineString, MultiLineString, MultiPolygon, box
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from data.demo.load import load_demo
from geo.routes.validate import RouteIn
from geo.settings import Settings
from geo.store import db
from geo.store.grids import GridRecord, write_versions
from geo.store.roster import create_duty, create_worker
from geo.store.routes import create_route
from geo.store.tracks import save_track
from geo.tracks.clean import Limits
from geo.tracks.points import TrackInput, to_us

TZ = dt.timezone(dt.timedelta(hours=8))
MONDAY = dt.datetime(2026, 11, 9, 10, 0, tzinfo=TZ)
SATURDAY = dt.datetime(2026, 11, 14, 10, 0, tzinfo=TZ)
LAT0 = 26.084
M_LAT = 111_195.0
M_LON = M_LAT * float(np.cos(np.radians(LAT0)))
INCIDENT = (119.305, 26.0845)
#: Metres east of INCIDENT of each worker's last position (None: no position).
EAST_M = {"P-1": 200.0, "P-2": None, "W1": 500.0, "W2": 100.0, "W3": 300.0, "V-1": 2000.0,
          "D-1": 10.0, "X-1": 50.0}
WEEKDAYS = [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}]
WEEKENDS = [{"days": [5, 6], "start": "08:00", "end": "18:00"}]
#: Demo load moment and the days of tracks before it.
DEMO_AT = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)
DEMO_TRACK_DAYS = 3


@dataclass
class SmallCity:
    """Ids of the small city."""

    team_id: int
    workers: dict[str, int]
    route_id: int


def east(lon: float, metres: float) -> float:
    """``lon`` moved ``metres`` east at LAT0 (flat-earth, good to a few cm here)."""
    return lon + metres / M_LON


def walk(session: Session, worker: int, lon0: float, lat0: float, east_m: float,
         start: dt.datetime) -> None:
    """Store a walk east at 1.25 m/s, a fix every 5 s."""
    n = int(east_m / 6.25) + 1
    f = np.linspace(0.0, 1.0, n)
    track = TrackInput(lon=lon0 + f * east_m / M_LON, lat=np.full(n, lat0),
                       t_us=np.array([to_us(start + dt.timedelta(seconds=5 * i))
                                      for i in range(n)], dtype=np.int64))
    save_track(session, worker_id=worker, track=track, limits=Limits())


def incident(session: Session, lon: float, lat: float, reported_at: dt.datetime, *,
             status: str = "registered", category: str = "C01",
             due_at: dt.datetime | None = None, grid: str | None = "G1") -> int:
    """Insert one incident row; its id."""
    return int(session.execute(text("""
        INSERT INTO incident (source, category_code, geom, reported_at, status, due_at,
                              grid_code)
        VALUES ('app', :c, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :t, :s, :due, :g)
        RETURNING id"""), {"c": category, "x": lon, "y": lat, "t": reported_at, "s": status,
                           "due": due_at, "g": grid}).scalar_one())


@pytest.fixture
def small_city(session: Session) -> SmallCity:
    """The small city of the module docstring, committed."""
    write_versions(session, [
        GridRecord("C1", "社区", "community", MultiPolygon([box(119.30, 26.08, 119.32, 26.09)])),
        GridRecord("G1", "网格一", "grid", MultiPolygon([box(119.30, 26.08, 119.31, 26.09)]),
                   parent_code="C1"),
        GridRecord("G2", "网格二", "grid", MultiPolygon([box(119.31, 26.08, 119.32, 26.09)]),
                   parent_code="C1"),
    ])
    session.execute(text("""
        INSERT INTO team (code, name, kind, grid_code) VALUES ('T1', '巡防队', 'patrol', 'C1');
        INSERT INTO category (code, name_zh, name_en, kind, department, sla_hours)
        VALUES ('C01', '测一', 'test one', 'event', 'd', 8),
               ('C02', '测二', 'test two', 'event', 'd', 8)"""))
    team = int(session.execute(text("SELECT id FROM team WHERE code = 'T1'")).scalar_one())
    roles = {"P-1": "patrol", "P-2": "patrol", "W1": "grid_worker", "W2": "grid_worker",
             "W3": "grid_worker", "V-1": "volunteer", "D-1": "dispatcher", "X-1": "patrol"}
    ids = {code: create_worker(session, code=code, name=f"name {code}", role=role,
                               team_id=team if code.startswith("P") else None,
                               active=code != "X-1").id
           for code, role in roles.items()}
    create_duty(session, worker_id=ids["W1"], grid_code="G1", kind="primary", shifts=WEEKDAYS)
    create_duty(session, worker_id=ids["W2"], grid_code="G2", kind="primary", shifts=WEEKENDS)
    create_duty(session, worker_id=ids["W3"], grid_code="G1", kind="backup", shifts=[],
                categories=["C02"])
    create_duty(session, worker_id=ids["D-1"], grid_code="C1", kind="backup", shifts=[])
    for code, metres in EAST_M.items():
        if metres is not None:
            session.execute(text("UPDATE worker SET last_geom = ST_SetSRID(ST_MakePoint(:x, :y), "
                                 "4326) WHERE id = :id"),
                            {"x": east(INCIDENT[0], metres), "y": INCIDENT[1], "id": ids[code]})
    line = MultiLineString([LineString([(119.302, LAT0), (east(119.302, 1000.0), LAT0)])])
    route = create_route(session, RouteIn(name="早巡", geom=line, grid_codes=["C1"],
                                          code="R1", team="T1", schedule=[
                                              {"days": [0, 2], "start": "09:00",
                                               "end": "12:00"}]), tolerance_m=20.0)
    session.commit()
    return SmallCity(team_id=team, workers=ids, route_id=route.id)


@pytest.fixture(scope="session")
def demo_url(template_url: str) -> Iterator[str]:
    """The demo city with incidents and tracks, loaded once for every read-only test here."""
    template = make_url(template_url)
    url = template.set(database=f"patrolgrid_test_mapdemo_{uuid.uuid4().hex[:12]}") \
        .render_as_string(hide_password=False)
    db.create_database(url, template=template.database)
    try:
        with db.session_scope(url) as s:
            load_demo(s, incidents=3000, at=DEMO_AT, track_days=DEMO_TRACK_DAYS,
                      settings=Settings(database_url=url))
            s.commit()
        yield url
    finally:
        db.drop_database(url)


@pytest.fixture
def demo(demo_url: str) -> Iterator[Session]:
    """A session on the demo database (tests only read)."""
    with db.session_scope(demo_url) as s:
        yield s
