"""``GET /healthz``: the only endpoint that needs no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.deps import SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request, session: SessionDep) -> dict[str, Any]:
    """Liveness and database reachability, with the PostGIS version, and the escalation job
    of the server process that answered (``runs``, ``errors``, the last run's moment and
    outcome, the last failure's moment and message; ``interval_s`` 0: the job is off)."""
    version = session.execute(text("SELECT postgis_lib_version()")).scalar_one()
    state = request.app.state
    last = getattr(state, "last_escalation", None)
    error = getattr(state, "last_escalation_error", None)
    job = {"interval_s": state.settings.escalation_interval_s,
           "runs": getattr(state, "escalation_runs", 0),
           "errors": getattr(state, "escalation_errors", 0),
           "last_run": last.now.isoformat() if last is not None else None,
           "last_escalated": len(last.escalated) if last is not None else None,
           "last_skipped": last.skipped if last is not None else None,
           "last_error_at": error[0].isoformat() if error else None,
           "last_error": error[1] if error else None}
    return {"status": "ok", "postgis": str(version), "escalation_job": job}
