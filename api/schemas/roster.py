"""Requests and answers of the roster endpoints (workers, teams, duties).

Fields are typed loosely on purpose where the domain checks them (``geo.store.roster``),
so that a bad value gets an error naming the field, the value and what is valid.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from api.schemas.grids import Link
from geo.store.models import DUTY_KINDS, INT4_MAX, WORKER_ROLES

_ROLES = ", ".join(WORKER_ROLES)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerCreate(_In):
    """A new worker."""

    code: str = Field(description="Unique staff code.", examples=["W-0001"])
    name: str = Field(examples=["张伟"])
    role: str = Field(description=f"One of {_ROLES}.", examples=["grid_worker"])
    phone: str | None = None
    team_id: StrictInt | None = Field(None, ge=1, le=INT4_MAX)
    active: StrictBool = True


class WorkerPatch(_In):
    """Fields of a worker to change; fields left out stay as they are."""

    code: str | None = None
    name: str | None = None
    role: str | None = Field(None, description=f"One of {_ROLES}.")
    phone: str | None = None
    team_id: StrictInt | None = Field(None, ge=1, le=INT4_MAX)
    active: StrictBool | None = Field(None, description="false deactivates: the worker's "
                                      "open incidents are handed over.")


class WorkerOut(BaseModel):
    """A worker of the roster."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    phone: str | None
    role: str
    team_id: int | None
    active: bool
    last_seen_at: dt.datetime | None


class HandedOver(BaseModel):
    """One open incident handed over from an inactive worker."""

    id: int
    from_worker: int
    to_worker: int | None = Field(description="null: nobody qualifies (see reason).")
    rule: str | None
    reason: str | None
    from_status: str
    status: str = Field(description="dispatched (to the new worker) or registered (the "
                                    "dispatcher's queue) when the old worker had taken it on.")


class HandOver(BaseModel):
    """The open incidents of a worker made inactive, handed over in the same transaction."""

    handed_over: int = 0
    to_nobody: int = 0
    incidents: list[HandedOver] = Field(default_factory=list,
                                        description="The first 100 handed over.")
    tasks_released: list[int] = Field(
        default_factory=list, description="Ids of the patrol tasks the worker had claimed "
                                          "whose window is not over: open again to claim.")


class WorkerChanged(WorkerOut):
    """A worker after an edit, with the open incidents handed over if now inactive."""

    incidents: HandOver = Field(default_factory=HandOver)


class WorkerPage(BaseModel):
    """A page of workers."""

    items: list[WorkerOut]
    total: int
    limit: int
    offset: int
    links: list[Link] = Field(default_factory=list)


class TeamCreate(_In):
    """A new team."""

    code: str = Field(examples=["T-01"])
    name: str = Field(examples=["安泰街道巡逻一队"])
    kind: str = Field("patrol", description="patrol, volunteer, police, ...")
    grid_code: str | None = Field(None, description="The current grid (street) it belongs to.")


class TeamPatch(_In):
    """Fields of a team to change."""

    code: str | None = None
    name: str | None = None
    kind: str | None = None
    grid_code: str | None = None


class TeamOut(BaseModel):
    """A team."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    kind: str
    grid_code: str | None


class ShiftIn(_In):
    """A weekly shift in local time; ``end`` before ``start`` runs past midnight."""

    days: list[StrictInt] = Field(description="Weekdays, Monday=0 .. Sunday=6 (whole numbers, "
                                  "not true or \"1\").", examples=[[0, 1, 2]])
    start: str = Field(description="HH:MM", examples=["08:30"])
    end: str = Field(description="HH:MM (24:00 allowed)", examples=["17:30"])


class DutyCreate(_In):
    """A worker's duty on a grid."""

    worker_id: StrictInt = Field(ge=1, le=INT4_MAX,
                                 description="The worker (GET /api/v1/workers).")
    grid_code: str = Field(description="A current grid.")
    kind: str = Field(description=f"One of {', '.join(DUTY_KINDS)} (A角 / B角).")
    shifts: list[ShiftIn] = Field(default_factory=list,
                                  description="Empty means always on duty.")
    categories: list[str] | None = Field(
        None, description="Only these incident categories; null means all.")


class DutyOut(BaseModel):
    """A duty."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    worker_id: int
    grid_code: str
    kind: str
    shifts: list[ShiftIn]
    categories: list[str] | None
