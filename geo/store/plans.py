"""PostGIS queries of grid plans: plans and edits, the grids they start from, what they move.

One function per question; the domain logic is in :mod:`geo.plans`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from geo import topology
from geo.errors import NotFound
from geo.incidents.loop import FINAL_STATUSES
from geo.plans.edits import Draft
from geo.store.grid_lock import lock_exclusive
from geo.store.models import INT4_MAX, Plan, PlanEdit

# What a Draft is read from (see _draft).
_DRAFT = """
    SELECT code, version, name, level, parent_code, population, households, attrs,
           ST_AsBinary(geom) AS wkb"""
_CURRENT_GRID = text(_DRAFT + """
      FROM grid WHERE valid_to IS NULL AND code = :code""")
_CURRENT_CHILDREN = text(_DRAFT + """
      FROM grid WHERE valid_to IS NULL AND parent_code = :parent ORDER BY code""")


def _geom(wkb: Any) -> BaseGeometry:
    geom = shapely.from_wkb(bytes(wkb))
    return geom if geom.is_valid else topology.polygonal(shapely.make_valid(geom))


def _draft(r: Any) -> Draft:
    return Draft(code=r["code"], name=r["name"], level=r["level"], parent_code=r["parent_code"],
                 geom=_geom(r["wkb"]), population=r["population"], households=r["households"],
                 attrs=dict(r["attrs"] or {}), version=int(r["version"]))


def current_grid(session: Session, code: str) -> Draft:
    """The current version of grid ``code``; NotFound naming the field ``parent``."""
    row = session.execute(_CURRENT_GRID, {"code": code}).mappings().first()
    if row is None:
        raise NotFound(f"there is no current grid {code!r}", field="parent", value=code,
                       valid="the code of a current community or street (GET /api/v1/grids)")
    return _draft(row)


# The versions in force just before ``at`` (a plan's apply time: the versions it closed end
# at ``at``, the ones it opened start there).
_CHILDREN_BEFORE = text(_DRAFT + """
      FROM grid WHERE parent_code = :parent AND valid_from < :at
       AND (valid_to IS NULL OR valid_to >= :at) ORDER BY code""")
_GRID_BEFORE = text(_DRAFT + """
      FROM grid WHERE code = :code AND valid_from < :at
       AND (valid_to IS NULL OR valid_to >= :at) ORDER BY valid_from DESC LIMIT 1""")


def grids_before(session: Session, parent: str, at: dt.datetime) -> tuple[Draft, list[Draft],
                                                                            set[str]]:
    """``parent``, its children and every code that existed, as they were just before
    ``at`` (what a plan applied at ``at`` was replayed on)."""
    row = session.execute(_GRID_BEFORE, {"code": parent, "at": at}).mappings().first()
    if row is None:
        raise NotFound(f"there was no grid {parent!r} before {at.isoformat()}", field="parent",
                       value=parent, valid="the plan's parent")
    children = [_draft(r) for r in session.execute(_CHILDREN_BEFORE,
                                                   {"parent": parent, "at": at}).mappings()]
    codes = set(session.scalars(text("SELECT DISTINCT code FROM grid WHERE valid_from < :at"),
                                {"at": at}))
    return _draft(row), children, codes


def current_children(session: Session, parent: str) -> list[Draft]:
    """The current children of ``parent``, ordered by code."""
    rows = session.execute(_CURRENT_CHILDREN, {"parent": parent}).mappings()
    return [_draft(r) for r in rows]


def grandchildren(session: Session, codes: Sequence[str]) -> dict[str, list[tuple[str,
                                                                                 BaseGeometry]]]:
    """Current children ``(code, geometry)`` of each of ``codes``."""
    out: dict[str, list[tuple[str, BaseGeometry]]] = {c: [] for c in codes}
    if not codes:
        return out
    rows = session.execute(text("SELECT code, parent_code, ST_AsBinary(geom) AS wkb FROM grid "
                                "WHERE valid_to IS NULL AND parent_code IN :codes ORDER BY code")
                           .bindparams(bindparam("codes", expanding=True)),
                           {"codes": list(codes)})
    for r in rows:
        out[r.parent_code].append((r.code, _geom(r.wkb)))
    return out


def all_codes(session: Session) -> set[str]:
    """Every grid code that has ever existed."""
    return set(session.scalars(text("SELECT DISTINCT code FROM grid")))


_VERSIONS_SQL = ("SELECT code, version FROM grid WHERE valid_to IS NULL AND code IN :codes "
                 "ORDER BY code")
_VERSIONS = text(_VERSIONS_SQL)
_VERSIONS_LOCKED = text(_VERSIONS_SQL + " FOR UPDATE")


def lock_versions(session: Session, codes: Sequence[str], *,
                  lock: bool = True) -> dict[str, int]:
    """Current version of each of ``codes`` (absent: no current grid), rows locked FOR UPDATE
    unless ``lock`` is false."""
    if not codes:
        return {}
    rows = session.execute((_VERSIONS_LOCKED if lock else _VERSIONS)
                           .bindparams(bindparam("codes", expanding=True)),
                           {"codes": sorted(codes)})
    return {r.code: int(r.version) for r in rows}


def plans_that_changed(session: Session, stale: Sequence[Mapping[str, Any]]) -> list[int]:
    """Applied plans that changed the ``stale`` grids (``code``, ``drafted_on``) since a draft
    read them, newest first: those that touched a grid when or after its drafted version was
    retired (for a code taken since, when or after it first appeared). A plan that produced
    the drafted version itself is not one of them."""
    rows = session.execute(_CHANGED_BY, {"codes": [str(s["code"]) for s in stale],
                                         "versions": [int(s["drafted_on"]) for s in stale]})
    return [int(r.id) for r in rows]


_CHANGED_BY = text("""
WITH stale AS (
    SELECT s.code, CASE WHEN s.v > 0
        THEN (SELECT g.valid_to FROM grid g WHERE g.code = s.code AND g.version = s.v)
        ELSE (SELECT min(g.valid_from) FROM grid g WHERE g.code = s.code) END AS since
    FROM unnest(CAST(:codes AS text[]), CAST(:versions AS int[])) AS s(code, v))
