"""The demo city's synthetic incidents: loaded through the import path, played through the loop."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from data.demo.load import DemoReport, load_demo
from geo.incidents.loop import ALLOWED, FINAL_STATUSES, PENDING_STATUSES
from geo.settings import Settings
from geo.store import db
from geo.store.db import session_scope

AT = dt.datetime(2025, 6, 2, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Fuzhou
COUNT = 3000


@pytest.fixture(scope="module")
def loaded(template_url: str) -> Iterator[tuple[str, DemoReport]]:
    """One database with the demo city and 3,000 incidents (shared by this module)."""
    template = make_url(template_url)
    url = template.set(database=f"patrolgrid_test_demo_{uuid.uuid4().hex[:12]}") \
        .render_as_string(hide_password=False)
    db.create_database(url, template=template.database)
    try:
        with session_scope(url) as s:
            report = load_demo(s, incidents=COUNT, at=AT, settings=Settings(database_url=url))
        yield url, report
    finally:
        db.drop_database(url)


@pytest.fixture
def s(loaded: tuple[str, DemoReport]) -> Iterator[Session]:
    with session_scope(loaded[0]) as session:
        yield session


def rows(s: Session, sql: str, **params: Any) -> list[Any]:
    return list(s.execute(text(sql), params).all())


def test_every_generated_incident_came_in_through_the_import(loaded: tuple[str, DemoReport],
                                                             s: Session) -> None:
    report = loaded[1]
    assert report.incidents is not None
    summary = report.incidents.imported
    assert (summary.rows, summary.accepted, summary.rejected) == (COUNT, COUNT, 0)
    assert rows(s, "SELECT count(*), count(DISTINCT external_id) FROM incident")[0] == \
        (COUNT, COUNT)
    intake = rows(s, "SELECT count(DISTINCT incident_id) FROM incident_event "
                     "WHERE data->>'kind' = 'intake' AND actor = 'demo:intake'")[0][0]
    assert intake == COUNT
    # the app reports were given in GCJ-02 and converted: the stored point moved 100-800 m
    moved = rows(s, """
        SELECT min(d), max(d), count(*) FROM (
          SELECT ST_Distance(i.geom::geography, ST_SetSRID(ST_MakePoint(
                   (e.data->'input'->>0)::float8, (e.data->'input'->>1)::float8),
                   4326)::geography) AS d
            FROM incident i JOIN incident_event e ON e.incident_id = i.id
           WHERE i.source = 'app' AND e.data->>'kind' = 'intake') x""")[0]
    assert moved[2] > 0.15 * COUNT and moved[0] > 100 and moved[1] < 800
    assert rows(s, "SELECT count(*) FROM incident WHERE source = 'app' "
                   "AND input_crs <> 'gcj02'")[0][0] == 0


def test_history_follows_the_allowed_transitions_forward_in_time(s: Session) -> None:
    pairs = rows(s, "SELECT DISTINCT from_status, to_status, data->>'kind' FROM incident_event")
    for from_status, to_status, kind in pairs:
        if kind == "intake":
            assert (from_status, to_status) == (None, "registered")
        elif kind in ("evaluation", "escalation") or (kind == "merge" and
                                                      to_status != "duplicate"):
            assert from_status == to_status
        else:
            assert to_status in ALLOWED[from_status], (from_status, to_status, kind)
    backwards = rows(s, """
        SELECT count(*) FROM (
          SELECT at < lag(at) OVER (PARTITION BY incident_id ORDER BY id) AS back
            FROM incident_event) x WHERE back""")[0][0]
    assert backwards == 0
    assert rows(s, "SELECT max(at) <= :at FROM incident_event", at=AT)[0][0]
    # each incident's status is the last status its events reached; closed_at is the last one
    mismatched = rows(s, """
        SELECT count(*) FROM incident i
          JOIN LATERAL (SELECT to_status, at FROM incident_event e WHERE e.incident_id = i.id
                         ORDER BY id DESC LIMIT 1) last ON true
         WHERE last.to_status <> i.status""")[0][0]
    assert mismatched == 0
    assert rows(s, """SELECT count(*) FROM incident i WHERE status = 'closed' AND closed_at <>
                      (SELECT max(at) FROM incident_event e WHERE e.incident_id = i.id
                          AND to_status = 'closed' AND from_status = 'verified')""")[0][0] == 0


def test_most_are_closed_some_open_some_overdue(loaded: tuple[str, DemoReport],
                                                s: Session) -> None:
    by_status = dict(rows(s, "SELECT status, count(*) FROM incident GROUP BY status"))
    assert by_status["closed"] > 0.85 * COUNT
    open_count = sum(n for st, n in by_status.items() if st not in FINAL_STATUSES)
    assert 0 < open_count < 0.1 * COUNT
    assert by_status.get("rejected", 0) > 0.01 * COUNT
    overdue = rows(s, "SELECT count(*), count(*) FILTER (WHERE escalation_level >= 1) "
                      "FROM incident WHERE status = ANY(:p) AND due_at < :at",
                   p=list(PENDING_STATUSES), at=AT)[0]
    assert overdue[0] > 0 and overdue[1] == overdue[0]  # escalated at load time
    report = loaded[1].incidents
    assert report is not None and report.overdue == overdue[0]
    evaluated = rows(s, "SELECT count(*), avg(evaluation_score) FROM incident "
                        "WHERE evaluation_score IS NOT NULL")[0]
    assert evaluated[0] > 0.5 * by_status["closed"] and 3.5 < evaluated[1] < 4.8
    assert rows(s, "SELECT count(*) FROM incident WHERE evaluation_score IS NOT NULL "
                   "AND status <> 'closed'")[0][0] == 0
    assert rows(s, "SELECT count(*) FROM incident WHERE status = 'duplicate' "
                   "AND duplicate_of IS NULL")[0][0] == 0


def test_daily_weekly_rhythm_hotspots_and_seasons(s: Session) -> None:
    hours = dict(rows(s, "SELECT extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')"
                         "::int, count(*) FROM incident GROUP BY 1"))
    assert sum(hours.get(h, 0) for h in (9, 10, 11)) > 4 * sum(hours.get(h, 0) for h in (2, 3, 4))
    days = dict(rows(s, "SELECT extract(isodow FROM reported_at AT TIME ZONE 'Asia/Shanghai')"
                        "::int, count(*) FROM incident GROUP BY 1"))
    assert days[1] > days[7] * 1.2
    span = rows(s, "SELECT min(reported_at), max(reported_at) FROM incident")[0]
    assert AT - dt.timedelta(days=366) < span[0] and span[1] < AT
    assert span[1] - span[0] > dt.timedelta(days=350)
    # hotspots: the busiest grid per km² sees far more than the median grid
    density = [r[0] for r in rows(s, """
        SELECT count(i.id) / (ST_Area(g.geom::geography) / 1e6)
          FROM grid g LEFT JOIN incident i ON i.grid_code = g.code
         WHERE g.valid_to IS NULL AND g.level = 'grid' GROUP BY g.code, g.geom ORDER BY 1""")]
    assert density[-1] > 5 * density[len(density) // 2]
    # waterlogged roads come in the typhoon season
    rain = rows(s, "SELECT count(*) FILTER (WHERE extract(month FROM reported_at AT TIME ZONE "
                   "'Asia/Shanghai') BETWEEN 6 AND 9), count(*) FROM incident "
                   "WHERE category_code = 'E0403'")[0]
    assert rain[0] > 0.6 * rain[1]


def test_loading_again_changes_nothing(loaded: tuple[str, DemoReport]) -> None:
    url = loaded[0]
    with session_scope(url) as s:
        before = rows(s, "SELECT count(*), max(version), (SELECT count(*) FROM incident_event) "
                         "FROM incident")[0]
        again = load_demo(s, incidents=COUNT, at=AT, settings=Settings(database_url=url))
        assert again.incidents is not None
        assert (again.incidents.imported.accepted, again.incidents.imported.duplicates) == \
            (0, COUNT)
        assert not again.changed
        assert rows(s, "SELECT count(*), max(version), (SELECT count(*) FROM incident_event) "
                       "FROM incident")[0] == before
        # a day later: other times, sources and keys would be drawn; they were stored again
        later = load_demo(s, incidents=COUNT, at=AT + dt.timedelta(days=1, hours=5),
                          settings=Settings(database_url=url))
        assert later.incidents is not None and later.incidents.imported.accepted == 0
        assert later.incidents.escalated == 0 and later.incidents.history.as_dict() == \
            again.incidents.history.as_dict()
        assert rows(s, "SELECT count(*), max(version), (SELECT count(*) FROM incident_event) "
                       "FROM incident")[0] == before
