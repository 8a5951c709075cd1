"""Open incidents of a deactivated worker handed over to whoever is responsible now.

A worker made inactive (``POST /workers/{id}/deactivate``, ``PATCH`` with
``active: false``, a roster import, a demo reload) is never chosen again, but
the incidents they held would stay with them, with nobody to act on them.
:func:`hand_over` runs in the same transaction as the change and gives each open
incident (not closed, rejected or a duplicate) of the workers now inactive:

- on its grid, when it was not escalated: the worker the fallback chain of
  :mod:`geo.incidents.responsible` chooses at ``at`` (rule ``primary``, ``backup``,
  ``community_manager``, ``street_nearest``);
- when it was escalated: the manager of the grid it was escalated to, by the
  escalation's rules (:func:`geo.incidents.escalation.choose_manager`; rule
  ``escalation_manager`` …);
- nobody (``worker_id`` null, ``unassigned_reason`` saying why) when no one
  qualifies, or when it has no grid.

Each gets an ``incident_event`` (``data.kind`` = ``"handover"``) with the worker
it came from and the one it went to; the version is bumped. Work the old worker
had taken on goes back to be taken on again: a ``dispatched``, ``accepted`` or
``in_progress`` incident becomes ``dispatched`` to its new worker, or
``registered`` (the dispatcher's queue) when nobody took it; a ``registered``,
``disposed`` or ``verified`` one keeps its status (the work is done, or not yet
given out).

A deactivation marks the worker inactive (the row stays locked until it commits),
then takes the assignment lock exclusive (:mod:`geo.store.grid_lock`), as a grid
change does, before it hands over: an intake, escalation or explicit dispatch that
chose the worker before commits first (so its incident is handed over too), and
those after it see the worker inactive. It waits at most a few seconds for a bulk
import, then answers 409 (retry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.incidents.escalation import choose_manager
from geo.incidents.loop import FINAL_STATUSES, status_after
from geo.incidents.regrid import choose_now
from geo.settings import Settings
from geo.store import roster
from geo.store.grid_lock import lock_exclusive
from geo.store.incident_queries import grid_chain
from geo.store.models import Worker
from geo.store.reassign import Reassignment, reassign
from geo.store.roster import duties_for_grid
from geo.store.tasks import release_claims

#: Most handed-over incidents listed one by one in an answer (all are counted).
LISTED = 100

_HELD_BY_INACTIVE = text("""
SELECT i.id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.grid_code, i.escalated_to,
       i.escalation_level, i.worker_id, w.code AS worker_code, i.status, i.category_code
  FROM incident i
  JOIN worker w ON w.id = i.worker_id
 WHERE i.worker_id = ANY(CAST(:workers AS integer[])) AND NOT w.active
   AND NOT i.status = ANY(CAST(:final AS text[]))
 ORDER BY i.id
   FOR UPDATE OF i
""")


def change_worker(session: Session, worker_id: int, changes: dict[str, Any], *,
                  settings: Settings, actor: str, source: str,
                  wait_s: float | None = None) -> tuple[Worker, dict[str, Any]]:
    """Apply ``changes`` to the worker (:func:`geo.store.roster.update_worker`); when they
    set ``active`` false, hand the worker's open incidents over (an edit of other fields
    hands nothing over). The worker and what
    :func:`hand_over` reports; :class:`~geo.errors.Conflict` when the assignments stay
    locked for more than ``wait_s`` (:func:`geo.store.grid_lock.lock_exclusive`)."""
    worker = roster.update_worker(session, worker_id, changes)  # checked, row locked
    if changes.get("active") is not False:
        return worker, {"handed_over": 0, "to_nobody": 0, "incidents": [], "tasks_released": []}
    lock_exclusive(session, wait_s=wait_s)
    return worker, hand_over(session, [worker.id], at=dt.datetime.now(dt.UTC),
                             settings=settings, actor=actor, source=source)


def hand_over(session: Session, worker_ids: Sequence[int], *, at: dt.datetime,
              settings: Settings, actor: str, source: str) -> dict[str, Any]:
    """Hand the open incidents of the inactive workers among ``worker_ids`` over (see the
    module docstring).

    Returns ``{"handed_over", "to_nobody", "incidents": [{id, from_worker, to_worker,
    rule, reason, from_status, status}]}`` (at most :data:`LISTED` listed). All are
    written with one statement (:func:`geo.store.reassign.reassign`).
    """
    if not worker_ids:
        return {"handed_over": 0, "to_nobody": 0, "incidents": [], "tasks_released": []}
    released = release_claims(session, _inactive(session, worker_ids), at)
    rows = session.execute(_HELD_BY_INACTIVE, {"workers": sorted(set(worker_ids)),
                                               "final": list(FINAL_STATUSES)}).all()
    items, details = [], []
    for r, (worker_id, rule, reason) in zip(rows, _choices(session, rows, at, settings),
                                            strict=True):
        status = status_after(r.status, worker_id)
        items.append(Reassignment(
            int(r.id), worker_id, rule, r.status, f"{source}: worker {r.worker_code} is inactive",
            data={"kind": "handover", "source": source, "from_worker": r.worker_id,
                  "to_worker": worker_id, "rule": rule, "reason": reason},
            reason=reason, status=status))
        details.append({"id": int(r.id), "from_worker": int(r.worker_id),
                        "to_worker": worker_id, "rule": rule, "reason": reason,
                        "from_status": r.status, "status": status})
    reassign(session, items, actor=actor)
    return {"handed_over": len(details),
            "to_nobody": sum(1 for d in details if d["to_worker"] is None),
            "incidents": details[:LISTED], "tasks_released": released}


def _inactive(session: Session, worker_ids: Sequence[int]) -> list[int]:
    return [int(i) for i in session.scalars(
        text("SELECT id FROM worker WHERE NOT active AND id = ANY(CAST(:ids AS integer[]))"),
        {"ids": sorted(set(worker_ids))})]


def _choices(session: Session, rows: Sequence[Any], at: dt.datetime,
             settings: Settings) -> list[tuple[int | None, str | None, str | None]]:
    """(worker id, rule, reason) for each row, in order."""
    out: dict[int, tuple[int | None, str | None, str | None]] = {}
    plain = [r for r in rows if r.grid_code is not None and not r.escalated_to]
    chains = {c: tuple(grid_chain(session, c)) for c in sorted({r.grid_code for r in plain})}
    picked = choose_now(session, [r.grid_code for r in plain],
                        [chains[r.grid_code] for r in plain], [float(r.lon) for r in plain],
                        [float(r.lat) for r in plain], [r.category_code for r in plain], at,
                        settings.tz)
    for r, choice in zip(plain, picked, strict=True):
        out[r.id] = (choice.worker_id, choice.rule, choice.reason)
    duties: dict[str, Any] = {}
    for r in rows:
        if r.escalated_to:
            if r.escalated_to not in duties:
                duties[r.escalated_to] = duties_for_grid(session, r.escalated_to)
            duty, rule, reason = choose_manager(duties[r.escalated_to], at, settings.tz,
                                                r.category_code, r.escalated_to)
            out[r.id] = (duty.worker_id if duty else None, f"escalation_{rule}",
                         reason) if duty else (None, "none", reason)
        elif r.grid_code is None:
            out[r.id] = (None, "none", f"worker {r.worker_code} is inactive and the "
                                        "incident has no grid")
    return [out[r.id] for r in rows]


__all__ = ["LISTED", "change_worker", "hand_over"]
