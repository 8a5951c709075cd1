"""``patrolgrid escalate``: move overdue incidents one level up, to that level's manager."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import console, reported_errors, settings
from geo.errors import InvalidInput
from geo.incidents.escalation import EscalationReport, escalate_overdue
from geo.store.db import session_scope
from geo.store.grid_queries import parse_at

#: Escalations listed in the terminal (all are counted).
SHOWN = 50


def _now(value: str | None) -> dt.datetime | None:
    """``--now`` as a moment; None without it (the clock once the run's lock is held)."""
    conf = settings()
    try:
        return parse_at(value, conf.tz)
    except InvalidInput as exc:
        raise InvalidInput(f"--now {value!r} is not a date-time", field="now", value=value,
                           valid=str(exc.valid)) from exc


def _print(report: EscalationReport) -> None:
    if report.escalated:
        table = Table("incident", "level", "from", "to", "worker", "rule")
        for e in report.escalated[:SHOWN]:
            worker = f"{e.worker_code} {e.worker_name}" if e.worker_code else "(unchanged)"
            table.add_row(str(e.incident_id), str(e.level), e.from_grid,
                          f"{e.to_grid} {e.to_grid_name}", worker, e.rule)
        console.print(table)
        if len(report.escalated) > SHOWN:
            console.print(f"… and {len(report.escalated) - SHOWN} more")
    verb = "would escalate" if report.dry_run else "escalated"
    console.print(f"{verb} {len(report.escalated)}; already at the top level "
                  f"{len(report.at_top)}; overdue without a grid {len(report.unassigned)} "
                  f"(as of {report.now.isoformat()})")


def escalate(
    now: Annotated[str | None, typer.Option(
        "--now", help="Judge as of this moment (ISO 8601; local time without an offset). "
                      "Default: now.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be escalated; change nothing.")] = False,
) -> None:
    """Escalate overdue incidents one level up (grid → community → street).

    An incident is overdue when its due time has passed before it was disposed.
    Each run moves it at most one level, to that level's manager (on shift, else
    the level's dispatcher on shift, else the manager off shift); the next level
    is due one more SLA period later, so running it twice changes nothing more.
    The server runs the same job every PATROLGRID_ESCALATION_INTERVAL_S seconds.
    """
    with reported_errors():
        when = _now(now)
        with session_scope(settings().database_url) as session:
            report = escalate_overdue(session, when, settings(), dry_run=dry_run,
                                      actor="cli:escalate")
            if dry_run:
                session.rollback()
    _print(report)
