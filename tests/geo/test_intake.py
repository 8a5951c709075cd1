"""register_many on a real PostGIS: grid, snapping, worker fallbacks, idempotency, events."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from geo.crs import wgs84_to_gcj02
from geo.errors import InvalidInput
from geo.incidents.intake import Registered, due_at, register, register_many, screen
from geo.incidents.schema import IncidentIn, validate_incident
from geo.index_cache import get_index
from geo.settings import Settings
from geo.store import db
from geo.store.roster_write import CategoryRecord, upsert_categories
from tests.geo import intake_city as city
from tests.geo.intake_city import IN_C2_ONLY, IN_G11, IN_G12, MONDAY_10, MONDAY_22, SUNDAY_10


@pytest.fixture
def ids(session: Session) -> dict[str, int]:
    made = city.build(session)
    session.commit()
    return made


def item(lonlat: tuple[float, float] = IN_G11, **kw: Any) -> IncidentIn:
    raw = {"lon": lonlat[0], "lat": lonlat[1], "category": "E0101", "source": "hotline", **kw}
    return validate_incident(raw, tz=city.SH, now=MONDAY_10 + dt.timedelta(days=30))


def reg(session: Session, settings: Settings, *items: IncidentIn, **kw: Any) -> list[Registered]:
    return register_many(session, list(items), actor="tester", settings=settings,
                         index=get_index(session), **kw)


def one(session: Session, settings: Settings, it: IncidentIn, **kw: Any) -> Registered:
    return register(session, it, actor="tester", settings=settings, index=get_index(session),
                    **kw)


COUNTS = {"incident": text("SELECT count(*) FROM incident"),
          "incident_event": text("SELECT count(*) FROM incident_event")}


def count(session: Session, table: str) -> int:
    return int(session.execute(COUNTS[table]).scalar_one())


def events(session: Session, incident_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text(
        "SELECT actor, from_status, to_status, note, data FROM incident_event "
        "WHERE incident_id = :i ORDER BY id"), {"i": incident_id}).mappings()]


# --------------------------------------------------------------------------- grid + worker

def test_primary_on_duty_gets_it_and_it_is_dispatched(session: Session, settings: Settings,
                                                      ids: dict[str, int]) -> None:
    r = one(session, settings, item(reported_at=MONDAY_10.isoformat(), external_id="A1"))
    assert r.created and r.status == "dispatched" and r.rule == "primary"
    assert r.worker is not None and (r.worker.id, r.worker.code) == (ids["WG11"], "WG11")
    assert r.grid is not None and r.grid.code == "G11" and r.grid.name == "网格11"
    assert [c[0] for c in r.grid.chain] == ["S1", "C1", "G11"]
    assert r.due_at == MONDAY_10 + dt.timedelta(hours=4)
    assert r.snapped_m is None and r.unassigned_reason is None and r.candidate_of is None
    stored = session.execute(text(
        "SELECT grid_code, worker_id, rule, status, ST_X(geom) x, ST_Y(geom) y, due_at, "
        "external_id FROM incident WHERE id = :i"), {"i": r.id}).mappings().one()
    assert dict(stored) == {"grid_code": "G11", "worker_id": ids["WG11"], "rule": "primary",
                            "status": "dispatched", "x": IN_G11[0], "y": IN_G11[1],
                            "due_at": r.due_at, "external_id": "A1"}
    trail = events(session, r.id)
    assert [(e["from_status"], e["to_status"]) for e in trail] == [
        (None, "registered"), ("registered", "dispatched")]
    assert trail[0]["actor"] == "tester"
    assert trail[0]["data"] == {"kind": "intake", "grid": "G11", "worker_id": ids["WG11"],
                                "rule": "primary", "crs": "wgs84"}
    assert trail[1]["data"]["kind"] == "auto_dispatch"


def test_fallback_chain(session: Session, settings: Settings, ids: dict[str, int]) -> None:
    night, manager, nearest, community = reg(
        session, settings,
        item(reported_at=MONDAY_22.isoformat()),                       # G11 at night: backup
        item(IN_G12, reported_at=MONDAY_10.isoformat()),               # WG12 only does C0101
        item(IN_G12, reported_at=SUNDAY_10.isoformat()),               # manager off on Sunday
        item(IN_C2_ONLY, reported_at=MONDAY_10.isoformat()))           # C2 has nobody
    assert (night.rule, night.worker and night.worker.code) == ("backup", "WB11")
    assert (manager.rule, manager.worker and manager.worker.code) == ("community_manager",
                                                                        "MC1")
    assert (nearest.rule, nearest.worker and nearest.worker.code) == ("street_nearest",
                                                                        "P-NEAR")
    assert community.grid is not None and community.grid.code == "C2"
    assert [c[0] for c in community.grid.chain] == ["S1", "C2"]
    # P-FAR (120.038) is nearer to 120.035 than P-NEAR; the inactive P-OFF never counts.
    assert (community.rule, community.worker and community.worker.code) == ("street_nearest",
                                                                            "P-FAR")
    limited = one(session, settings, item(IN_G12, category="C0101",
                                          reported_at=SUNDAY_10.isoformat()))
    assert (limited.rule, limited.worker and limited.worker.code) == ("primary", "WG12")


def test_nobody_on_duty_stays_registered_with_the_reason(session: Session, settings: Settings,
                                                         ids: dict[str, int]) -> None:
    session.execute(text("UPDATE worker SET last_geom = NULL"))
    r = one(session, settings, item(IN_G12, reported_at=SUNDAY_10.isoformat()))
    assert r.worker is None and r.rule == "none" and r.status == "registered"
    assert r.grid is not None and r.grid.code == "G12"
    assert r.unassigned_reason is not None and "G12" in r.unassigned_reason
    assert [e["to_status"] for e in events(session, r.id)] == ["registered"]


def test_auto_dispatch_can_be_turned_off(session: Session, settings: Settings,
                                         ids: dict[str, int]) -> None:
    manual = settings.model_copy(update={"auto_dispatch": False})
    r = one(session, manual, item(reported_at=MONDAY_10.isoformat()))
    assert r.status == "registered" and r.worker is not None and r.rule == "primary"
    assert len(events(session, r.id)) == 1


# --------------------------------------------------------------------------- outside grids

def test_snap_within_tolerance_then_unassigned_beyond(session: Session, settings: Settings,
                                                      ids: dict[str, int]) -> None:
    near, far = reg(session, settings, item((120.005, 29.9999), reported_at=MONDAY_10.isoformat()),
                    item((120.005, 29.99), reported_at=MONDAY_10.isoformat()))
    assert near.grid is not None and near.grid.code == "G11"
    assert near.snapped_m is not None and 10.5 < near.snapped_m < 11.5  # 0.0001° of latitude
    assert near.worker is not None and near.worker.code == "WG11"
    assert far.grid is None and far.worker is None and far.rule == "none"
    assert far.status == "registered" and far.snapped_m is None
    assert far.unassigned_reason is not None and "30 m" in far.unassigned_reason
    stored = session.execute(text("SELECT grid_code, unassigned_reason FROM incident "
                                  "WHERE id = :i"), {"i": far.id}).one()
    assert stored == (None, far.unassigned_reason)
    tight = settings.model_copy(update={"snap_tolerance_m": 5.0})
    again = one(session, tight, item((120.005, 29.9999), external_id="tight"))
    assert again.grid is None and "5 m" in (again.unassigned_reason or "")


def test_swapped_pair_inside_a_grid_is_refused(session: Session, settings: Settings,
                                               ids: dict[str, int]) -> None:
    swapped = item((41.90, -87.65))  # valid ranges, but (-87.65, 41.90) is in CHI
    with pytest.raises(InvalidInput) as info:
        one(session, settings, swapped)
    assert info.value.field == "lon" and "look swapped" in info.value.message
    assert info.value.extra["swapped_grid"] == "CHI"
    assert count(session, "incident") == 0
    right = one(session, settings, item((-87.65, 41.90)))
    assert right.grid is not None and right.grid.code == "CHI"


def test_gcj02_input_is_converted_and_the_original_kept(session: Session, settings: Settings,
                                                        ids: dict[str, int]) -> None:
    wgs = (120.008, 30.01)  # in G11, 200 m from G12
    glon, glat = wgs84_to_gcj02(*wgs)
    r = one(session, settings, item((float(glon), float(glat)), crs="gcj02",
                                    reported_at=MONDAY_10.isoformat()))
    assert r.crs == "gcj02" and r.grid is not None and r.grid.code == "G11"
    assert r.lon == pytest.approx(wgs[0], abs=1e-9)
    assert r.lat == pytest.approx(wgs[1], abs=1e-9)
    data = events(session, r.id)[0]["data"]
    assert data["crs"] == "gcj02" and data["input"] == [float(glon), float(glat)]
    # The same numbers read as WGS-84 land about 500 m away, in G12.
    plain = one(session, settings, item((float(glon), float(glat))))
    assert plain.grid is not None and plain.grid.code == "G12"


def test_projected_input(session: Session, settings: Settings, ids: dict[str, int]) -> None:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32651, always_xy=True).transform(*IN_G12)
    r = one(session, settings, item((x, y), crs="EPSG:32651", category="C0101"))
    assert r.grid is not None and r.grid.code == "G12"
    assert r.lon == pytest.approx(IN_G12[0], abs=1e-7)


def test_projected_input_beyond_its_area_is_refused_not_wrapped(
        session: Session, settings: Settings, ids: dict[str, int]) -> None:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*IN_G12)
    # two turns of the world east of G12: Web Mercator wraps it back onto G12
    wrapped = item((x + 2 * 40_075_016.68557849, y), crs="EPSG:3857", category="C0101")
    with pytest.raises(InvalidInput) as info:
        one(session, settings, wrapped)
    assert info.value.field == "lon" and "EPSG:3857 (lon -180 to 180" in (info.value.valid or "")
    assert count(session, "incident") == 0


def test_without_grids_everything_is_kept_unassigned(session: Session,
                                                     settings: Settings) -> None:
    upsert_categories(session, [CategoryRecord("E0101", "暴露垃圾", "Rubbish", "event", "环卫处",
                                               4)])
    r = one(session, settings, item((1.0, 2.0)))
    assert r.created and r.grid is None and r.rule == "none" and r.status == "registered"
    assert r.unassigned_reason is not None and "no current grids" in r.unassigned_reason


# --------------------------------------------------------------------------- refusals

def test_unknown_category_refused_unless_collected(session: Session, settings: Settings,
                                                   ids: dict[str, int]) -> None:
    bad = replace(item(), category="X999", row=3)
    with pytest.raises(InvalidInput) as info:
        reg(session, settings, item(), bad)
    err = info.value
    assert (err.field, err.value, err.extra["row"]) == ("category", "X999", 3)
    assert err.valid is not None and "C0101" in err.valid and "E0101" in err.valid
    assert count(session, "incident") == 0
    refused: list[tuple[IncidentIn, InvalidInput]] = []
    done = reg(session, settings, item(), bad, item(IN_G12),
               on_reject=lambda i, e: refused.append((i, e)))
    assert len(done) == 2 and [i.row for i, _ in refused] == [3]
    assert screen(session, [item(), bad], index=get_index(session), settings=settings)[1] \
        is not None


# --------------------------------------------------------------------------- idempotency

def test_retries_return_the_same_incident(session: Session, settings: Settings,
                                          ids: dict[str, int]) -> None:
    first = one(session, settings, item(external_id="HL-1", reported_at=MONDAY_10.isoformat()))
    n_events = count(session, "incident_event")
    again = one(session, settings, item(external_id="HL-1", description="typed again"))
    assert (again.id, again.created, first.created) == (first.id, False, True)
    assert again.grid == first.grid and again.worker == first.worker and again.rule == "primary"
    assert count(session, "incident") == 1 and count(session, "incident_event") == n_events
    other_source = one(session, settings, item(external_id="HL-1", source="app"))
    assert other_source.created and other_source.id != first.id
    keyed = one(session, settings, item(idempotency_key="key-1"))
    assert one(session, settings, item(IN_G12, idempotency_key="key-1")).id == keyed.id
    assert count(session, "incident") == 3


def test_repeats_inside_a_batch_and_against_stored(session: Session, settings: Settings,
                                                   ids: dict[str, int]) -> None:
    stored = one(session, settings, item(external_id="E-0"))
    batch = [item(external_id="E-1"), item(external_id="E-0"), item(external_id="E-1"),
             item(external_id="E-2", idempotency_key="K"), item(idempotency_key="K")]
    batch = [replace(b, row=i + 1) for i, b in enumerate(batch)]
    out = reg(session, settings, *batch)
    assert [r.created for r in out] == [True, False, False, True, False]
    assert out[1].id == stored.id and out[2].id == out[0].id and out[4].id == out[3].id
    assert [r.row for r in out] == [1, 2, 3, 4, 5]
    assert count(session, "incident") == 3


def test_concurrent_retries_create_one_incident(db_url: str, settings: Settings,
                                                ids: dict[str, int]) -> None:
    barrier = threading.Barrier(8)
    got: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with db.session_scope(db_url) as s:
                index = get_index(s)
                barrier.wait()
                r = register(s, item(external_id="RACE", reported_at=MONDAY_10.isoformat()),
                             actor="racer", settings=settings, index=index)
                got.append(r.id)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == 8 and len(set(got)) == 1
    with db.session_scope(db_url) as s:
        assert count(s, "incident") == 1
        assert count(s, "incident_event") == 2  # registered + dispatched, once


# --------------------------------------------------------------------------- batches

@pytest.fixture
def statements(session: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = session.get_bind().engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_big_batch_takes_a_handful_of_statements(session: Session, settings: Settings,
                                                   ids: dict[str, int],
                                                   statements: list[str]) -> None:
    get_index(session)
    statements.clear()
    base = MONDAY_10
    batch = [item((120.0005 + 0.00001 * k, 30.0001 + 0.0000095 * (k % 2000)),
                  external_id=f"B{k}", category="C0101" if k % 3 else "E0101",
                  reported_at=(base + dt.timedelta(minutes=37 * k % 10080)).isoformat())
             for k in range(3000)]
    out = reg(session, settings, *batch)
    assert len(out) == 3000 and all(r.created for r in out)
    assert len(statements) <= 12, statements
    assert count(session, "incident") == 3000
    assert count(session, "incident_event") == 3000 + sum(r.status == "dispatched" for r in out)
    # The batch answers equal one-by-one answers of the same reports.
    for k in (0, 1, 2, 500, 1999, 2999):
        alone = one(session, settings, replace(batch[k], external_id=f"alone-{k}"))
        assert (alone.grid, alone.worker, alone.rule) == (out[k].grid, out[k].worker,
                                                          out[k].rule)


def test_reported_at_defaults_to_now(session: Session, settings: Settings,
                                     ids: dict[str, int]) -> None:
    r = one(session, settings, item(), now=MONDAY_22)
    assert r.reported_at == MONDAY_22 and r.worker is not None and r.worker.code == "WB11"
    before = dt.datetime.now(dt.UTC)
    r2 = one(session, settings, item(IN_G12))
    assert before <= r2.reported_at <= dt.datetime.now(dt.UTC)


def test_duplicate_candidates_are_linked_not_dropped(session: Session, settings: Settings,
                                                     ids: dict[str, int]) -> None:
    first = one(session, settings, item(reported_at=MONDAY_10.isoformat()))
    close = one(session, settings, item((IN_G11[0] + 0.0002, IN_G11[1]),
                                        reported_at=(MONDAY_10 + dt.timedelta(hours=1))
                                        .isoformat()))
    later = one(session, settings, item(reported_at=(MONDAY_10 + dt.timedelta(hours=4))
                                        .isoformat()))
    assert close.created and close.candidate_of == first.id
    assert later.candidate_of is None and first.candidate_of is None
    assert close.worker is not None  # still routed and dispatched like any other


@pytest.mark.parametrize(("local", "hours"), [("2026-03-08T01:30", 4), ("2026-11-01T00:30", 24)])
def test_the_sla_is_elapsed_hours_across_a_dst_change(local: str, hours: float) -> None:
    """Across Chicago's DST changes a 4 h SLA gave 3 h and a 24 h one 25 h (the wall clock)."""
    reported = dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("America/Chicago"))
    due = due_at(reported, hours)
    assert due.astimezone(dt.UTC) - reported.astimezone(dt.UTC) == dt.timedelta(hours=hours)
    assert due.tzinfo == reported.tzinfo
