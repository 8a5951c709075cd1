"""Escalation of overdue incidents, one level up the grid tree per step.

Rule
----
An incident is overdue at ``now`` when ``due_at < now`` and it is still
pending (registered, dispatched, accepted or in progress: not yet disposed).
Its *responsible grid* is ``escalated_to`` once escalated, else its own grid.

One run (``escalate_overdue``) moves every overdue incident whose next step is
due **one level up**: from its responsible grid to that grid's parent (grid →
community → street in the demo city). The first step is due at ``due_at``;
each further step another SLA period (the category's ``sla_hours``) after the
previous escalation (both strictly after: at ``due_at`` itself it is not yet
overdue, as in ``GET /api/v1/incidents?overdue=true``). So an incident with a
4-hour SLA reported at 09:00 goes to its community on the first run after 13:00
and to its street on the first run more than 4 hours after that.

The incident is reassigned to the manager of the new level, chosen at ``now``
(category limits respected; among several, a primary duty before a backup one,
then the smallest worker code):

1. ``manager`` — an active manager with a duty on that grid, on shift;
2. ``dispatcher`` — else an active dispatcher with a duty there, on shift;
3. ``manager_off_shift`` — else an active manager of that grid, off shift
   (still the person accountable);
4. ``none`` — else the worker stays (nobody when that worker is inactive), and
   the event says why.

The status does not change; ``escalation_level`` (1 = one level up),
``escalated_to``, ``escalated_at`` and ``worker_id`` do, and the incident's ``rule``
becomes ``escalation_<rule>`` (``escalation_manager`` …; unchanged when nobody was
found and the worker stays, ``none`` when an inactive worker is cleared), ``version`` is bumped,
and an ``incident_event`` (``data.kind = "escalation"``) records from/to grid
and worker and the rule. Incidents without a grid (the dispatcher's queue) and
incidents already at the top of the tree are counted, not changed.

Running it again at the same ``now`` changes nothing more: the next step of an
escalated incident is due a full SLA period later. Runs are serialised by a
PostgreSQL advisory lock (:data:`LOCK_KEY`), so the CLI and every server
process can run it without stepping on each other; rows being edited by
someone else at that moment are skipped and taken by the next run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.assign import DutyCandidate, choose_responsible, on_duty
from geo.errors import InvalidInput
from geo.incidents.loop import PENDING_STATUSES
from geo.settings import Settings
from geo.store.grid_lock import hold_shared, try_shared
from geo.store.roster import duties_for_grid

#: ``pg_advisory_xact_lock`` key that serialises escalation runs (b"esca" as an int).
LOCK_KEY = 0x65736361
ACTOR = "system:escalation"


@dataclass(frozen=True)
class Escalation:
    """One incident moved one level up."""

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
    reason: str | None = None


@dataclass
class EscalationReport:
    """What one run did (or would do, in a dry run)."""

    now: dt.datetime
    escalated: list[Escalation] = field(default_factory=list)
    at_top: list[int] = field(default_factory=list)
    unassigned: list[int] = field(default_factory=list)
    skipped: bool = False
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Counts for logs and the CLI."""
        return {"now": self.now.isoformat(), "escalated": len(self.escalated),
                "at_top": len(self.at_top), "unassigned": len(self.unassigned),
                "skipped": self.skipped, "dry_run": self.dry_run}


_DUE = text("""
SELECT i.id, i.grid_code, coalesce(i.escalated_to, i.grid_code) AS responsible,
       i.escalation_level, i.worker_id, w.code AS worker_code,
       coalesce(w.active, false) AS worker_active, i.category_code
  FROM incident i
  JOIN category c ON c.code = i.category_code
  LEFT JOIN worker w ON w.id = i.worker_id
 WHERE i.status = ANY(CAST(:pending AS text[]))
   AND i.due_at < :now
   AND (i.escalated_at IS NULL
        OR i.escalated_at + make_interval(secs => c.sla_hours * 3600.0) < :now)
 ORDER BY i.id
   FOR UPDATE OF i SKIP LOCKED
""")

