"""Applying a plan: new grid versions, the roster and the open incidents, in one transaction.

:func:`apply_plan` runs in the caller's transaction and raises on any problem,
so a failure anywhere (the API rolls back) leaves grids, duties, incidents and
the plan as they were. Steps:

1. lock the plan and the current versions of every grid its edits read
   (``FOR UPDATE``); a grid whose version differs from the one the plan was
   drafted on (another plan or an import changed it, or a new code is taken)
   is a :class:`~geo.errors.Conflict` (409) naming the grids and the plans;
2. replay and validate; a blocking problem refuses the apply (422);
3. close the old versions (``valid_to`` = the apply time) and open the new ones
   (``valid_from`` = the same time); retired grids are closed. The ``grid``
   statement trigger bumps ``grid_epoch``, so every process rebuilds its
   assignment index at its next lookup;
4. the duties of a retired grid move to the grid inheriting the largest share
   of its area (reported for the planner to confirm);
5. every open incident of a touched grid is placed again by the new polygons
   (smallest code on a shared edge; one left outside all of them follows its
   grid's heir). One that changes grid gets the worker the fallback chain of
   :mod:`geo.incidents.responsible` chooses now, and an ``incident_event``
   (``data.kind = "replan"``); one that stays gets the new version's id.
   Closed incidents keep the grid version they were handled in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import topology
from geo.errors import Conflict, InvalidInput
from geo.incidents import responsible
from geo.incidents.loop import taken_again
from geo.incidents.regrid import choose_now
from geo.plans import impact, service
from geo.plans.edits import PlanState
from geo.settings import Settings
from geo.store import plans as store
from geo.store import reassign as store_reassign
from geo.store.grid_lock import lock_exclusive
from geo.store.grids import GridRecord, write_versions
from geo.store.incident_queries import grid_chain


def _records(state: PlanState, people: Mapping[str, tuple[int | None, int | None]]
             ) -> list[GridRecord]:
    out = []
    for code in state.touched():
        draft = state.after.get(code)
        if draft is None:
            continue
        population, households = people.get(code, (None, None))
        out.append(GridRecord(code=code, name=draft.name, level=draft.level, geom=draft.geom,
                              parent_code=draft.parent_code, population=population,
                              households=households, attrs=draft.attrs))
    return out


def _move_roster(session: Session, heirs: Mapping[str, list[tuple[str, float]]],
                 route_tolerance_m: float) -> list[dict[str, Any]]:
    teams = store.teams_of(session, sorted(heirs))
    routes = store.routes_of(session, sorted(heirs))
    for old, shares in heirs.items():  # teams and routes follow the grid's area, as duties do
        if shares and teams.get(old):
            store.move_teams(session, old, shares[0][0])
        if shares and routes.get(old):  # to every heir the route reaches
            store.move_routes(session, old, [c for c, _ in shares], route_tolerance_m)
    return impact.roster_report(heirs, store.duties_of(session, sorted(heirs)),
                                lambda duty, target: store.move_duty(session, int(duty["id"]),
                                                                     target),
                                teams=teams, routes=routes)


def _reassign(session: Session, state: PlanState, heirs: Mapping[str, list[tuple[str, float]]],
              *, plan_id: int, actor: str, at: dt.datetime, settings: Settings
              ) -> dict[str, Any]:
    touched = set(state.touched())
    points = store.incidents_near(session, _union_all(state), since=at, lock=True,
                                  codes=sorted(touched))
    keep = np.array([bool(o and g in touched) for o, g in
                     zip(points.open, points.grid_code, strict=True)], dtype=bool)
    idx = [int(k) for k in np.flatnonzero(keep)]
    cover = impact.assign_points([(c, d.geom) for c, d in state.after.items()],
                                 points.lon[idx], points.lat[idx])
    new_code: list[str] = []
    for k, code in zip(idx, cover, strict=True):
        old = str(points.grid_code[k])
        if code is None:
            code = impact.heir_or_self(old, heirs)
        new_code.append(str(code))
    ids = store.current_ids(session, sorted(set(new_code)))
    moved = [(k, c) for k, c in zip(idx, new_code, strict=True)
             if c != points.grid_code[k]]
    choices = _choose(session, state, points, moved, at, settings)
    items, details = [], []
    for (k, code), choice in zip(moved, choices, strict=True):
        incident_id = int(points.id[k])
        worker_id, rule, reason = choice.worker_id, choice.rule, choice.reason
        if points.escalation_level[k]:  # it stays with the manager it was escalated to
            worker_id, rule, reason = points.worker_id[k], points.rule[k] or choice.rule, None
        status = taken_again(points.status[k], points.worker_id[k], worker_id)
        items.append(store_reassign.Reassignment(
            incident_id, worker_id, rule, points.status[k],
            f"grid plan {plan_id}: {points.grid_code[k]} -> {code}",
            data={"kind": "replan", "plan_id": plan_id, "from_grid": points.grid_code[k],
                  "to_grid": code, "to_grid_id": ids[code],
                  "from_worker": points.worker_id[k], "to_worker": worker_id, "rule": rule},
            reason=reason, grid_code=code, grid_id=ids[code], status=status))
        details.append({"id": incident_id, "from": points.grid_code[k], "to": code,
                        "worker_id": worker_id, "rule": rule,
                        "status": status or points.status[k]})
    store_reassign.reassign(session, items, actor=actor)
    stayed = [int(points.id[k]) for k, code in zip(idx, new_code, strict=True)
              if code == points.grid_code[k]]
    store.refresh_grid_version(session, stayed)
    return {"moved": len(details), "kept_grid": len(stayed), "events": len(details),
            "incidents": details}


def _union_all(state: PlanState) -> Any:
    return shapely.union_all([d.geom for d in [*state.before.values(), *state.after.values()]])


def _choose(session: Session, state: PlanState, points: store.IncidentPoints,
            moved: Sequence[tuple[int, str]], at: dt.datetime,
            settings: Settings) -> list[responsible.WorkerChoice]:
    if not moved:
        return []
    parent_chain = tuple(grid_chain(session, state.parent))
    chains = [(*parent_chain, (c, state.after[c].name, state.after[c].level)) for _, c in moved]
    return choose_now(session, [c for _, c in moved], chains,
                      [float(points.lon[k]) for k, _ in moved],
                      [float(points.lat[k]) for k, _ in moved],
                      [points.category[k] for k, _ in moved], at, settings.tz)


def apply_plan(session: Session, plan_id: int, *, user_id: int | None, actor: str,
               settings: Settings, at: dt.datetime | None = None) -> dict[str, Any]:
    """Apply plan ``plan_id`` now (or at ``at``) in the caller's transaction; the report.

    Raises
    ------
    Conflict
        The plan is not a draft, or grids it read changed since it was drafted.
    InvalidInput
        The plan has no edits or its result does not validate (``extra.validation``).
    """
    lock_exclusive(session)  # before reading grids or incidents: see geo.store.grid_lock
    plan = store.get_plan(session, plan_id, lock=True)
    if plan.status != "draft":  # before the replay: an applied plan replays on its own past
        raise Conflict(f"plan {plan_id} is already {plan.status}", field="status",
                       value=plan.status, valid="a draft plan")
    rep = service.replay(session, plan_id, lock=True)
    stale = service.stale_grids(session, rep.edits, lock=True)
    if stale:
        raise service.stale_conflict(session, plan_id, stale)
    if not rep.edits:
        raise InvalidInput(f"plan {plan_id} has no edits", field="edits", value=0,
                           valid="a plan with at least one edit (POST /plans/{id}/edits)")
    validation = service.check(session, rep, settings.topology_tolerance_m2)
    if not validation.ok:
        raise InvalidInput(f"plan {plan_id} does not validate: {validation.to_dict()['blocking']}"
                           " blocking problem(s), nothing was applied", field="plan",
                           value=plan_id, valid="a plan without blocking problems (see "
                           "GET /plans/{id})", extra={"validation": validation.to_dict()})
    when: dt.datetime = at or session.scalar(text("SELECT now()"))
    state = rep.state
    meter = topology.AreaMeter.for_geometries([rep.parent.geom])
    heirs = impact.inheritance(state, meter)
    written = write_versions(session, _records(state, impact.interpolate(state, meter)),
                             at=when)
    store.retire_grids(session, sorted(state.retired), when)
    roster = _move_roster(session, heirs, settings.route_tolerance_m)
    incidents = _reassign(session, state, heirs, plan_id=plan_id, actor=actor, at=when,
                          settings=settings)
    versions = store.lock_versions(session, [c for c in state.touched() if c in state.after])
    result = {"plan_id": plan_id, "applied_at": when.isoformat(), "touched": state.touched(),
              "written": {"created": written.created, "updated": written.updated,
                          "unchanged": written.unchanged},
              "retired": sorted(state.retired), "versions": versions,
              "roster": roster, "roster_to_confirm": bool(roster), "incidents": incidents}
    store.mark_applied(session, rep.plan, user_id=user_id, at=when, result=result)
    return result
