"""``/api/v1/plans``: draft, edit, validate, preview and apply grid plans (planner, admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.encoders import jsonable_encoder

from api.auth import Planner
from api.deps import Id, SessionDep, SettingsDep
from api.schemas.plans import EDIT_EXAMPLES, PlanIn, SuggestIn
from geo.errors import InvalidInput
from geo.plans import apply as apply_mod
from geo.plans import service
from geo.plans.impact import Workload
from geo.plans.suggested import suggest_plan

router = APIRouter(prefix="/plans", tags=["plans"])

LookbackQuery = Annotated[float, Query(gt=0, le=3660, description="Incidents reported this "
                                                                   "many days back count.")]
WorkloadQuery = Annotated[str, Query(description="incidents, households or mix")]
WeightQuery = Annotated[float, Query(ge=0, le=1, description="Share of incidents in mix.")]


@router.post("", status_code=201)
def create_plan(body: PlanIn, session: SessionDep, settings: SettingsDep,
                who: Planner) -> dict[str, Any]:
    """A new draft plan redrawing the children of grid ``parent`` (a community or street)."""
    plan = service.create_plan(session, name=body.name, parent=body.parent,
                               user_id=who.user_id)
    rep = service.replay(session, plan.id)
    return jsonable_encoder(service.plan_dict(rep))


@router.post("/suggest", status_code=201)
def suggest(body: SuggestIn, session: SessionDep, settings: SettingsDep,
            who: Planner) -> dict[str, Any]:
    """A partition of ``parent`` into ``k`` contiguous grids from H3 cells balancing the
    workload (``incidents`` over the look-back, ``households`` or ``mix``), stored as a draft
    plan: ``{plan: {id, ...}, impact: {..., balance: {cv_before, cv_after}}}``."""
    return jsonable_encoder(suggest_plan(
        session, parent=body.parent, k=body.k, measure=Workload(body.workload, body.weight),
        lookback_days=body.lookback_days, settings=settings, user_id=who.user_id,
        resolution=body.resolution, seed=body.seed, name=body.name,
        compactness=body.compactness))


@router.post("/{plan_id}/edits", status_code=201)
def add_edit(plan_id: Id, session: SessionDep, settings: SettingsDep, who: Planner,
             body: Annotated[dict[str, Any], Body(openapi_examples=EDIT_EXAMPLES)]
             ) -> dict[str, Any]:
    """Append one edit (``op`` and its fields, see the README) and answer the plan with its
    result and validation. Geometries are GeoJSON in WGS-84, (lon, lat)."""
    if not isinstance(body, dict) or "op" not in body:
        raise InvalidInput("the edit needs an op", field="op", value=None,
                           valid="replace, split, merge, move_cells, create or retire")
    payload = {k: v for k, v in body.items() if k != "op"}
    _, rep = service.add_edit(session, plan_id, op=body["op"], payload=payload,
                              user_id=who.user_id)
    return jsonable_encoder(service.plan_dict(
        rep, service.check(session, rep, settings.topology_tolerance_m2)))


@router.get("/{plan_id}")
def get_plan(plan_id: Id, session: SessionDep, settings: SettingsDep,
             _: Planner) -> dict[str, Any]:
    """The plan, its edits, its result as GeoJSON and its validation (``stale``: grids that
    changed since it was drafted)."""
    rep = service.replay(session, plan_id)
    out = service.plan_dict(rep, service.check(session, rep, settings.topology_tolerance_m2)
                            if rep.plan.status == "draft" else None)
    out["stale"] = service.stale_grids(session, rep.edits) if rep.plan.status == "draft" \
        else []
    return jsonable_encoder(out)


@router.get("/{plan_id}/impact")
def plan_impact(plan_id: Id, session: SessionDep, settings: SettingsDep, _: Planner,
                lookback_days: LookbackQuery = 365.0, workload: WorkloadQuery = "incidents",
                weight: WeightQuery = 0.5) -> dict[str, Any]:
    """Per touched grid before and after: area, population, households, incidents over the
    look-back, open incidents that would move, workers and their workload; the parent's
    balance ``{cv_before, cv_after}`` and Polsby-Popper compactness."""
    rep = service.replay(session, plan_id)
    return jsonable_encoder(service.impact(session, rep, lookback_days=lookback_days,
                                           measure=Workload(workload, weight)))


@router.post("/{plan_id}/apply")
def apply_plan(plan_id: Id, session: SessionDep, settings: SettingsDep,
               who: Planner) -> dict[str, Any]:
    """Apply the plan in one transaction: new grid versions (old ones get ``valid_to``), the
    roster of retired grids moved to their heirs (``roster``, to confirm), open incidents
    placed again with an event each. 409 when its grids changed since it was drafted (another
    plan applied first), 422 when it does not validate; nothing is written then."""
    return jsonable_encoder(apply_mod.apply_plan(session, plan_id, user_id=who.user_id,
                                                 actor=f"plan:{who.name}", settings=settings))