SELECT p.id FROM plan p
WHERE p.status = 'applied' AND EXISTS (
    SELECT 1 FROM stale WHERE p.result->'touched' ? stale.code
    AND (stale.since IS NULL OR p.applied_at >= stale.since))
ORDER BY p.applied_at DESC, p.id DESC""")


# --------------------------------------------------------------------------- plans

def create_plan(session: Session, *, name: str, parent: str, kind: str,
                user_id: int | None, attrs: dict[str, Any] | None = None) -> Plan:
    """Insert a draft plan."""
    plan = Plan(name=name, parent_code=parent, kind=kind, status="draft", created_by=user_id,
                attrs=attrs or {})
    session.add(plan)
    session.flush()
    return plan


def get_plan(session: Session, plan_id: int, *, lock: bool = False) -> Plan:
    """Plan ``plan_id`` (locked FOR UPDATE with ``lock``); NotFound otherwise."""
    if not isinstance(plan_id, int) or not 1 <= plan_id <= INT4_MAX:  # no such id can exist
        raise NotFound(f"there is no plan {plan_id}", field="id", value=plan_id,
                       valid=f"the id of a plan (1 to {INT4_MAX}; POST /api/v1/plans answers it)")
    query = select(Plan).where(Plan.id == plan_id)
    if lock:
        query = query.with_for_update()
    plan = session.scalars(query).first()
    if plan is None:
        raise NotFound(f"there is no plan {plan_id}", field="id", value=plan_id,
                       valid="the id of a plan (POST /api/v1/plans answers it)")
    return plan


def edits(session: Session, plan_id: int) -> list[PlanEdit]:
    """The plan's edits in order."""
    return list(session.scalars(select(PlanEdit).where(PlanEdit.plan_id == plan_id)
                                .order_by(PlanEdit.seq)))


def add_edit(session: Session, plan_id: int, *, op: str, payload: dict[str, Any],
             base: dict[str, int], user_id: int | None) -> PlanEdit:
    """Append an edit at the next ``seq``."""
    seq = session.scalar(text("SELECT coalesce(max(seq), 0) + 1 FROM plan_edit "
                              "WHERE plan_id = :p"), {"p": plan_id})
    edit = PlanEdit(plan_id=plan_id, seq=int(seq or 1), op=op, payload=payload, base=base,
                    created_by=user_id)
    session.add(edit)
    session.flush()
    return edit


def mark_applied(session: Session, plan: Plan, *, user_id: int | None, at: dt.datetime,
                 result: dict[str, Any]) -> None:
    """Record that ``plan`` was applied."""
    plan.status = "applied"
    plan.applied_at = at
    plan.applied_by = user_id
    plan.result = json.loads(json.dumps(result, default=str))
    session.flush()


# --------------------------------------------------------------------------- incidents, roster

