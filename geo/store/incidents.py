"""Incident writes for the intake, and the roster and category reads it needs.

Set-based: a batch of any size is written by one ``INSERT … SELECT FROM unnest(…)``
statement (with its registration events in the same statement), never one
``INSERT`` per row. Idempotency rests on the database: ``(source, external_id)``
and ``idempotency_key`` are unique, and ``ON CONFLICT DO NOTHING`` makes a
concurrent retry wait for the first writer and then create nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo.assign import DutyCandidate, Shift, parse_shifts
from geo.errors import Conflict
from geo.incidents.responsible import StreetWorker
from geo.store.models import Category, Duty, Worker
from geo.store.positions import FIX_AT, GEOM_AT

# --------------------------------------------------------------------------- categories

def list_categories(session: Session) -> list[Category]:
    """Every category, ordered by code."""
    return list(session.scalars(select(Category).order_by(Category.code)).all())


def category_sla(session: Session, codes: Sequence[str]) -> dict[str, float]:
    """``code -> sla_hours`` of those of ``codes`` that are in the category table."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = session.execute(select(Category.code, Category.sla_hours)
                           .where(Category.code.in_(wanted)))
    return {r.code: float(r.sla_hours) for r in rows}


def category_codes(session: Session) -> list[str]:
    """Every category code, sorted."""
    return list(session.scalars(select(Category.code).order_by(Category.code)).all())


# --------------------------------------------------------------------------- roster

def duties_on(session: Session,
              grid_codes: Sequence[str] | None) -> dict[str, list[DutyCandidate]]:
    """Every duty on each of ``grid_codes`` (None: on every grid) with its worker, as
    :mod:`geo.assign` wants them."""
    codes = sorted(set(grid_codes)) if grid_codes is not None else None
    out: dict[str, list[DutyCandidate]] = {code: [] for code in codes or ()}
    if codes is not None and not codes:
        return out
    query = (select(Duty.id, Duty.grid_code, Duty.kind, Duty.shifts, Duty.categories,
                    Worker.id.label("worker_id"), Worker.code, Worker.name, Worker.phone,
                    Worker.role, Worker.active)
             .join(Worker, Worker.id == Duty.worker_id).order_by(Duty.id))
    if codes is not None:
        query = query.where(Duty.grid_code.in_(codes))
    for r in session.execute(query):
        out.setdefault(r.grid_code, []).append(DutyCandidate(
            duty_id=r.id, worker_id=r.worker_id, worker_code=r.code, worker_name=r.name,
            kind=r.kind, shifts=_shifts(r.shifts),
            categories=None if r.categories is None else frozenset(r.categories),
            active=r.active, phone=r.phone, role=r.role))
    return out


def _shifts(raw: Any) -> tuple[Shift, ...]:
    return parse_shifts(raw or [])


_STREET_WORKERS = """
WITH RECURSIVE sub(code, street) AS (
    SELECT code, code FROM grid
     WHERE valid_to IS NULL AND code = ANY(CAST(:streets AS text[]))
  UNION
    SELECT g.code, s.street FROM grid g JOIN sub s ON g.parent_code = s.code
     WHERE g.valid_to IS NULL
), members(worker_id, street) AS (
    SELECT w.id, t.grid_code FROM worker w JOIN team t ON t.id = w.team_id
     WHERE t.grid_code = ANY(CAST(:streets AS text[]))
  UNION
    SELECT d.worker_id, sub.street FROM duty d JOIN sub ON sub.code = d.grid_code
)
SELECT m.street, w.id, w.code, w.name, w.role,
       ST_X({geom}) AS lon, ST_Y({geom}) AS lat,
       COALESCE((SELECT jsonb_agg(jsonb_build_object('shifts', d.shifts,
                                                     'categories', to_jsonb(d.categories))
                                  ORDER BY d.id)
                   FROM duty d WHERE d.worker_id = w.id), '[]'::jsonb) AS duties
  FROM members m JOIN worker w ON w.id = m.worker_id {fix}
 WHERE w.active AND w.last_geom IS NOT NULL
 ORDER BY m.street, w.code
"""
_STREET_NOW = text(_STREET_WORKERS.format(geom="w.last_geom", fix=""))
_STREET_AT = text(_STREET_WORKERS.format(geom=GEOM_AT, fix=FIX_AT))


