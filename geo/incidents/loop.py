"""The closed loop of an incident: its statuses, the allowed transitions, the evaluation.

Statuses
--------
The main line is ``registered → dispatched → accepted → in_progress → disposed →
verified → closed``; ``rejected`` and ``duplicate`` end an incident early.
:data:`ALLOWED` lists, for each status, the statuses it may change to:

=============  ==========================================================
from           to
=============  ==========================================================
registered     dispatched, rejected, duplicate
dispatched     accepted, registered (declined: back to the queue),
               rejected, duplicate
accepted       in_progress, dispatched (handed back for another worker),
               duplicate
in_progress    disposed
disposed       verified, in_progress (verification failed: rework)
verified       closed
closed, rejected, duplicate: final
=============  ==========================================================

Rules on top of the table:

- ``dispatched`` needs a worker: the incident's own, or one given with the
  change (``worker_id``; the incident's ``rule`` becomes ``dispatcher``);
- ``rejected`` needs a note (the reason told to the reporter); the duplicate
  candidate links to the rejected incident are dropped (listed on its event as
  ``unlinked_candidates``), since it can no longer be merged into;
- ``duplicate`` is reached only by merging (``geo.incidents.duplicates.merge``),
  which also says which incident it duplicates;
- ``closed``, ``rejected`` and ``duplicate`` set ``closed_at``;
- workers in the field (API role ``patrol``) may only move an incident to
  :data:`FIELD_STATUSES`; dispatchers may make every allowed change.

Every change locks the incident's row, checks the caller's ``expected_version``
(stale: :class:`StaleVersion`), bumps ``version`` and writes an
``incident_event`` (who, when, from, to, note).

SLA
---
An incident is *overdue* when ``due_at`` has passed while its status is still
one of :data:`PENDING_STATUSES` (not yet disposed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, text
from sqlalchemy.orm import Session

from geo.errors import Conflict, InvalidInput, NotFound, storable_text
from geo.store.grid_lock import hold_shared
from geo.store.models import INCIDENT_STATUSES, INT4_MAX, Incident, IncidentEvent, Worker

#: Status -> the statuses it may change to (see the module docstring).
ALLOWED: dict[str, tuple[str, ...]] = {
    "registered": ("dispatched", "rejected", "duplicate"),
    "dispatched": ("accepted", "registered", "rejected", "duplicate"),
    "accepted": ("in_progress", "dispatched", "duplicate"),
    "in_progress": ("disposed",),
    "disposed": ("verified", "in_progress"),
    "verified": ("closed",),
    "closed": (),
    "rejected": (),
    "duplicate": (),
}
#: The main line from intake to closure.
MAIN_LINE = ("registered", "dispatched", "accepted", "in_progress", "disposed", "verified",
             "closed")
#: Statuses that end the loop.
FINAL_STATUSES = ("closed", "rejected", "duplicate")
#: Statuses of incidents still in the loop.
OPEN_STATUSES = tuple(s for s in INCIDENT_STATUSES if s not in FINAL_STATUSES)
#: Statuses in which the SLA still runs: an incident in one of them past ``due_at`` is overdue.
PENDING_STATUSES = ("registered", "dispatched", "accepted", "in_progress")
#: Statuses a worker in the field (API role ``patrol``) may set.
FIELD_STATUSES = ("accepted", "in_progress", "disposed")
NOTE_MAX = 2000
COMMENT_MAX = 2000

assert set(ALLOWED) == set(INCIDENT_STATUSES)
assert all(set(targets) <= set(INCIDENT_STATUSES) for targets in ALLOWED.values())


class StaleVersion(Conflict):
    """The caller's ``version`` (or ``If-Match``) is not the incident's current version."""


class TransitionNotAllowed(Conflict):
    """The incident's current status may not change to the asked one."""


# --------------------------------------------------------------------------- helpers

def overdue_clause(now: Any) -> ColumnElement[bool]:
    """SQL condition of an overdue incident at ``now`` (a datetime or SQL expression)."""
    return and_(Incident.status.in_(PENDING_STATUSES), Incident.due_at.is_not(None),
                Incident.due_at < now)


def _valid_statuses() -> str:
    return ", ".join(INCIDENT_STATUSES)


def check_status(value: Any, field: str = "status") -> str:
    """``value`` when it is one of the nine statuses; InvalidInput otherwise."""
    if not isinstance(value, str) or value not in INCIDENT_STATUSES:
        raise InvalidInput(f"{field} {value!r} is not an incident status", field=field,
                           value=value, valid=_valid_statuses())
    return value


