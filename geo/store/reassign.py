"""Open incidents given a new worker (and grid, or status) in one statement, with their events.

A deactivation hands the open incidents of a worker over (:mod:`geo.incidents.handover`), a
grid import and a plan apply place those of the grids they change again
(:mod:`geo.incidents.regrid`, :mod:`geo.plans.apply`). All three hold the assignment lock
exclusive while they write (:mod:`geo.store.grid_lock`), so every intake waits for them:
:func:`reassign` writes all the incidents with one ``UPDATE`` and all their
``incident_event`` rows with one ``INSERT`` (an escalation run does the same in
:mod:`geo.incidents.escalation`), not two statements per incident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Reassignment:
    """One incident's new worker, and optionally its new grid version and status.

    ``reason`` says why nobody has it (``worker_id`` None); ``grid_code``, ``grid_id`` and
    ``status`` None keep the incident's own. ``data`` is the event's ``data`` without
    ``version``, which :func:`reassign` adds (the incident's new version)."""

    incident_id: int
    worker_id: int | None
    rule: str | None
    from_status: str
    note: str
    data: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    grid_code: str | None = None
    grid_id: int | None = None
    status: str | None = None


_WRITE = text("""
WITH v AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:workers AS integer[]),
                         CAST(:rules AS text[]), CAST(:reasons AS text[]),
                         CAST(:grid_codes AS text[]), CAST(:grid_ids AS integer[]),
                         CAST(:statuses AS text[]), CAST(:from_statuses AS text[]),
                         CAST(:notes AS text[]), CAST(:datas AS text[]))
           AS v(id, worker_id, rule, reason, grid_code, grid_id, status, from_status, note,
                data)
), moved AS (
    UPDATE incident AS i
       SET worker_id = v.worker_id, rule = v.rule, version = i.version + 1,
           grid_code = coalesce(v.grid_code, i.grid_code),
           grid_id = coalesce(v.grid_id, i.grid_id),
           status = coalesce(v.status, i.status),
           -- why nobody has it: the new reason, or the one it had; moot once someone has it
           unassigned_reason = CASE WHEN v.worker_id IS NULL
                                    THEN coalesce(v.reason, i.unassigned_reason) END
      FROM v
     WHERE i.id = v.id
 RETURNING i.id, i.version, i.status, v.from_status, v.note, v.data
)
INSERT INTO incident_event (incident_id, actor, from_status, to_status, note, data)
SELECT id, :actor, from_status, status, note,
       CAST(data AS jsonb) || jsonb_build_object('version', version)
  FROM moved
 ORDER BY id
RETURNING incident_id, CAST(data ->> 'version' AS integer) AS version
""")


def reassign(session: Session, items: Sequence[Reassignment], *, actor: str) -> dict[int, int]:
    """Write ``items`` (distinct incidents, already locked by the caller) and an event each
    (``at`` the transaction's time); the new version of each incident by id."""
    if not items:
        return {}
    session.flush()  # pending ORM changes first: the session is expired after
    rows = session.execute(_WRITE, {
        "ids": [r.incident_id for r in items], "workers": [r.worker_id for r in items],
        "rules": [r.rule for r in items], "reasons": [r.reason for r in items],
        "grid_codes": [r.grid_code for r in items], "grid_ids": [r.grid_id for r in items],
        "statuses": [r.status for r in items], "from_statuses": [r.from_status for r in items],
        "notes": [r.note for r in items],
        "datas": [json.dumps(dict(r.data), default=_plain) for r in items],
        "actor": actor}).all()
    session.expire_all()  # incidents loaded before in this session are stale now
    return {int(r.incident_id): int(r.version) for r in rows}


def _plain(value: Any) -> Any:
    """numpy scalars (the plan apply's columns) as Python numbers."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


__all__ = ["Reassignment", "reassign"]
