"""The demo's synthetic patrol tracks: loaded through the track store, once, and they
walk the demo routes (planned vs actual)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.load import load_demo
from geo.settings import Settings
from geo.store import coverage as store

AT = dt.datetime(2026, 11, 20, 4, tzinfo=dt.UTC)


def test_demo_tracks_follow_the_routes_and_load_once(session: Session, db_url: str) -> None:
    settings = Settings(database_url=db_url)
    report = load_demo(session, at=AT, track_days=2, settings=settings)
    tracks = report.tracks
    assert tracks is not None and tracks.walks > 0 and not tracks.skipped
    assert 0 < tracks.stored <= tracks.received
    assert tracks.first_day == "2026-11-18"
    stored = session.execute(text("SELECT count(*), min(t), max(t) FROM track_point")).one()
    assert stored[0] == tracks.stored
    tz = ZoneInfo("Asia/Shanghai")
    assert stored[1].astimezone(tz).date() >= dt.date(2026, 11, 18)
    assert stored[2].astimezone(tz).date() <= dt.date(2026, 11, 19)
    again = load_demo(session, at=AT, track_days=2, settings=settings)
    assert again.tracks is not None and again.tracks.skipped and not again.changed
    shares = []
    for (route_id,) in session.execute(text("SELECT id FROM patrol_route ORDER BY id")):
        answer = store.route_actual(session, route_id, dt.date(2026, 11, 18), tz=tz,
                                    tolerance_m=25.0, leg_m=store.longest_leg_m(settings))
        shares.append(answer["share"])
    # most routes are walked whole; some walks turn back or are skipped
    assert max(shares) > 0.95 and sum(s > 0.5 for s in shares) >= len(shares) // 2