def _check_text(value: Any, field: str, max_len: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{field} must be a text of at most {max_len} characters",
                           field=field, value=value if isinstance(value, str) else repr(value),
                           valid=f"a text of at most {max_len} characters, or null")
    return storable_text(value.strip(), field) or None


def lock_incident(session: Session, incident_id: int) -> Incident:
    """The incident, its row locked until the transaction ends; NotFound when there is none."""
    incident = session.execute(
        select(Incident).where(Incident.id == incident_id).with_for_update()
        .execution_options(populate_existing=True)).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"there is no incident with id {incident_id}", field="id",
                       value=incident_id, valid="the id of an incident (GET /api/v1/incidents)")
    return incident


def check_version(incident: Incident, expected_version: int | None) -> None:
    """Raise :class:`StaleVersion` when ``expected_version`` is given and is not current."""
    if expected_version is not None and expected_version != incident.version:
        raise StaleVersion(
            f"incident {incident.id} is at version {incident.version}, not "
            f"{expected_version}: someone changed it; read it again and retry",
            field="version", value=expected_version, valid=f"{incident.version} (the current "
            "version)", extra={"current_version": incident.version,
                               "status": incident.status})


def record_event(session: Session, incident_id: int, *, actor: str | None,
                 from_status: str | None, to_status: str | None, note: str | None = None,
                 data: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> None:
    """Append one ``incident_event`` (``at`` defaults to the transaction's time)."""
    values: dict[str, Any] = {"incident_id": incident_id, "actor": actor,
                              "from_status": from_status, "to_status": to_status,
                              "note": note, "data": dict(data or {})}
    if at is not None:
        values["at"] = at
    session.execute(insert(IncidentEvent).values(**values))


def _when(at: dt.datetime | None) -> Any:
    if at is None:
        return func.now()
    if at.tzinfo is None:
        raise InvalidInput("at must carry a time zone offset", field="at", value=at.isoformat(),
                           valid="a timezone-aware datetime")
    return at


def _not_allowed(incident: Incident, to_status: str) -> TransitionNotAllowed:
    allowed = [s for s in ALLOWED[incident.status] if s != "duplicate"]
    merge = " (duplicate: by merging)" if "duplicate" in ALLOWED[incident.status] else ""
    valid = (", ".join(allowed) + merge) if allowed else f"none: {incident.status} is final"
    return TransitionNotAllowed(
        f"incident {incident.id} is {incident.status}: it cannot change to {to_status}",
        field="status", value=to_status, valid=valid,
        extra={"from": incident.status, "allowed": list(ALLOWED[incident.status]),
               "version": incident.version})


def _dispatch_worker(session: Session, incident: Incident, worker_id: Any) -> int | None:
    if worker_id is None:
        if incident.worker_id is None:
            raise Conflict(f"incident {incident.id} has no worker to dispatch to",
                           field="worker_id", value=None,
                           valid="the id of an active worker (GET /api/v1/workers)")
        return None
    known = isinstance(worker_id, int) and 1 <= worker_id <= INT4_MAX
    # read after change_status took the assignment lock: a deactivation (which hands
    # incidents over) has committed before it, or waits for this commit
    worker = session.get(Worker, worker_id, populate_existing=True) if known else None
    if worker is None or not worker.active:
        raise InvalidInput(f"worker_id {worker_id!r} is not the id of an active worker",
                           field="worker_id", value=worker_id,
                           valid="the id of an active worker (GET /api/v1/workers)")
    return int(worker.id)


# --------------------------------------------------------------------------- changes

#: ``unassigned_reason`` of an incident its worker declined (``dispatched -> registered``):
#: it waits, without a worker, in the dispatcher's queue until dispatched to someone.
DECLINED = "declined by the worker it was dispatched to; dispatch it to another worker"

def change_status(session: Session, incident_id: int, to_status: str, *, note: str | None = None,
                  actor: str, expected_version: int | None = None,
                  worker_id: int | None = None, at: dt.datetime | None = None) -> Incident:
    """Move an incident to ``to_status`` if :data:`ALLOWED`, with its event.

    Parameters
    ----------
    session : Session
        The caller's transaction (the row stays locked until it ends).
    incident_id : int
    to_status : str
        One of the nine statuses; ``duplicate`` is refused here (use ``merge``).
    note : str, optional
        Why; required for ``rejected``. At most 2000 characters.
    actor : str
        Who (a user name, ``worker:<code>``, ``system:…``); stored on the event.
    expected_version : int, optional
        The version the caller last read; a different current version raises
        :class:`StaleVersion`.
    worker_id : int, optional
        Only with ``dispatched``: dispatch to this worker instead of the
        incident's own (its ``rule`` becomes ``dispatcher``).
    at : datetime, optional
        When it happened (timezone-aware; for importing history); now by default.

    Returns
    -------
    Incident
        The changed incident (flushed).

    Raises
    ------
    NotFound, InvalidInput, StaleVersion, TransitionNotAllowed, Conflict
    """
    check_status(to_status)
    text_note = _check_text(note, "note", NOTE_MAX)
    if worker_id is not None and to_status != "dispatched":
        raise InvalidInput("worker_id may only be given with status dispatched",
                           field="worker_id", value=worker_id,
                           valid="null, or status 'dispatched' with the worker's id")
    when = _when(at)
    if worker_id is not None:  # before the row lock: a deactivation holds it, then the rows
        hold_shared(session)
    incident = lock_incident(session, incident_id)
    check_version(incident, expected_version)
    if to_status not in ALLOWED[incident.status]:
        raise _not_allowed(incident, to_status)
    if to_status == "duplicate":
        raise InvalidInput(
            f"incident {incident.id} becomes a duplicate only by merging it into another",
            field="status", value=to_status,
            valid=f"POST /api/v1/incidents/{incident.id}/merge with {{\"into\": <id>}}, or one "
                  "of " + ", ".join(s for s in ALLOWED[incident.status] if s != "duplicate"))
    if to_status == "rejected" and text_note is None:
        raise InvalidInput("rejecting an incident needs a note (the reason)", field="note",
                           value=note, valid="a non-empty text of at most 2000 characters")
    data: dict[str, Any] = {}
    if to_status == "dispatched":
        new_worker = _dispatch_worker(session, incident, worker_id)
        if new_worker is not None and new_worker != incident.worker_id:
            data.update(from_worker_id=incident.worker_id, worker_id=new_worker,
                        rule="dispatcher")
            incident.worker_id = new_worker
            incident.rule = "dispatcher"
            if incident.grid_code is not None:  # one outside every grid keeps saying so
                incident.unassigned_reason = None
    elif incident.status == "dispatched" and to_status == "registered":
        # declined: back to the dispatcher's queue (unassigned=true), without the worker
        data.update(from_worker_id=incident.worker_id, from_rule=incident.rule)
        incident.worker_id = None
        incident.rule = "none"
        incident.unassigned_reason = DECLINED if incident.grid_code is not None or \
            incident.unassigned_reason is None else \
            f"{incident.unassigned_reason.removesuffix('; ' + DECLINED)}; {DECLINED}"
    elif to_status == "rejected":
        unlinked = session.scalars(
            text("UPDATE incident SET candidate_of = NULL WHERE candidate_of = :id "
                 "RETURNING id"), {"id": incident.id}).all()
        if unlinked:  # "may repeat a rejected report" would offer a merge that is refused
            data["unlinked_candidates"] = sorted(unlinked)
    from_status = incident.status
    incident.status = to_status
    incident.version = incident.version + 1
    if to_status in FINAL_STATUSES:
        incident.closed_at = when
    data["version"] = incident.version
    session.flush()
    record_event(session, incident.id, actor=actor, from_status=from_status,
                 to_status=to_status, note=text_note, data=data, at=at)
    session.flush()
    session.refresh(incident)
    return incident


def check_score(value: Any) -> int:
    """An evaluation score: an integer from 1 to 5."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise InvalidInput(f"score {value!r} is not an evaluation score", field="score",
                           value=value, valid="an integer from 1 (very unhappy) to 5 (very happy)")
    return value


def evaluate(session: Session, incident_id: int, *, score: int, comment: str | None = None,
             actor: str, expected_version: int | None = None,
             at: dt.datetime | None = None) -> Incident:
    """Record the reporter's evaluation of a closed incident (once).

    Sending the same evaluation again changes nothing (a safe retry); a
    different one on an evaluated incident is a :class:`~geo.errors.Conflict`.

    Parameters
    ----------
    session : Session
    incident_id : int
    score : int
        1 to 5.
    comment : str, optional
        At most 2000 characters.
    actor : str
        Who recorded it (the hotline operator, the app).
    expected_version : int, optional
        As in :func:`change_status`.
    at : datetime, optional
        When (timezone-aware); now by default.

    Returns
    -------
    Incident
    """
    check_score(score)
    text_comment = _check_text(comment, "comment", COMMENT_MAX)
    when = _when(at)
    incident = lock_incident(session, incident_id)
    if incident.evaluation_score is not None:
        if (incident.evaluation_score, incident.evaluation_comment) == (score, text_comment):
            return incident
        raise Conflict(f"incident {incident.id} was already evaluated "
                       f"({incident.evaluation_score}/5)", field="score", value=score,
                       valid="no new evaluation: an incident is evaluated once",
                       extra={"evaluation_score": incident.evaluation_score})
    check_version(incident, expected_version)
    if incident.status != "closed":
        raise Conflict(f"incident {incident.id} is {incident.status}: only a closed incident "
                       "can be evaluated", field="status", value=incident.status,
                       valid="closed")
    incident.evaluation_score = score
    incident.evaluation_comment = text_comment
    incident.evaluated_at = when
    incident.version = incident.version + 1
    session.flush()
    record_event(session, incident.id, actor=actor, from_status="closed", to_status="closed",
                 note=text_comment, data={"kind": "evaluation", "score": score,
                                          "version": incident.version}, at=at)
    session.flush()
    session.refresh(incident)
    return incident


_MANY = text("""
WITH moved AS (
    UPDATE incident AS i
       SET status = :to_status, version = i.version + 1,
           closed_at = CASE WHEN :final THEN v.at ELSE i.closed_at END
      FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])) AS v(id, at),
           (SELECT id, status FROM incident WHERE id = ANY(CAST(:ids AS bigint[]))
               FOR UPDATE) AS old
     WHERE i.id = v.id AND old.id = v.id AND old.status = ANY(CAST(:sources AS text[]))
 RETURNING i.id, old.status AS from_status, v.at, i.version
)
INSERT INTO incident_event (incident_id, at, actor, from_status, to_status, note, data)
SELECT id, at, :actor, from_status, :to_status, :note, jsonb_build_object('version', version)
  FROM moved