def street_workers(session: Session, streets: Sequence[str], *, at: dt.datetime | None = None
                   ) -> dict[str, list[StreetWorker]]:
    """Active workers with a last known position, per street (see ``geo.incidents.responsible``).

    A worker belongs to a street when their team is attached to it or they hold a
    duty on it or on any current grid below it. With ``at`` each is placed where
    they were then (:mod:`geo.store.positions`), not at their last known position.
    """
    codes = sorted(set(streets))
    out: dict[str, list[StreetWorker]] = {code: [] for code in codes}
    if not codes:
        return out
    query, params = (_STREET_NOW, {"streets": codes}) if at is None else \
        (_STREET_AT, {"streets": codes, "at": at})
    for r in session.execute(query, params).mappings():
        duties = tuple((_shifts(d["shifts"]),
                        None if d["categories"] is None else frozenset(d["categories"]))
                       for d in r["duties"])
        out[r["street"]].append(StreetWorker(
            worker_id=r["id"], worker_code=r["code"], worker_name=r["name"],
            lon=float(r["lon"]), lat=float(r["lat"]), duties=duties, role=r["role"]))
    return out


# --------------------------------------------------------------------------- writes

@dataclass
class NewRows:
    """Column arrays of the incidents to insert (one entry per incident, same order)."""

    source: list[str]
    external_id: list[str | None]
    idempotency_key: list[str | None]
    category_code: list[str]
    description: list[str | None]
    reporter: list[str | None]
    lon: list[float]
    lat: list[float]
    input_crs: list[str]
    input_lon: list[float | None]
    input_lat: list[float | None]
    grid_code: list[str | None]
    worker_id: list[int | None]
    rule: list[str]
    snapped_m: list[float | None]
    unassigned_reason: list[str | None]
    status: list[str]
    reported_at: list[dt.datetime]
    due_at: list[dt.datetime]
    attrs: list[str]

    def __len__(self) -> int:
        return len(self.source)


_COLUMNS = ("source", "external_id", "idempotency_key", "category_code", "description",
            "reporter", "lon", "lat", "input_crs", "input_lon", "input_lat", "grid_code",
            "worker_id", "rule", "snapped_m", "unassigned_reason", "status", "reported_at",
            "due_at", "attrs")
# The batch is staged in a temporary table by a binary COPY (no per-value parameter
# conversion), then written by one INSERT … SELECT with its events. A small batch
# (a REST call) skips the staging table and sends the columns as arrays instead.
_STAGE_TYPES = ("text", "text", "text", "text", "text", "text", "float8", "float8", "text",
                "float8", "float8", "text", "int4", "text", "float8", "text", "text",
                "timestamptz", "timestamptz", "text", "int8")
_STAGE_CREATE = """
CREATE TEMP TABLE IF NOT EXISTS incident_intake_stage (
    source text, external_id text, idempotency_key text, category_code text,
    description text, reporter text, lon float8, lat float8, input_crs text,
    input_lon float8, input_lat float8, grid_code text, worker_id int4, rule text,
    snapped_m float8, unassigned_reason text, status text, reported_at timestamptz,
    due_at timestamptz, attrs text, seq int8
) ON COMMIT DROP
"""
_STAGE_COPY = ("COPY incident_intake_stage (source, external_id, idempotency_key, "
               "category_code, description, reporter, lon, lat, input_crs, input_lon, "
               "input_lat, grid_code, worker_id, rule, snapped_m, unassigned_reason, status, "
               "reported_at, due_at, attrs, seq) FROM STDIN (FORMAT BINARY)")
#: Batches of at least this many rows go through the staging table.
STAGE_FROM = 500

