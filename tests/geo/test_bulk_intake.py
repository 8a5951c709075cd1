"""The bulk intake (COPY, roster once, duplicates in memory) stores what register_many does."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents import bulk as bulk_module
from geo.incidents.bulk import BulkIntake
from geo.incidents.intake import register_many
from geo.incidents.schema import IncidentIn, validate_incident
from geo.index_cache import get_index
from geo.settings import Settings
from geo.store.db import session_scope
from tests.geo import intake_city as city
from tests.geo.intake_city import MONDAY_10

NOW = MONDAY_10 + dt.timedelta(days=30)


@pytest.fixture
def ids(session: Session) -> dict[str, int]:
    made = city.build(session)
    session.commit()
    return made


def _items(n: int, seed: int, prefix: str = "B") -> list[IncidentIn]:
    """Reports clustered on a few spots (so that duplicates happen), some outside every
    grid (snapped or unassigned), both categories, times over three days, repeated ids."""
    where = random.Random(1)
    spots = [(where.uniform(119.9995, 120.0405), where.uniform(29.9995, 30.0205))
             for _ in range(25)]
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        lon, lat = rnd.choice(spots)
        lon, lat = lon + rnd.uniform(-0.0004, 0.0004), lat + rnd.uniform(-0.0004, 0.0004)
        ext = f"{prefix}{k - 1 if k % 37 == 36 else k}"
        at = MONDAY_10 + dt.timedelta(minutes=rnd.randrange(0, 3 * 24 * 60))
        out.append(validate_incident(
            {"lon": lon, "lat": lat, "category": rnd.choice(["E0101", "C0101"]),
             "source": rnd.choice(["hotline", "app"]), "external_id": ext,
             "reported_at": at.isoformat(), "description": f"d{k}" if k % 3 else None},
            row=k + 1, tz=city.SH, now=NOW))
    return out


def _stored(session: Session, settings: Settings, known: IncidentIn) -> None:
    """Incidents already there: open ones (some candidates), closed ones, and one with the
    external id of ``known``."""
    first = register_many(session, _items(120, seed=99, prefix="E"), actor="earlier",
                          settings=settings, index=get_index(session), now=NOW)
    session.execute(text("UPDATE incident SET status = 'closed' WHERE id = ANY(:i)"),
                    {"i": [r.id for r in first[:40]]})
    session.execute(text("UPDATE incident SET external_id = :e, source = :s WHERE id = :i"),
                    {"e": known.external_id, "s": known.source, "i": first[50].id})


def _snapshot(session: Session) -> tuple[list[Any], list[Any]]:
    incidents = session.execute(text("""
        SELECT i.source, i.external_id, i.category_code, i.grid_code, i.grid_id, i.worker_id,
               i.rule, i.status, i.snapped_m, i.unassigned_reason, i.reported_at, i.due_at,
               ST_AsText(i.geom), i.input_crs, i.description, i.attrs,
               t.source AS cand_source, t.external_id AS cand_ext, t.actor_like
          FROM incident i
          LEFT JOIN LATERAL (SELECT o.source, o.external_id,
                                    (SELECT min(actor) FROM incident_event WHERE incident_id = o.id)
                                    AS actor_like
                               FROM incident o WHERE o.id = i.candidate_of) t ON true
         WHERE EXISTS (SELECT 1 FROM incident_event e WHERE e.incident_id = i.id
                        AND e.actor = 'bulk')
         ORDER BY i.source, i.external_id""")).all()
    events = session.execute(text("""
        SELECT i.source, i.external_id, e.actor, e.from_status, e.to_status, e.note, e.data
          FROM incident_event e JOIN incident i ON i.id = e.incident_id
         WHERE e.actor = 'bulk'
         ORDER BY i.source, i.external_id, e.id""")).all()
    return incidents, events


@pytest.mark.parametrize(("in_memory", "ahead"), [(True, False), (False, False),
                                                   (True, True), (False, True)])
def test_bulk_intake_stores_what_register_many_stores(session: Session, settings: Settings,
                                                      ids: dict[str, int], in_memory: bool,
                                                      ahead: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """In memory, and (a window holding more stored incidents than the cap) by SQL; each
    batch written at once, and (as the file import does) one batch behind its search."""
    if not in_memory:
        monkeypatch.setattr(bulk_module, "WINDOW_CAP", 0)
        monkeypatch.setattr(bulk_module, "WINDOW_PER_ROW", 0)
    items = _items(900, seed=7)
    _stored(session, settings, items[5])
    chunks = [items[k:k + 300] for k in range(0, len(items), 300)]
    index = get_index(session)
    with session.begin_nested() as savepoint:
        by_sql = [register_many(session, chunk, actor="bulk", settings=settings, index=index,
                                now=NOW) for chunk in chunks]
        expected = _snapshot(session)
        savepoint.rollback()
    assert _snapshot(session) == ([], [])
    bulk = BulkIntake(session, actor="bulk", settings=settings, index=index, now=NOW,
                      on_reject=lambda item, exc: pytest.fail(str(exc)))
    assert bulk.preload()
    if ahead:
        started = [bulk.write_ahead(p) for chunk in chunks
                   if (p := bulk.prepare(chunk)) is not None]
        counts = [*started[1:], bulk.flush()]
    else:
        counts = [bulk.write(p) for chunk in chunks if (p := bulk.prepare(chunk)) is not None]
    bulk.close()
    got = _snapshot(session)
    assert got == expected
    linked = sum(1 for r in got[0] if r.cand_ext is not None)
    assert linked > 50  # the clusters make duplicate candidates, some to stored incidents
    assert any(r.actor_like == "earlier" for r in got[0] if r.cand_ext is not None)
    # and some to the rows of an earlier batch of this import (kept in memory, not re-read)
    chunk_of = {i.external_id: k // 300 for k, i in enumerate(items)}
    assert any(r.actor_like == "bulk" and chunk_of[r.cand_ext] < chunk_of[r.external_id]
               for r in got[0] if r.cand_ext is not None)
    assert any(r.unassigned_reason for r in got[0]) and any(r.snapped_m for r in got[0])
    for mine, theirs in zip(counts, by_sql, strict=True):
        assert mine.created == sum(r.created for r in theirs)
        assert mine.duplicates == sum(not r.created for r in theirs)
        assert mine.candidates == sum(r.candidate_of is not None for r in theirs if r.created)
    # items[5] was stored before: the first batch's optimistic COPY met it, the others not
    assert (bulk.clashes, bulk.fallbacks) == (1, 0)


def test_a_key_stored_meanwhile_is_looked_up_and_counted_as_a_duplicate(
        db_url: str, session: Session, settings: Settings, ids: dict[str, int]) -> None:
    """Another transaction stores one of the batch's external ids while the batch's COPY
    runs: the COPY waits for it, fails on the unique index, the batch's keys are looked
    up and the batch written again without that row, which counts as a duplicate."""
    items = _items(50, seed=3)
    index = get_index(session)
    bulk = BulkIntake(session, actor="bulk", settings=settings, index=index, now=NOW,
                      on_reject=lambda item, exc: pytest.fail(str(exc)))
    assert bulk.preload()
    prepared = bulk.prepare(items)
    assert prepared is not None
    with session_scope(db_url) as other:  # uncommitted: the lookup cannot see it
        register_many(other, [items[10]], actor="other", settings=settings,
                      index=get_index(other), now=NOW)
        out: dict[str, Any] = {}
        writer = threading.Thread(target=lambda: out.update(counts=bulk.write(prepared)))
        writer.start()
        time.sleep(1.0)  # the COPY now waits for this transaction on the unique index
        assert writer.is_alive()
    writer.join(timeout=60)
    counts = out["counts"]
    assert (bulk.clashes, bulk.fallbacks) == (1, 0)
    unique = len({(i.source, i.external_id) for i in items})
    assert counts.created == unique - 1 and counts.duplicates == len(items) - unique + 1
    session.commit()
    total = session.execute(text("SELECT count(*) FROM incident")).scalar_one()
    assert total == unique
    assert session.execute(text(
        "SELECT count(*) FROM incident_event WHERE actor = 'bulk'")).scalar_one() == \
        counts.created + session.execute(text(
            "SELECT count(*) FROM incident i WHERE status = 'dispatched' AND EXISTS "
            "(SELECT 1 FROM incident_event e WHERE e.incident_id = i.id AND e.actor = 'bulk')"
        )).scalar_one()


def test_a_key_the_look_up_missed_sends_the_batch_the_slow_way(
        session: Session, settings: Settings, ids: dict[str, int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A key stored by a writer that commits between the batch's key look-up and its second
    COPY (simulated: the look-up finds nothing): both COPYs fail on the unique index and the
    batch is written with ON CONFLICT instead; nothing is lost or doubled."""
    items = _items(40, seed=5)
    index = get_index(session)
    register_many(session, [items[7]], actor="earlier", settings=settings, index=index,
                  now=NOW)
    bulk = BulkIntake(session, actor="bulk", settings=settings, index=index, now=NOW,
                      on_reject=lambda item, exc: pytest.fail(str(exc)))
    assert bulk.preload()
    prepared = bulk.prepare(items)
    assert prepared is not None
    monkeypatch.setattr(BulkIntake, "_not_stored", lambda self, rows: list(range(len(rows))))
    counts = bulk.write(prepared)
    assert (bulk.clashes, bulk.fallbacks) == (1, 1)
    unique = len({(i.source, i.external_id) for i in items})
    assert counts.created == unique - 1 and counts.duplicates == len(items) - unique + 1
    total = session.execute(text("SELECT count(*) FROM incident")).scalar_one()
    assert total == unique