""")


def change_status_many(session: Session, changes: Sequence[tuple[int, dt.datetime]],
                       to_status: str, *, actor: str, note: str | None = None) -> int:
    """Set-based :func:`change_status` for many incidents (e.g. importing history).

    Only incidents whose current status may change to ``to_status`` move;
    the others are left alone. No version checks, no worker change.

    Parameters
    ----------
    changes : sequence of (incident id, when)
        ``when`` timezone-aware; each moved incident gets an event at that time.
    to_status : str
        Any status but ``duplicate`` and ``registered`` (a decline clears the worker:
        :func:`change_status`). That a ``dispatched`` incident has a
        worker is not checked here: callers dispatch incidents that have one.
    actor, note : str
        Stored on every event.

    Returns
    -------
    int
        How many incidents moved.
    """
    check_status(to_status)
    if to_status in ("duplicate", "registered"):
        raise InvalidInput(f"{to_status} is reached only one incident at a time (merging, or "
                           "a worker declining)", field="status", value=to_status,
                           valid=", ".join(s for s in INCIDENT_STATUSES
                                           if s not in ("duplicate", "registered")))
    if not changes:
        return 0
    for _, at in changes:
        _when(at)
    sources = [s for s, targets in ALLOWED.items() if to_status in targets]
    result = session.execute(_MANY, {
        "to_status": to_status, "final": to_status in FINAL_STATUSES,
        "ids": [int(i) for i, _ in changes], "ats": [at for _, at in changes],
        "sources": sources, "actor": actor, "note": _check_text(note, "note", NOTE_MAX)})
    return int(getattr(result, "rowcount", 0) or 0)


def allowed_next(status: str) -> list[str]:
    """The statuses an incident in ``status`` may change to (``duplicate`` by merging)."""
    return list(ALLOWED[check_status(status)])


#: Statuses whose work the worker had taken on (it is given out again).
TAKEN = frozenset(("dispatched", "accepted", "in_progress"))


def status_after(status: str, worker_id: int | None) -> str:
    """The status of an incident handed over to ``worker_id`` (None: nobody)."""
    if status not in TAKEN:
        return status
    return "dispatched" if worker_id is not None else "registered"


def taken_again(status: str, old_worker: int | None, new_worker: int | None) -> str | None:
    """The new status of an incident a grid change moves from ``old_worker`` to
    ``new_worker``, by the rule of :func:`status_after`; None (kept) when the worker stays:
    a new worker takes on again what the old one had taken on."""
    if old_worker == new_worker:
        return None
    after = status_after(status, new_worker)
    return None if after == status else after


__all__ = [
    "ALLOWED", "FIELD_STATUSES", "FINAL_STATUSES", "MAIN_LINE", "OPEN_STATUSES",
    "PENDING_STATUSES", "TAKEN", "StaleVersion", "TransitionNotAllowed", "allowed_next",
    "change_status", "change_status_many", "check_score", "check_status", "check_version",
    "evaluate", "lock_incident", "overdue_clause", "record_event", "status_after",
    "taken_again",
]
