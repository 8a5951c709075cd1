"""The closed loop over HTTP: status changes, evaluation, merging, candidates, escalation.

- ``POST /incidents/{id}/status``: roles ``dispatcher`` (every allowed change) and
  ``patrol`` (only accepted, in_progress, disposed);
- ``POST /incidents/{id}/evaluation`` and ``/merge``, ``POST /escalations``: ``dispatcher``;
- ``GET /incidents/{id}/candidates``: any role.

Optimistic locking: answers carry ``ETag: "<version>"``. Send the version back in
the body (``version``; a stale one answers 409) or as ``If-Match`` (412).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Dispatcher, Reader, require_role
from api.deps import BigId, SessionDep, SettingsDep
from api.errors import status_for
from api.schemas.incident_loop import (
    Candidates,
    EscalationReportOut,
    EvaluationIn,
    EventOut,
    IncidentState,
    MergeIn,
    RelatedOut,
    StatusChange,
)
from geo.errors import DomainError, InvalidInput
from geo.incidents import duplicates, escalation, loop
from geo.store.grid_queries import parse_at
from geo.store.models import Incident, IncidentEvent
from geo.store.users import Principal

router = APIRouter(tags=["incident loop"])

StatusEditor = Annotated[Principal, Depends(require_role("dispatcher", "patrol"))]
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')
IF_MATCH_VALID = 'the incident\'s ETag, e.g. "3" (its version), or *'


def _tagged(if_match: str | None) -> bool:
    """Whether a stale version came from ``If-Match`` (412) rather than the body (409)."""
    return if_match is not None and if_match.strip() != "*"


def _expected(version: int | None, if_match: str | None) -> tuple[int | None, bool]:
    """The version to check and whether it came from If-Match (stale -> 412, not 409)."""
    if if_match is None or not _tagged(if_match):
        return version, False
    match = _ETAG.match(if_match)
    if match is None:
        raise InvalidInput(f"If-Match {if_match!r} is not an ETag of an incident",
                           field="If-Match", value=if_match, valid=IF_MATCH_VALID)
    tagged = int(match.group(1))
    if version is not None and version != tagged:
        raise InvalidInput(f"version {version} and If-Match {if_match!r} disagree",
                           field="version", value=version,
                           valid=f"the same version as If-Match ({tagged}), or leave one out")
    return tagged, True


def _last_event(session: Session, incident_id: int) -> EventOut | None:
    event = session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                            .order_by(IncidentEvent.id.desc()).limit(1)).first()
    if event is None:
        return None
    return EventOut(at=event.at, actor=event.actor, from_status=event.from_status,
                    to_status=event.to_status, note=event.note, data=event.data or {})


def _answer(session: Session, incident: Incident, response: Response) -> IncidentState:
    response.headers["ETag"] = f'"{incident.version}"'
    return IncidentState.of(incident, _last_event(session, incident.id))


@contextmanager
def _conflicts(from_header: bool, session: Session, incident_id: int) -> Iterator[None]:
    """A stale version or a refused transition as 409 (412 for a stale ``If-Match``), and
    any other refusal with its own status, each with the incident's current ``ETag`` so
    that the client can retry without reading again (none when the incident is unknown).
    A body FastAPI refuses before the endpoint runs (not the schema, a NUL in a text) gets
    none: the incident is not read for a request that is not one."""
    try:
        yield
    except loop.StaleVersion as exc:
        raise HTTPException(status_code=412 if from_header else 409, detail=exc.to_dict(),
                            headers=_etag(exc.extra.get("current_version"))) from exc
    except loop.TransitionNotAllowed as exc:
        raise HTTPException(status_code=409, detail=exc.to_dict(),
                            headers=_etag(exc.extra.get("version"))) from exc
    except DomainError as exc:
        raise HTTPException(status_code=status_for(exc), detail=exc.to_dict(),
                            headers=_etag(_version(session, incident_id))) from exc
    except HTTPException as exc:  # the endpoint's own refusals (403)
        exc.headers = {**(exc.headers or {}), **(_etag(_version(session, incident_id)) or {})}
        raise


def _version(session: Session, incident_id: int) -> int | None:
    return session.execute(select(Incident.version).where(
        Incident.id == incident_id)).scalar_one_or_none()


def _etag(version: object) -> dict[str, str] | None:
    return {"ETag": f'"{version}"'} if isinstance(version, int) else None


IfMatch = Annotated[str | None, Header(alias="If-Match", description=(
    'The ETag you last read ("<version>"); 412 when the incident changed since.'))]


@router.post("/incidents/{incident_id}/status", response_model=IncidentState)
def change_status(incident_id: BigId, body: StatusChange, session: SessionDep,
                  principal: StatusEditor, response: Response,
                  if_match: IfMatch = None) -> IncidentState:
    """Move the incident to ``status`` with a ``note``; one event records who, when, from, to.

    409 when the transition is not allowed (the answer lists ``allowed``) or the
    ``version`` is stale; 412 when ``If-Match`` is stale; 403 when a ``patrol``
    user asks for another status than accepted, in_progress or disposed."""
    with _conflicts(_tagged(if_match), session, incident_id):
        loop.check_status(body.status)  # an unknown status is a 422 for every role
        if principal.role == "patrol" and body.status not in loop.FIELD_STATUSES:
            raise HTTPException(status_code=403, detail={
                "message": f"role 'patrol' may not set status {body.status!r}",
                "field": "status", "value": body.status,
                "valid": ", ".join(loop.FIELD_STATUSES) + " (dispatchers may set the others)"})
        expected, _ = _expected(body.version, if_match)
        incident = loop.change_status(session, incident_id, body.status, note=body.note,
                                      actor=principal.name, expected_version=expected,
                                      worker_id=body.worker_id)
    return _answer(session, incident, response)


@router.post("/incidents/{incident_id}/evaluation", response_model=IncidentState)
def evaluate(incident_id: BigId, body: EvaluationIn, session: SessionDep, principal: Dispatcher,
             response: Response, if_match: IfMatch = None) -> IncidentState:
    """Record the reporter's evaluation (score 1-5 and a comment) of a closed incident.

    409 when it is not closed or was evaluated differently before; sending the
    same evaluation again is a harmless retry."""
    with _conflicts(_tagged(if_match), session, incident_id):
        expected, _ = _expected(body.version, if_match)
        incident = loop.evaluate(session, incident_id, score=body.score,  # type: ignore[arg-type]
                                 comment=body.comment, actor=principal.name,
                                 expected_version=expected)
    return _answer(session, incident, response)


@router.post("/incidents/{incident_id}/merge", response_model=IncidentState)
def merge(incident_id: BigId, body: MergeIn, session: SessionDep, principal: Dispatcher,
          response: Response, if_match: IfMatch = None) -> IncidentState:
    """Merge this incident into ``into`` (the one it repeats): it becomes ``duplicate``,
    its candidates move to ``into``, and both get an event."""
    with _conflicts(_tagged(if_match), session, incident_id):
        expected, _ = _expected(body.version, if_match)
        incident = duplicates.merge(session, incident_id, body.into, actor=principal.name,
                                    note=body.note, expected_version=expected)
    return _answer(session, incident, response)


@router.get("/incidents/{incident_id}/candidates", response_model=Candidates)
def candidates(incident_id: BigId, session: SessionDep, _: Reader) -> Candidates:
    """Incidents linked to this one: the one it may repeat (``candidate_of``), those that may
    repeat it (``candidate``: same category, within 50 m and 2 h by default) and those
    merged into it (``merged``)."""
    found = duplicates.related(session, incident_id)
    return Candidates(id=incident_id, candidates=[RelatedOut.of(r) for r in found])


@router.post("/escalations", response_model=EscalationReportOut)
def escalate(session: SessionDep, settings: SettingsDep, principal: Dispatcher,
             dry_run: Annotated[bool, Query(description="Report only; change nothing.")]
             = False,
             now: Annotated[str | None, Query(description="Judge as of this moment (ISO "
                                                          "8601; default now).")] = None,
             ) -> EscalationReportOut:
    """Run the escalation now (the server also runs it every ``escalation_interval_s``):
    overdue incidents move one level up to that level's manager."""
    try:
        when = parse_at(now, settings.tz)  # None: the clock once the run's lock is held
    except InvalidInput as exc:
        raise InvalidInput(f"now {now!r} is not a date-time", field="now", value=now,
                           valid=str(exc.valid)) from exc
    report = escalation.escalate_overdue(session, when, settings, dry_run=dry_run,
                                         actor=f"{principal.name} (escalation)")
    if dry_run:
        session.rollback()
    return EscalationReportOut.of(report)