_FROM_ARRAYS = """
WITH u AS MATERIALIZED (
    SELECT nextval('incident_id_seq') AS id, t.*
      FROM unnest(
               CAST(:source AS text[]), CAST(:external_id AS text[]),
               CAST(:idempotency_key AS text[]), CAST(:category_code AS text[]),
               CAST(:description AS text[]), CAST(:reporter AS text[]),
               CAST(:lon AS float8[]), CAST(:lat AS float8[]), CAST(:input_crs AS text[]),
               CAST(:input_lon AS float8[]), CAST(:input_lat AS float8[]),
               CAST(:grid_code AS text[]), CAST(:worker_id AS int[]), CAST(:rule AS text[]),
               CAST(:snapped_m AS float8[]), CAST(:unassigned_reason AS text[]),
               CAST(:status AS text[]), CAST(:reported_at AS timestamptz[]),
               CAST(:due_at AS timestamptz[]), CAST(:attrs AS text[]))
           WITH ORDINALITY AS t(source, external_id, idempotency_key, category_code,
                                description, reporter, lon, lat, input_crs, input_lon,
                                input_lat, grid_code, worker_id, rule, snapped_m,
                                unassigned_reason, status, reported_at, due_at, attrs, seq)
)"""
_FROM_STAGE = """
WITH u AS MATERIALIZED (
    SELECT nextval('incident_id_seq') AS id, t.*
      FROM (SELECT * FROM incident_intake_stage ORDER BY seq) AS t
)"""
_WRITE = """, ins AS (
    INSERT INTO incident (id, source, external_id, idempotency_key, category_code, description,
                          reporter, geom, input_crs, grid_code, worker_id, rule, snapped_m,
                          unassigned_reason, status, reported_at, due_at, attrs)
    SELECT id, source, external_id, idempotency_key, category_code, description, reporter,
           ST_SetSRID(ST_MakePoint(lon, lat), 4326), input_crs, grid_code, worker_id, rule,
           snapped_m, unassigned_reason, status, reported_at, due_at, CAST(attrs AS jsonb)
      FROM u ORDER BY seq
    ON CONFLICT DO NOTHING
    RETURNING id
), ev AS (
    INSERT INTO incident_event (incident_id, actor, from_status, to_status, note, data)
    SELECT u.id, :actor, NULL, 'registered', NULL, jsonb_strip_nulls(jsonb_build_object(
               'kind', 'intake', 'grid', u.grid_code, 'worker_id', u.worker_id,
               'rule', u.rule, 'snapped_m', u.snapped_m,
               'unassigned_reason', u.unassigned_reason, 'crs', u.input_crs,
               'input', CASE WHEN u.input_lon IS NULL THEN NULL
                             ELSE jsonb_build_array(u.input_lon, u.input_lat) END))
      FROM u JOIN ins ON ins.id = u.id
    UNION ALL
    SELECT u.id, :actor, 'registered', 'dispatched', 'dispatched on intake by rule ' || u.rule,
           jsonb_build_object('kind', 'auto_dispatch', 'worker_id', u.worker_id, 'rule', u.rule)
      FROM u JOIN ins ON ins.id = u.id
     WHERE u.status = 'dispatched'
)
SELECT u.seq, u.id, ins.id IS NOT NULL AS created
  FROM u LEFT JOIN ins ON ins.id = u.id
 ORDER BY u.seq
"""
_INSERT = text(_FROM_ARRAYS + _WRITE)
_INSERT_STAGED = text(_FROM_STAGE + _WRITE)


def insert_incidents(session: Session, rows: NewRows, *, actor: str) -> list[tuple[int, bool]]:
    """Insert a batch with its events (one statement); ``(id, created)`` per row, in order.

    ``created`` is False when the row clashed with an existing ``(source,
    external_id)`` or ``idempotency_key`` (its id is then unused: look the
    existing incident up with :func:`find_existing`). A ``dispatched`` row gets a
    second event, ``registered -> dispatched``. A batch of :data:`STAGE_FROM`
    rows or more is first copied (binary ``COPY``) into a temporary table that
    lives until the transaction ends.
    """
    if len(rows) == 0:
        return []
    if len(rows) < STAGE_FROM:
        params: dict[str, Any] = {name: getattr(rows, name) for name in _COLUMNS}
        params["actor"] = actor
        result = session.execute(_INSERT, params).all()
    else:
        _stage(session, rows)
        result = session.execute(_INSERT_STAGED, {"actor": actor}).all()
    return [(int(r.id), bool(r.created)) for r in result]