@dataclass
class IncidentPoints:
    """Incidents as column arrays (WGS-84)."""

    id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    grid_code: list[str | None]
    worker_id: list[int | None]
    status: list[str]
    category: list[str]
    open: np.ndarray
    recent: np.ndarray
    rule: list[str | None]
    escalation_level: list[int]

    def __len__(self) -> int:
        return len(self.id)


def incidents_near(session: Session, geom: BaseGeometry, *, since: dt.datetime,
                   lock: bool = False, codes: Sequence[str] = ()) -> IncidentPoints:
    """Incidents in the bounding box of ``geom``, or on one of the grids ``codes`` (one
    snapped onto its grid from outside may lie beyond the box), reported since ``since``
    (``recent``) or open.

    With ``lock`` only the open ones, locked ``FOR UPDATE`` in id order: a change
    committed meanwhile (a rejection, a merge, an escalation) is read as committed, and
    one that became final is left out.
    """
    minx, miny, maxx, maxy = geom.bounds
    sql = _NEAR_LOCKED if lock else _NEAR
    rows = session.execute(sql, {"since": since, "minx": minx, "miny": miny, "maxx": maxx,
                                 "maxy": maxy, "final": list(FINAL_STATUSES),
                                 "codes": list(codes)}).all()
    final = set(FINAL_STATUSES)
    return IncidentPoints(
        id=np.array([r.id for r in rows], dtype=np.int64),
        lon=np.array([r.lon for r in rows], dtype=float),
        lat=np.array([r.lat for r in rows], dtype=float),
        grid_code=[r.grid_code for r in rows], worker_id=[r.worker_id for r in rows],
        status=[r.status for r in rows], category=[r.category_code for r in rows],
        open=np.array([r.status not in final for r in rows], dtype=bool),
        recent=np.array([bool(r.recent) for r in rows], dtype=bool),
        rule=[r.rule for r in rows], escalation_level=[int(r.escalation_level) for r in rows],
    )


_NEAR_SQL = """
    SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code, worker_id, status,
           category_code, reported_at >= :since AS recent, rule, escalation_level
      FROM incident
     WHERE (geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)
            OR grid_code = ANY(CAST(:codes AS text[])))"""
_NEAR = text(_NEAR_SQL + """
       AND (reported_at >= :since OR NOT status = ANY(:final))
     ORDER BY id""")
_NEAR_LOCKED = text(_NEAR_SQL + """
       AND NOT status = ANY(:final)
     ORDER BY id FOR UPDATE""")


def primary_workers(session: Session, codes: Sequence[str]) -> dict[str, list[tuple[int, str,
                                                                                   str]]]:
    """Active primary (A角) workers ``(id, code, name)`` of each of ``codes``."""
    out: dict[str, list[tuple[int, str, str]]] = {c: [] for c in codes}
    if not codes:
        return out
    rows = session.execute(text("SELECT d.grid_code, w.id, w.code, w.name FROM duty d "
                                "JOIN worker w ON w.id = d.worker_id WHERE w.active "
                                "AND d.kind = 'primary' AND d.grid_code IN :codes "
                                "ORDER BY d.grid_code, w.code")
                           .bindparams(bindparam("codes", expanding=True)),
                           {"codes": list(codes)})
    for r in rows:
        out[r.grid_code].append((int(r.id), r.code, r.name))
    return out


def duties_of(session: Session, codes: Sequence[str]) -> list[dict[str, Any]]:
    """Every duty on ``codes`` with its worker's code, for the roster report."""
    if not codes:
        return []
    rows = session.execute(text("SELECT d.id, d.grid_code, d.kind, d.worker_id, w.code, w.name "
                                "FROM duty d JOIN worker w ON w.id = d.worker_id "
                                "WHERE d.grid_code IN :codes ORDER BY d.grid_code, d.kind, w.code")
                           .bindparams(bindparam("codes", expanding=True)),
                           {"codes": list(codes)}).mappings()
    return [dict(r) for r in rows]


def teams_of(session: Session, codes: Sequence[str]) -> dict[str, list[str]]:
    """The codes of the teams attached to each of ``codes`` (only codes with teams)."""
    out: dict[str, list[str]] = {}
    if not codes:
        return out
    for r in session.execute(text("SELECT grid_code, code FROM team WHERE grid_code IN :codes "
                                  "ORDER BY grid_code, code")
                             .bindparams(bindparam("codes", expanding=True)),
                             {"codes": list(codes)}):
        out.setdefault(r.grid_code, []).append(r.code)
    return out


