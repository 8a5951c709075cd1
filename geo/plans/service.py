"""Plans over the database: draft, add edits, replay them, validate, preview the impact.

Each function runs in the caller's transaction (the API commits). A plan is
replayed from the *current* grids every time it is read, so its result always
says what applying it now would do; ``base`` versions tell when the grids it
was drafted on have changed since (see :func:`stale_grids`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput
from geo.plans import impact as impact_mod
from geo.plans.edits import Draft, PlanState, apply_edit, check_edit, new_codes, read_codes
from geo.plans.validate import Validation, geojson, validate
from geo.store import plans as store
from geo.store.grids import last_versions
from geo.store.models import Plan, PlanEdit

KINDS = ("manual", "suggested")


@dataclass
class Replayed:
    """A plan, its parent and the state after replaying its edits on the current grids."""

    plan: Plan
    parent: Draft
    state: PlanState
    edits: list[PlanEdit]


def create_plan(session: Session, *, name: Any, parent: Any, user_id: int | None,
                kind: str = "manual", attrs: dict[str, Any] | None = None) -> Plan:
    """A new draft plan for the children of grid ``parent``."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the plan needs a name", field="name", value=name,
                           valid="a non-empty name such as '2026 乌塔社区 redraw'")
    if not isinstance(parent, str) or not parent:
        raise InvalidInput("the plan needs a parent grid", field="parent", value=parent,
                           valid="the code of a current community or street")
    store.current_grid(session, parent)
    if not store.current_children(session, parent):
        raise InvalidInput(f"grid {parent!r} has no children to redraw", field="parent",
                           value=parent, valid="a grid with current children (a community "
                           "or a street)")
    return store.create_plan(session, name=name.strip(), parent=parent, kind=kind,
                             user_id=user_id, attrs=attrs)


def _draft_only(plan: Plan) -> None:
    if plan.status != "draft":
        raise Conflict(f"plan {plan.id} is {plan.status}: it can no longer change",
                       field="status", value=plan.status, valid="a draft plan")


def replay(session: Session, plan_id: int, *, lock: bool = False) -> Replayed:
    """The plan with its edits replayed: a draft on the parent's current children, an
    applied plan on the grids as they were just before it was applied (so that it reads
    the same ever after, whatever later plans change).

    Raises
    ------
    Conflict
        A draft whose edits no longer apply because grids it read changed since it was
        drafted (``extra``: ``stale`` and ``changed_by_plans``, as when applying it).
    """
    plan = store.get_plan(session, plan_id, lock=lock)
    if plan.status == "applied" and plan.applied_at is not None:
        parent, children, taken = store.grids_before(session, plan.parent_code,
                                                     plan.applied_at)
    else:
        parent = store.current_grid(session, plan.parent_code)
        children = store.current_children(session, plan.parent_code)
        taken = store.all_codes(session)
    state = PlanState.start(plan.parent_code, children)
    edits = store.edits(session, plan.id)
    for edit in edits:
        try:
            apply_edit(state, edit.op, edit.payload, taken=taken)
        except InvalidInput as exc:
            stale = stale_grids(session, edits)
            if stale:
                raise stale_conflict(session, plan.id, stale) from exc
            raise Conflict(f"edit {edit.seq} ({edit.op}) of plan {plan.id} no longer applies to "
                           f"the current grids: {exc.message}", field="edits", value=edit.seq,
                           valid="a plan drafted on the current grids",
                           extra={"edit": edit.seq, "cause": exc.to_dict()}) from exc
    return Replayed(plan=plan, parent=parent, state=state, edits=edits)


def stale_conflict(session: Session, plan_id: int,
                   stale: Sequence[Mapping[str, Any]]) -> Conflict:
    """The 409 of a plan whose grids changed since it was drafted: which grids, their
    versions then and now, and the plans that changed them."""
    codes = [s["code"] for s in stale]
    by = store.plans_that_changed(session, stale)
    names = ", ".join(f"{s['code']} (drafted on version {s['drafted_on']}, now "
                      f"{s['now'] or 'retired'})" if s["drafted_on"] else
                      f"{s['code']} (the new code is taken)" for s in stale)
    return Conflict(f"plan {plan_id} touches grids that changed since it was drafted: {names}"
                    + (f"; changed by plan {', '.join(map(str, by))}" if by else ""),
                    field="grids", value=codes, valid="a plan drafted on the current grids "
                    "(draft it again)", extra={"stale": list(stale), "changed_by_plans": by})


def add_edit(session: Session, plan_id: int, *, op: Any, payload: Any,
             user_id: int | None) -> tuple[PlanEdit, Replayed]:
    """Check ``op``/``payload`` against the plan so far and append it; the new state."""
    check_edit(op, payload)
    rep = replay(session, plan_id, lock=True)
    _draft_only(rep.plan)
    read = read_codes(rep.state, op, payload)
    apply_edit(rep.state, op, payload, taken=store.all_codes(session))
    base = {c: int(rep.state.before[c].version or 0) for c in read}
    base.update({c: 0 for c in new_codes(op, payload)})
    edit = store.add_edit(session, plan_id, op=op, payload=dict(payload), base=base,
                          user_id=user_id)
    rep.edits.append(edit)
    return edit, rep


