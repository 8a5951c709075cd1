"""``/api/v1/workers``, ``/teams``, ``/duties``: the roster.

Reads need any role; writes need ``planner`` or ``dispatcher`` (``admin`` passes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from api.auth import Reader, require_role
from api.deps import Id, IdFilter, SessionDep, SettingsDep
from api.schemas.grids import Link
from api.schemas.roster import (
    DutyCreate,
    DutyOut,
    HandOver,
    TeamCreate,
    TeamOut,
    TeamPatch,
    WorkerChanged,
    WorkerCreate,
    WorkerOut,
    WorkerPage,
    WorkerPatch,
)
from geo.incidents.handover import change_worker
from geo.settings import Settings
from geo.store import roster
from geo.store.grid_queries import check_page
from geo.store.users import Principal

router = APIRouter(tags=["roster"])

RosterEditor = Annotated[Principal, Depends(require_role("planner", "dispatcher"))]


# --------------------------------------------------------------------------- workers

@router.get("/workers", response_model=WorkerPage)
def list_workers(
    request: Request, session: SessionDep, settings: SettingsDep, _: Reader,
    role: Annotated[str | None, Query(description="grid_worker, patrol, volunteer, "
                                                  "dispatcher or manager")] = None,
    grid: Annotated[str | None, Query(description="Workers with a duty on this grid.")] = None,
    team_id: IdFilter = None,
    active: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> WorkerPage:
    """Workers ordered by code, filtered by role, grid (has a duty there), team, active."""
    size = limit if limit is not None else settings.page_limit
    check_page(size, offset, settings.max_page_limit)
    items, total = roster.list_workers(session, role=role, grid=grid, team_id=team_id,
                                       active=active, limit=size, offset=offset)
    links = []
    if offset + size < total:
        links.append(Link(rel="next", type="application/json", href=str(
            request.url.include_query_params(limit=size, offset=offset + size))))
    return WorkerPage(items=[WorkerOut.model_validate(w) for w in items], total=total,
                      limit=size, offset=offset, links=links)


@router.post("/workers", response_model=WorkerOut, status_code=201)
def create_worker(body: WorkerCreate, session: SessionDep, _: RosterEditor) -> WorkerOut:
    """Add a worker (409 when the code is taken)."""
    return WorkerOut.model_validate(roster.create_worker(session, **body.model_dump()))


@router.get("/workers/{worker_id}", response_model=WorkerOut)
def get_worker(worker_id: Id, session: SessionDep, _: Reader) -> WorkerOut:
    """One worker."""
    return WorkerOut.model_validate(roster.get_worker(session, worker_id))


@router.patch("/workers/{worker_id}", response_model=WorkerChanged)
def patch_worker(worker_id: Id, body: WorkerPatch, session: SessionDep, settings: SettingsDep,
                 who: RosterEditor) -> WorkerChanged:
    """Change the fields given (``active: true`` reactivates; ``active: false`` hands the
    worker's open incidents over, as deactivate does)."""
    return _changed(session, worker_id, body.model_dump(exclude_unset=True), settings, who,
                    "worker edit")


@router.post("/workers/{worker_id}/deactivate", response_model=WorkerChanged)
def deactivate_worker(worker_id: Id, session: SessionDep, settings: SettingsDep,
                      who: RosterEditor) -> WorkerChanged:
    """Mark a worker inactive: kept for history, never chosen as responsible. The worker's
    open incidents are handed over to whoever the rules choose now (``incidents``); 409
    when a bulk import holds the assignments for more than a few seconds."""
    return _changed(session, worker_id, {"active": False}, settings, who, "deactivation")


def _changed(session: Session, worker_id: int, changes: dict[str, Any], settings: Settings,
             who: Principal, source: str) -> WorkerChanged:
    worker, moved = change_worker(session, worker_id, changes, settings=settings,
                                  actor=who.name, source=source)
    out = WorkerChanged.model_validate(worker)
    out.incidents = HandOver(**moved)
    return out


# --------------------------------------------------------------------------- teams

@router.get("/teams", response_model=list[TeamOut])
def list_teams(session: SessionDep, _: Reader, kind: str | None = None) -> list[TeamOut]:
    """Teams ordered by code."""
    return [TeamOut.model_validate(t) for t in roster.list_teams(session, kind=kind)]


@router.post("/teams", response_model=TeamOut, status_code=201)
def create_team(body: TeamCreate, session: SessionDep, _: RosterEditor) -> TeamOut:
    """Add a team (409 when the code is taken)."""
    return TeamOut.model_validate(roster.create_team(session, **body.model_dump()))


@router.get("/teams/{team_id}", response_model=TeamOut)
def get_team(team_id: Id, session: SessionDep, _: Reader) -> TeamOut:
    """One team."""
    return TeamOut.model_validate(roster.get_team(session, team_id))


@router.patch("/teams/{team_id}", response_model=TeamOut)
def patch_team(team_id: Id, body: TeamPatch, session: SessionDep,
               _: RosterEditor) -> TeamOut:
    """Change the fields given."""
    changes = body.model_dump(exclude_unset=True)
    return TeamOut.model_validate(roster.update_team(session, team_id, changes))


# --------------------------------------------------------------------------- duties

@router.get("/duties", response_model=list[DutyOut])
def list_duties(session: SessionDep, _: Reader, grid: str | None = None,
                worker_id: IdFilter = None, kind: str | None = None) -> list[DutyOut]:
    """Duties, by grid, worker or kind (primary first)."""
    duties = roster.list_duties(session, grid=grid, worker_id=worker_id, kind=kind)
    return [DutyOut.model_validate(d) for d in duties]


@router.post("/duties", response_model=DutyOut, status_code=201)
def create_duty(body: DutyCreate, session: SessionDep, _: RosterEditor) -> DutyOut:
    """Give a worker a primary (A角) or backup (B角) duty on a current grid."""
    duty = roster.create_duty(session, worker_id=body.worker_id, grid_code=body.grid_code,
                              kind=body.kind, shifts=[s.model_dump() for s in body.shifts],
                              categories=body.categories)
    return DutyOut.model_validate(duty)


@router.delete("/duties/{duty_id}", status_code=204)
def delete_duty(duty_id: Id, session: SessionDep, _: RosterEditor) -> Response:
    """Remove a duty."""
    roster.delete_duty(session, duty_id)
    return Response(status_code=204)