def routes_of(session: Session, codes: Sequence[str]) -> dict[str, list[str]]:
    """The codes of the patrol routes claiming each of ``codes`` (only codes with routes)."""
    out: dict[str, list[str]] = {}
    if not codes:
        return out
    for r in session.execute(text("SELECT g.code AS grid, r.code FROM patrol_route r "
                                  "CROSS JOIN unnest(r.grid_codes) AS g(code) "
                                  "WHERE g.code IN :codes ORDER BY g.code, r.code")
                             .bindparams(bindparam("codes", expanding=True)),
                             {"codes": list(codes)}):
        out.setdefault(r.grid, []).append(r.code)
    return out


def move_routes(session: Session, from_code: str, heirs: Sequence[str],
                tolerance_m: float) -> int:
    """Make the routes claiming grid ``from_code`` claim, instead, each of its ``heirs``
    (current grids, largest share first) the route comes within ``tolerance_m`` of (a stored
    route must stay that near its grids), or the first heir when it reaches none; how many
    routes. Codes sorted by code point, as every route write sorts them."""
    result = session.execute(text("""
        UPDATE patrol_route r
           SET grid_codes = ARRAY(
                 SELECT DISTINCT x.c COLLATE "C" FROM (
                   SELECT c FROM unnest(r.grid_codes) AS c WHERE c <> :old
                   UNION ALL
                   SELECT g.code FROM grid g
                    WHERE g.valid_to IS NULL AND g.code = ANY(CAST(:heirs AS text[]))
                      AND ST_DWithin(g.geom::geography, r.geom::geography, :tol)
                   UNION ALL
                   SELECT CAST(:first AS text) WHERE NOT EXISTS (
                     SELECT 1 FROM grid g
                      WHERE g.valid_to IS NULL AND g.code = ANY(CAST(:heirs AS text[]))
                        AND ST_DWithin(g.geom::geography, r.geom::geography, :tol))
                 ) AS x(c) ORDER BY 1),
               updated_at = now()
         WHERE :old = ANY(r.grid_codes)"""),
        {"old": from_code, "heirs": list(heirs), "first": heirs[0], "tol": tolerance_m})
    return int(getattr(result, "rowcount", 0) or 0)


def move_teams(session: Session, from_code: str, to_code: str) -> int:
    """Attach the teams of grid ``from_code`` to ``to_code``; how many."""
    result = session.execute(text("UPDATE team SET grid_code = :to WHERE grid_code = :old"),
                             {"to": to_code, "old": from_code})
    return int(getattr(result, "rowcount", 0) or 0)


def move_duty(session: Session, duty_id: int, to_code: str) -> bool:
    """Move a duty to grid ``to_code``; False (and the duty deleted) when the worker already
    has that kind of duty there."""
    result = session.execute(text("""
        UPDATE duty d SET grid_code = :to WHERE d.id = :id AND NOT EXISTS (
            SELECT 1 FROM duty o WHERE o.worker_id = d.worker_id AND o.kind = d.kind
               AND o.grid_code = :to)"""), {"id": duty_id, "to": to_code})
    moved = int(getattr(result, "rowcount", 0) or 0)
    if not moved:
        session.execute(text("DELETE FROM duty WHERE id = :id"), {"id": duty_id})
    return bool(moved)


def retire_grids(session: Session, codes: Sequence[str], at: dt.datetime) -> int:
    """Close the current versions of ``codes`` at ``at`` (under the grids' exclusive lock)."""
    if not codes:
        return 0
    lock_exclusive(session)
    result = session.execute(text("UPDATE grid SET valid_to = :at WHERE valid_to IS NULL "
                                  "AND code IN :codes")
                             .bindparams(bindparam("codes", expanding=True)),
                             {"at": at, "codes": list(codes)})
    return int(getattr(result, "rowcount", 0) or 0)


def current_ids(session: Session, codes: Sequence[str]) -> dict[str, int]:
    """``grid.id`` of the current version of each of ``codes``."""
    if not codes:
        return {}
    rows = session.execute(text("SELECT code, id FROM grid WHERE valid_to IS NULL "
                                "AND code IN :codes").bindparams(bindparam("codes",
                                                                           expanding=True)),
                           {"codes": list(codes)})
    return {r.code: int(r.id) for r in rows}


def refresh_grid_version(session: Session, incident_ids: Sequence[int]) -> None:
    """Point incidents that keep their grid code at that code's current version."""
    if not incident_ids:
        return
    session.execute(text("UPDATE incident i SET grid_id = g.id FROM grid g "
                         "WHERE i.id = ANY(:ids) AND g.code = i.grid_code "
                         "AND g.valid_to IS NULL"), {"ids": list(incident_ids)})
