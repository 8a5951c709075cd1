"""A transaction holding an uncommitted incident for a worker, as a bulk import does."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def assign_uncommitted(session: Session, worker_id: int, lon: float, lat: float) -> None:
    """Insert (not commit) a category and an incident naming ``worker_id``: the incident's
    foreign key holds the worker's row ``FOR KEY SHARE`` until ``session`` ends."""
    session.execute(text(
        "INSERT INTO category (code, name_zh, name_en, kind, department, sla_hours) "
        "VALUES ('X1', 'x', 'x', 'event', 'd', 8)"))
    session.execute(text(
        "INSERT INTO incident (source, category_code, geom, reported_at, status, worker_id) "
        "VALUES ('app', 'X1', ST_SetSRID(ST_MakePoint(:x, :y), 4326), now(), 'dispatched', "
        ":w)"), {"x": lon, "y": lat, "w": worker_id})