# The parent of each responsible grid (its current version, or its last one if retired).
_PARENTS = text("""
SELECT DISTINCT ON (c.code) c.code, p.code AS parent, p.name, p.level
  FROM grid c
  LEFT JOIN grid p ON p.code = c.parent_code AND p.valid_to IS NULL
 WHERE c.code = ANY(CAST(:codes AS text[]))
 ORDER BY c.code, c.valid_to IS NULL DESC, c.version DESC
""")

_APPLY = text("""
WITH v AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:levels AS smallint[]),
                         CAST(:grids AS text[]), CAST(:workers AS integer[]),
                         CAST(:from_grids AS text[]), CAST(:from_workers AS integer[]),
                         CAST(:rules AS text[]), CAST(:reasons AS text[]))
           AS v(id, level, to_grid, worker_id, from_grid, from_worker_id, rule, reason)
), moved AS (
    UPDATE incident AS i
       SET escalation_level = v.level, escalated_to = v.to_grid, escalated_at = :now,
           worker_id = v.worker_id, version = i.version + 1,
           -- nobody found: the worker stays with the rule that chose them, or, inactive,
           -- is cleared (rule none)
           rule = CASE WHEN v.rule <> 'none' THEN 'escalation_' || v.rule
                       WHEN v.worker_id IS NULL THEN 'none' ELSE i.rule END,
           -- why it had nobody (declined, no one on duty) is moot once someone has it
           unassigned_reason = CASE WHEN v.worker_id IS NULL
                                    THEN coalesce(i.unassigned_reason, v.reason) END
      FROM v
     WHERE i.id = v.id
 RETURNING i.id, i.status, i.version, v.level, v.to_grid, v.worker_id, v.from_grid,
           v.from_worker_id, v.rule, v.reason
)
INSERT INTO incident_event (incident_id, at, actor, from_status, to_status, note, data)
SELECT id, :now, :actor, status, status,
       'escalated to ' || to_grid || coalesce(' (' || reason || ')', ''),
       jsonb_build_object('kind', 'escalation', 'level', level, 'from_grid', from_grid,
                          'to_grid', to_grid, 'from_worker_id', from_worker_id,
                          'worker_id', worker_id, 'rule', rule, 'version', version)
  FROM moved
""")


def _of_role(role: str, *, shift: bool) -> Any:
    def rule(duties: Any, at: dt.datetime, tz: Any, category: str | None) -> Any:
        eligible = [d for d in duties if d.role == role and d.active
                    and (d.categories is None or (category is not None
                                                  and category in d.categories))
                    and (not shift or on_duty(d.shifts, at, tz))]
        return min(eligible, key=lambda d: (d.kind != "primary", d.worker_code, d.duty_id),
                   default=None)

    return rule


#: Who takes an escalated incident on the new level, tried in order.
ESCALATION_RULES = (
    ("manager", _of_role("manager", shift=True)),
    ("dispatcher", _of_role("dispatcher", shift=True)),
    ("manager_off_shift", _of_role("manager", shift=False)),
)


def choose_manager(duties: list[DutyCandidate], now: dt.datetime, tz: Any, category: str,
                   grid: str) -> tuple[DutyCandidate | None, str, str | None]:
    """Who takes an incident escalated to ``grid`` at ``now`` (:data:`ESCALATION_RULES`):
    the duty, the rule, and for ``none`` the reason."""
    choice = choose_responsible(duties, now, tz, category, rules=ESCALATION_RULES)
    if choice.worker is not None:
        return choice.worker, choice.rule, None
    return None, "none", f"no active manager or dispatcher of grid {grid} serves {category}"


