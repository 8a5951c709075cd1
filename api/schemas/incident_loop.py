"""Requests and answers of the closed-loop endpoints: status, evaluation, merge, candidates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from geo.incidents.duplicates import Related
from geo.incidents.escalation import Escalation, EscalationReport
from geo.incidents.loop import ALLOWED
from geo.store.models import INCIDENT_STATUSES, INT4_MAX, INT8_MAX, Incident

_STATUSES = ", ".join(INCIDENT_STATUSES)
_VERSION = ("The version you last read; if the incident changed since, the answer is 409 "
            "(or 412 with an If-Match header).")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusChange(_In):
    """Move an incident to another status."""

    status: str = Field(description=f"One of {_STATUSES}; only the transitions of the "
                                    "closed loop are allowed (409 lists them).",
                        examples=["accepted"])
    note: str | None = Field(None, description="Why (required for rejected; ≤ 2000 chars).")
    version: StrictInt | None = Field(None, description=_VERSION)
    worker_id: StrictInt | None = Field(None, ge=1, le=INT4_MAX,
                                  description="Only with status dispatched: dispatch to this "
                                              "worker.")


class EvaluationIn(_In):
    """The reporter's evaluation of a closed incident."""

    score: int | float | str | bool = Field(description="1 (very unhappy) to 5 (very happy).",
                                            examples=[5])
    comment: str | None = Field(None, description="≤ 2000 characters.")
    version: StrictInt | None = Field(None, description=_VERSION)


class MergeIn(_In):
    """Merge this incident into the one it repeats."""

    into: StrictInt = Field(ge=1, le=INT8_MAX,
                            description="Id of the incident this one duplicates.")
    note: str | None = None
    version: StrictInt | None = Field(None, description=_VERSION)


class EventOut(BaseModel):
    """One entry of an incident's audit trail."""

    at: dt.datetime
    actor: str | None
    from_status: str | None
    to_status: str | None
    note: str | None
    data: dict[str, Any]


class IncidentState(BaseModel):
    """An incident's place in the loop after a change."""

    id: int
    status: str
    version: int = Field(description="Also sent as the ETag header: send it back as "
                                     "`version` or `If-Match`.")
    allowed: list[str] = Field(description="Statuses it may change to next (duplicate: "
                                           "by merging).")
    category: str
    grid_code: str | None
    worker_id: int | None
    rule: str | None
    escalation_level: int
    escalated_to: str | None
    escalated_at: dt.datetime | None
    reported_at: dt.datetime
    due_at: dt.datetime | None
    closed_at: dt.datetime | None
    candidate_of: int | None
    duplicate_of: int | None
    evaluation_score: int | None
    evaluation_comment: str | None
    evaluated_at: dt.datetime | None
    last_event: EventOut | None = None

    @classmethod
    def of(cls, incident: Incident, last_event: EventOut | None) -> IncidentState:
        """From the ORM row."""
        return cls(
            id=incident.id, status=incident.status, version=incident.version,
            allowed=list(ALLOWED[incident.status]), category=incident.category_code,
            grid_code=incident.grid_code, worker_id=incident.worker_id, rule=incident.rule,
            escalation_level=incident.escalation_level, escalated_to=incident.escalated_to,
            escalated_at=incident.escalated_at, reported_at=incident.reported_at,
            due_at=incident.due_at, closed_at=incident.closed_at,
            candidate_of=incident.candidate_of, duplicate_of=incident.duplicate_of,
            evaluation_score=incident.evaluation_score,
            evaluation_comment=incident.evaluation_comment,
            evaluated_at=incident.evaluated_at, last_event=last_event)


class RelatedOut(BaseModel):
    """An incident linked to the asked one."""

    id: int
    relation: str = Field(description="candidate_of (the one the asked incident may repeat), "
                                      "candidate (may repeat the asked one) or merged.")
    status: str
    category: str
    reported_at: dt.datetime
    lon: float
    lat: float
    grid_code: str | None
    worker_id: int | None
    description: str | None
    distance_m: float = Field(description="Geodesic distance to the asked incident (m).")
    minutes_apart: float = Field(description="reported_at minus the asked one's, in minutes.")

    @classmethod
    def of(cls, r: Related) -> RelatedOut:
        """From the domain record."""
        return cls(id=r.id, relation=r.relation, status=r.status, category=r.category_code,
                   reported_at=r.reported_at, lon=r.lon, lat=r.lat, grid_code=r.grid_code,
                   worker_id=r.worker_id, description=r.description,
                   distance_m=round(r.distance_m, 2), minutes_apart=round(r.minutes_apart, 2))


class Candidates(BaseModel):
    """The duplicate candidates around an incident."""

    id: int
    candidates: list[RelatedOut]


class EscalationOut(BaseModel):
    """One escalated incident."""

    incident_id: int
    level: int
    from_grid: str
    to_grid: str
    to_grid_name: str
    to_grid_level: str
    from_worker_id: int | None
    worker_id: int | None
    worker_code: str | None
    worker_name: str | None
    rule: str
    reason: str | None

    @classmethod
    def of(cls, e: Escalation) -> EscalationOut:
        """From the domain record."""
        return cls(**{name: getattr(e, name) for name in cls.model_fields})


class EscalationReportOut(BaseModel):
    """What an escalation run did."""

    now: dt.datetime
    dry_run: bool
    skipped: bool
    escalated: list[EscalationOut]
    at_top: list[int] = Field(description="Overdue incidents already at the top level.")
    unassigned: list[int] = Field(description="Overdue incidents without a grid (the "
                                              "dispatcher's queue).")

    @classmethod
    def of(cls, report: EscalationReport) -> EscalationReportOut:
        """From the domain report."""
        return cls(now=report.now, dry_run=report.dry_run, skipped=report.skipped,
                   escalated=[EscalationOut.of(e) for e in report.escalated],
                   at_top=report.at_top, unassigned=report.unassigned)
