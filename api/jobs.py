"""Background jobs of a server process: the periodic escalation of overdue incidents.

Every ``escalation_interval_s`` seconds (0 turns it off) each server process tries
to run ``geo.incidents.escalation.escalate_overdue``. The run takes a PostgreSQL
advisory lock without waiting, so with several uvicorn workers (or servers) only
one runs at a time and the others skip that tick; a run is idempotent, so a
later one by another process finds nothing more to do. The first run comes one
interval after start-up. Errors are logged and the job carries on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from geo.incidents.escalation import EscalationReport, escalate_overdue
from geo.settings import Settings
from geo.store.db import session_scope

log = logging.getLogger("patrolgrid.jobs")


def run_escalation_once(settings: Settings, now: dt.datetime | None = None) -> EscalationReport:
    """One escalation run in its own transaction; skipped when another run holds the lock."""
    with session_scope(settings.database_url) as session:
        return escalate_overdue(session, now, settings, wait=False)


async def _escalation_loop(app: FastAPI, settings: Settings, stop: asyncio.Event) -> None:
    interval = settings.escalation_interval_s
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            pass
        try:
            report = await asyncio.to_thread(run_escalation_once, settings)
        except Exception as exc:  # a broken run must not end the job: log it, try next tick
            log.exception("escalation run failed")
            app.state.escalation_errors += 1
            app.state.last_escalation_error = (dt.datetime.now(dt.UTC),
                                               f"{type(exc).__name__}: {exc}"[:500])
            continue
        app.state.escalation_runs += 1
        app.state.last_escalation = report
        if report.escalated:
            log.info("escalated %d overdue incidents", len(report.escalated))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the jobs with the app and stop them (letting a running one finish) with it."""
    settings: Settings = app.state.settings
    app.state.last_escalation = None
    app.state.last_escalation_error = None
    app.state.escalation_runs = 0
    app.state.escalation_errors = 0
    stop = asyncio.Event()
    task = None
    if settings.escalation_interval_s > 0:
        task = asyncio.create_task(_escalation_loop(app, settings, stop), name="escalation")
    try:
        yield
    finally:
        stop.set()
        if task is not None:
            await task