def test_a_search_that_linked_to_a_row_not_written_is_linked_again_by_sql(
        session: Session, settings: Settings, ids: dict[str, int]) -> None:
    """Two reports of one matter in a batch, the first a retry of an incident stored a
    kilometre away: the in-memory search links the second to the first, which is then not
    written (its key is stored), so the batch is linked by SQL, and the second has no
    candidate (a link to the unwritten row would break the COPY's foreign key)."""
    first, second = _items(2, seed=11)
    second = dataclasses.replace(second, lon=first.lon, lat=first.lat, category=first.category,
                                 reported_at=first.reported_at, external_id="other")
    index = get_index(session)
    register_many(session, [dataclasses.replace(first, lat=first.lat + 0.01)],
                  actor="earlier", settings=settings, index=index, now=NOW)
    bulk = BulkIntake(session, actor="bulk", settings=settings, index=index, now=NOW,
                      on_reject=lambda item, exc: pytest.fail(str(exc)))
    assert bulk.preload()
    prepared = bulk.prepare([first, second])
    assert prepared is not None
    assert bulk.write_ahead(prepared).created == 0  # nothing stored before the flush
    counts = bulk.flush()
    bulk.close()
    assert (counts.created, counts.duplicates, counts.candidates) == (1, 1, 0)
    assert (bulk.clashes, bulk.relinks) == (1, 1)
    assert session.execute(text("SELECT candidate_of FROM incident WHERE external_id = "
                                "'other'")).one() == (None,)