def _stage(session: Session, rows: NewRows) -> None:
    """Empty the staging table and COPY ``rows`` into it (``seq`` counts from 1)."""
    raw: Any = session.connection().connection.driver_connection
    columns = [getattr(rows, name) for name in _COLUMNS]
    with raw.cursor() as cur:
        cur.execute(_STAGE_CREATE)
        cur.execute("TRUNCATE incident_intake_stage")
        with cur.copy(_STAGE_COPY) as copy:
            copy.set_types(list(_STAGE_TYPES))
            write = copy.write_row
            for seq, values in enumerate(zip(*columns, strict=True), start=1):
                write((*values, seq))


def json_text(value: dict[str, Any]) -> str:
    """Compact JSON for the ``attrs`` array."""
    if type(value) is dict and not value:  # the usual case, without the encoder
        return "{}"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# The keys travel as two JSON arrays (one parameter each, no per-element conversion).
_EXISTING = text("""
SELECT i.id, i.source, i.external_id, i.idempotency_key
  FROM jsonb_array_elements_text(CAST(:sources AS jsonb)) WITH ORDINALITY AS s(source, n)
  JOIN jsonb_array_elements_text(CAST(:external_ids AS jsonb)) WITH ORDINALITY
       AS e(external_id, n) USING (n)
  JOIN incident i ON i.source = s.source AND i.external_id = e.external_id
UNION
SELECT i.id, i.source, i.external_id, i.idempotency_key
  FROM incident i
 WHERE i.idempotency_key IN (SELECT jsonb_array_elements_text(CAST(:keys AS jsonb)))
""")


@dataclass(frozen=True)
class Existing:
    """Where existing incidents are, by their natural keys."""

    by_external: dict[tuple[str, str], int]
    by_key: dict[str, int]


def find_existing(session: Session, external: Sequence[tuple[str, str]],
                  keys: Sequence[str]) -> Existing:
    """The ids of incidents with these ``(source, external_id)`` pairs or idempotency keys."""
    if not external and not keys:
        return Existing({}, {})
    rows = session.execute(_EXISTING, {
        "sources": json.dumps([s for s, _ in external], ensure_ascii=False),
        "external_ids": json.dumps([e for _, e in external], ensure_ascii=False),
        "keys": json.dumps(list(keys), ensure_ascii=False)}).all()
    by_external = {(r.source, r.external_id): int(r.id) for r in rows
                   if r.external_id is not None}
    by_key = {r.idempotency_key: int(r.id) for r in rows if r.idempotency_key is not None}
    return Existing(by_external, by_key)


_SUMMARY = text("""
SELECT i.id, i.status, i.source, i.external_id, i.idempotency_key, i.category_code,
       ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.input_crs, i.grid_code, i.worker_id,
       w.code AS worker_code, w.name AS worker_name, i.rule, i.snapped_m,
       i.unassigned_reason, i.candidate_of, i.reported_at, i.received_at, i.due_at
  FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
 WHERE i.id = ANY(CAST(:ids AS bigint[]))
""")


def summaries(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The columns an intake answer shows, of the incidents ``ids``, by id."""
    if not ids:
        return {}
    rows = session.execute(_SUMMARY, {"ids": sorted(set(ids))}).mappings()
    return {int(r["id"]): dict(r) for r in rows}


def candidate_links(session: Session, ids: Sequence[int]) -> dict[int, int]:
    """``id -> candidate_of`` of those of ``ids`` that are linked to an earlier report."""
    if not ids:
        return {}
    rows = session.execute(text(
        "SELECT id, candidate_of FROM incident WHERE id = ANY(CAST(:ids AS bigint[])) "
        "AND candidate_of IS NOT NULL"), {"ids": list(ids)})
    return {int(r.id): int(r.candidate_of) for r in rows}


def keep_idempotency_key(session: Session, incident_id: int, key: str) -> None:
    """Tie ``key`` to the incident a retry found by its external id, when the incident has no
    key yet: the key then answers with that incident and cannot be taken by another report
    (one with another key is refused by :mod:`geo.incidents.replay`).

    Raises
    ------
    Conflict
        Another report took ``key`` since the retry looked it up.
    """
    try:
        with session.begin_nested():
            session.execute(text("UPDATE incident SET idempotency_key = :k "
                                 "WHERE id = :id AND idempotency_key IS NULL"),
                            {"k": key, "id": incident_id})
    except IntegrityError:
        raise Conflict(f"Idempotency-Key {key!r} was just taken by another report",
                       field="Idempotency-Key", value=key,
                       valid="a new key for a new report") from None