def stale_grids(session: Session, edits: Sequence[PlanEdit], *,
                lock: bool = False) -> list[dict[str, Any]]:
    """Grids whose version differs from the one an edit of the plan was drafted on (their
    rows locked when ``lock``)."""
    base: dict[str, int] = {}
    for edit in edits:
        for code, version in (edit.base or {}).items():
            base.setdefault(code, int(version))
    current = store.lock_versions(session, sorted(base), lock=lock)
    fresh = [c for c, v in base.items() if v == 0]
    taken = store.all_codes(session) & set(fresh) if fresh else set()
    out = []
    for code, version in sorted(base.items()):
        now = current.get(code, 0)
        if version == 0 and code in taken:
            out.append({"code": code, "drafted_on": 0, "now": now, "why": "the code is taken"})
        elif version and now != version:
            out.append({"code": code, "drafted_on": version, "now": now,
                        "why": "retired" if now == 0 else "new version"})
    return out


def check(session: Session, rep: Replayed, tolerance_m2: float) -> Validation:
    """Validate the replayed result (see :mod:`geo.plans.validate`)."""
    touched = [c for c in rep.state.touched() if c in rep.state.before]
    return validate(rep.state, rep.parent.geom, tolerance_m2,
                    grandchildren=store.grandchildren(session, touched))


def _feature(draft: Draft, status: str) -> dict[str, Any]:
    return {"type": "Feature", "id": draft.code,
            "geometry": geojson(draft.geom),
            "properties": {"code": draft.code, "name": draft.name, "level": draft.level,
                           "parent": draft.parent_code, "version": draft.version,
                           "status": status}}


def result_features(rep: Replayed) -> dict[str, Any]:
    """The parent's children after the plan as a GeoJSON FeatureCollection (with status)."""
    touched = set(rep.state.touched())
    feats = []
    for code, draft in sorted(rep.state.after.items()):
        status = ("created" if code not in rep.state.before else
                  "changed" if code in touched else "unchanged")
        feats.append(_feature(draft, status))
    return {"type": "FeatureCollection", "features": feats}


def plan_dict(rep: Replayed, validation: Validation | None = None) -> dict[str, Any]:
    """The plan as the API shows it."""
    plan = rep.plan
    out: dict[str, Any] = {
        "id": plan.id, "name": plan.name, "parent": plan.parent_code, "kind": plan.kind,
        "attrs": plan.attrs,
        "status": plan.status, "created_at": plan.created_at, "applied_at": plan.applied_at,
        "edits": [{"seq": e.seq, "op": e.op, "payload": e.payload, "base": e.base,
                   "created_at": e.created_at} for e in rep.edits],
        "touched": rep.state.touched(),
        "retired": [{"code": c, "successor": s} for c, s in sorted(rep.state.retired.items())],
        "result": result_features(rep),
        "applied": plan.result,
    }
    if validation is not None:
        out["validation"] = validation.to_dict()
    return out


def impact(session: Session, rep: Replayed, *, lookback_days: float, measure: impact_mod.Workload,
           now: dt.datetime | None = None) -> dict[str, Any]:
    """The impact preview of the replayed plan (see :mod:`geo.plans.impact`)."""
    if not (isinstance(lookback_days, int | float) and 0 < lookback_days <= 3660):
        raise InvalidInput(f"lookback_days {lookback_days!r} is out of range",
                           field="lookback_days", value=lookback_days,
                           valid="a number of days from more than 0 to 3660")
    measure.check()
    now = now or dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=lookback_days)
    area: BaseGeometry = rep.parent.geom
    points = store.incidents_near(session, area, since=since, codes=sorted(rep.state.before))
    workers = store.primary_workers(session, sorted(rep.state.before))
    duties = store.duties_of(session, sorted(rep.state.before))  # the retired and their heirs
    report = impact_mod.compare(rep.state, rep.parent.geom, lon=points.lon, lat=points.lat,
                                recent=points.recent, is_open=points.open, ids=points.id,
                                workers_before=workers, measure=measure,
                                grid_codes=points.grid_code, duties=duties,
                                teams=store.teams_of(session, sorted(rep.state.before)),
                                routes=store.routes_of(session, sorted(rep.state.before)),
                                retired_versions=last_versions(
                                    session, [c for c in rep.state.after
                                              if c not in rep.state.before]))
    return {"plan_id": rep.plan.id, "parent": rep.plan.parent_code,
            "lookback_days": lookback_days, "since": since.isoformat(),
            "until": now.isoformat(), **report}