def _lock(session: Session, wait: bool) -> bool:
    """The assignment lock shared (a deactivation waits for this run), then the run's own
    lock, always in this order (a demo load holds the first while it escalates); without
    ``wait``, either one busy gives up."""
    if wait:
        hold_shared(session)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        return True
    return try_shared(session) and bool(
        session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}))


def escalate_overdue(session: Session, now: dt.datetime | None, settings: Settings, *,
                     dry_run: bool = False, wait: bool = True,
                     actor: str = ACTOR) -> EscalationReport:
    """Escalate every overdue incident whose next step is due, one level up.

    Parameters
    ----------
    session : Session
        The transaction to work in (the caller commits; in a dry run, roll back).
    now : datetime or None
        The moment to judge by (timezone-aware); None for the database's clock read
        after the run's lock is taken, so that an escalation is never stamped before a
        change it waited for.
    settings : Settings
        ``timezone`` of the shifts.
    dry_run : bool
        Work out the escalations without writing them.
    wait : bool
        Wait for a concurrent run (or a grid change or deactivation) to finish (True),
        or give up at once and return a report with ``skipped`` set (False; the
        in-server job does this).
    actor : str
        Stored on the events.

    Returns
    -------
    EscalationReport
    """
    if now is not None and now.tzinfo is None:
        raise InvalidInput("now must carry a time zone offset", field="now",
                           value=now.isoformat(), valid="a timezone-aware date-time")
    locked = _lock(session, wait)
    if now is None:
        now = session.scalar(text("SELECT clock_timestamp()"))
        assert now is not None
    report = EscalationReport(now=now, dry_run=dry_run)
    if not locked:
        report.skipped = True
        return report
    rows = list(session.execute(_DUE, {"pending": list(PENDING_STATUSES), "now": now})
                .mappings())
    report.unassigned = [r["id"] for r in rows if r["responsible"] is None]
    rows = [r for r in rows if r["responsible"] is not None]
    codes = sorted({r["responsible"] for r in rows})
    parents = {p["code"]: p for p in session.execute(_PARENTS, {"codes": codes}).mappings()}
    duties: dict[str, list[DutyCandidate]] = {}
    for r in rows:
        parent = parents.get(r["responsible"])
        if parent is None or parent["parent"] is None:
            report.at_top.append(r["id"])
            continue
        target = parent["parent"]
        if target not in duties:
            duties[target] = duties_for_grid(session, target)
        worker, rule, reason = choose_manager(duties[target], now, settings.tz,
                                              r["category_code"], target)
        stays = r["worker_id"] if r["worker_active"] else None
        if worker is None and r["worker_id"] is not None and stays is None:
            reason = f"{reason}; worker {r['worker_code']} is inactive"
        report.escalated.append(Escalation(
            incident_id=r["id"], level=r["escalation_level"] + 1, from_grid=r["responsible"],
            to_grid=target, to_grid_name=parent["name"], to_grid_level=parent["level"],
            from_worker_id=r["worker_id"],
            worker_id=worker.worker_id if worker else stays,
            worker_code=worker.worker_code if worker else None,
            worker_name=worker.worker_name if worker else None, rule=rule, reason=reason))
    if report.escalated and not dry_run:
        _write(session, report, actor)
    return report


def _write(session: Session, report: EscalationReport, actor: str) -> None:
    items = report.escalated
    session.execute(_APPLY, {
        "ids": [e.incident_id for e in items], "levels": [e.level for e in items],
        "grids": [e.to_grid for e in items], "workers": [e.worker_id for e in items],
        "from_grids": [e.from_grid for e in items],
        "from_workers": [e.from_worker_id for e in items], "rules": [e.rule for e in items],
        "reasons": [e.reason for e in items], "now": report.now, "actor": actor})
    session.expire_all()  # incidents loaded before in this session are stale now


__all__ = ["ACTOR", "ESCALATION_RULES", "LOCK_KEY", "Escalation", "EscalationReport",
           "choose_manager", "escalate_overdue"]
