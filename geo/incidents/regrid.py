"""Open incidents placed again after a grid import wrote new versions of their grids.

A plan apply places the open incidents of the grids it touches again
(:mod:`geo.plans.apply`); a boundary file imported with ``grids import --commit`` (or
``POST /api/v1/grids/import``) does the same with :func:`place_again`, in the import's
transaction, after the new versions are written:

- every open incident whose grid is one of the codes written, or one of their ancestors
  (a grid that grows, or a new grid, may now cover an incident its community held), goes
  to the finest current grid covering its point (smaller code first on a shared edge, as
  the intake chooses); one no grid covers any more (it was snapped from outside) keeps its
  grid;
- one that changes grid gets the worker the fallback chain of
  :mod:`geo.incidents.responsible` chooses at the import's time (an escalated one keeps
  the manager it was escalated to) and an ``incident_event`` (``data.kind`` =
  ``"regrid"``); every one points at its grid's new version (``grid_id``).

Unassigned incidents (no grid) stay in the dispatcher's queue; closed ones keep the
version they were handled in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents import responsible
from geo.incidents.loop import FINAL_STATUSES, taken_again
from geo.settings import Settings
from geo.store import incidents as incident_store
from geo.store import plans as plan_store
from geo.store.incident_queries import grid_chain
from geo.store.reassign import Reassignment, reassign

#: Most moved incidents listed one by one in the report (all are counted).
LISTED = 100

_WITH_ANCESTORS = text("""
WITH RECURSIVE up(code) AS (
    SELECT unnest(CAST(:codes AS text[]))
    UNION
    SELECT g.parent_code FROM grid g JOIN up ON g.code = up.code
     WHERE g.valid_to IS NULL AND g.parent_code IS NOT NULL
)
SELECT code FROM up ORDER BY code
""")

_OPEN_ON = text("""
SELECT i.id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.grid_code, i.worker_id, i.status,
       i.category_code, i.rule, i.escalation_level, f.code AS new_code, f.id AS new_id
  FROM incident i
  LEFT JOIN LATERAL (
      SELECT g.code, g.id FROM grid g
       WHERE g.valid_to IS NULL AND ST_Covers(g.geom, i.geom)
       ORDER BY g.depth DESC, g.code
       LIMIT 1) f ON true
 WHERE i.grid_code = ANY(CAST(:codes AS text[])) AND NOT i.status = ANY(CAST(:final AS text[]))
 ORDER BY i.id
   FOR UPDATE OF i
""")


def place_again(session: Session, codes: Sequence[str], *, actor: str, at: dt.datetime,
                settings: Settings, source: str) -> dict[str, Any]:
    """Place the open incidents of grids ``codes`` and their ancestors again (see the module
    docstring).

    Returns ``{"moved", "kept_grid", "incidents": [{id, from, to, worker_id, rule}]}``
    (at most :data:`LISTED` listed).
    """
    if not codes:
        return {"moved": 0, "kept_grid": 0, "incidents": []}
    every = list(session.execute(_WITH_ANCESTORS, {"codes": list(codes)}).scalars())
    rows = session.execute(_OPEN_ON, {"codes": every, "final": list(FINAL_STATUSES)}).all()
    moved = [r for r in rows if r.new_code is not None and r.new_code != r.grid_code]
    stayed = [int(r.id) for r in rows if r.new_code is None or r.new_code == r.grid_code]
    items, details = [], []
    for r, choice in zip(moved, _choose(session, moved, at, settings), strict=True):
        worker_id, rule, reason = choice.worker_id, choice.rule, choice.reason
        if r.escalation_level:  # it stays with the manager it was escalated to
            worker_id, rule, reason = r.worker_id, r.rule or choice.rule, None
        status = taken_again(r.status, r.worker_id, worker_id)
        items.append(Reassignment(
            int(r.id), worker_id, rule, r.status,
            f"grid import {source}: {r.grid_code} -> {r.new_code}",
            data={"kind": "regrid", "source": source, "from_grid": r.grid_code,
                  "to_grid": r.new_code, "to_grid_id": int(r.new_id),
                  "from_worker": r.worker_id, "to_worker": worker_id, "rule": rule},
            reason=reason, grid_code=r.new_code, grid_id=int(r.new_id), status=status))
        details.append({"id": int(r.id), "from": r.grid_code, "to": r.new_code,
                        "worker_id": worker_id, "rule": rule, "status": status or r.status})
    reassign(session, items, actor=actor)
    plan_store.refresh_grid_version(session, stayed)
    return {"moved": len(moved), "kept_grid": len(stayed), "incidents": details[:LISTED]}


def _choose(session: Session, moved: Sequence[Any], at: dt.datetime,
            settings: Settings) -> list[responsible.WorkerChoice]:
    chain_of = {c: tuple(grid_chain(session, c)) for c in sorted({r.new_code for r in moved})}
    return choose_now(session, [r.new_code for r in moved],
                      [chain_of[r.new_code] for r in moved], [float(r.lon) for r in moved],
                      [float(r.lat) for r in moved], [r.category_code for r in moved], at,
                      settings.tz)


def choose_now(session: Session, grids: Sequence[str], chains: Sequence[Sequence[Any]],
               lon: Sequence[float], lat: Sequence[float], categories: Sequence[str],
               at: dt.datetime, tz: Any) -> list[responsible.WorkerChoice]:
    """The worker the fallback chain chooses at ``at`` for incidents placed again on
    ``grids`` (each with its chain, coarsest first), the roster read for them once; shared
    by a grid import and a plan apply."""
    if not grids:
        return []
    places = responsible.communities_and_streets(chains)
    codes = set(grids) | {p[0] for p in places if p[0]}
    view = responsible.RosterView(
        duties=incident_store.duties_on(session, sorted(codes)),
        street_workers=incident_store.street_workers(session,
                                                     sorted({p[1] for p in places if p[1]})))
    return responsible.choose_workers(view, grids, chains, lon, lat, [at] * len(grids),
                                      categories, tz)
