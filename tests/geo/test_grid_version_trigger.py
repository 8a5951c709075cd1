"""``incident.grid_id`` (the grid version of an incident) as the table's triggers keep it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.geo import intake_city as city

_INSERT = text("""
INSERT INTO incident (source, category_code, geom, grid_code, grid_id, reported_at)
VALUES ('other', 'E0101', ST_SetSRID(ST_MakePoint(120.005, 30.01), 4326), :code, :gid, now())
RETURNING id""")


@pytest.fixture
def versions(session: Session) -> dict[str, int]:
    city.build(session)
    session.flush()
    rows = session.execute(text("SELECT code, id FROM grid WHERE valid_to IS NULL"))
    return {r.code: int(r.id) for r in rows}


def _insert(session: Session, code: str | None, gid: int | None) -> int:
    return int(session.execute(_INSERT, {"code": code, "gid": gid}).scalar_one())


def _grid(session: Session, incident: int) -> tuple[Any, Any]:
    row = session.execute(text("SELECT grid_code, grid_id FROM incident WHERE id = :id"),
                          {"id": incident}).one()
    return row.grid_code, row.grid_id


def test_an_insert_without_a_version_gets_the_current_one(session: Session,
                                                           versions: dict[str, int]) -> None:
    assert _grid(session, _insert(session, "G11", None)) == ("G11", versions["G11"])


def test_an_insert_with_a_version_keeps_it(session: Session, versions: dict[str, int]) -> None:
    """A writer that knows the version it assigned from (the bulk import) keeps it, and the
    trigger does not run for the row."""
    assert _grid(session, _insert(session, "G11", versions["G12"])) == ("G11", versions["G12"])


def test_no_grid_means_no_version(session: Session, versions: dict[str, int]) -> None:
    assert _grid(session, _insert(session, None, versions["G11"])) == (None, None)
    assert _grid(session, _insert(session, None, None)) == (None, None)


def test_updates(session: Session, versions: dict[str, int]) -> None:
    incident = _insert(session, "G11", None)
    params = {"id": incident}
    session.execute(text("UPDATE incident SET grid_code = 'G12' WHERE id = :id"), params)
    assert _grid(session, incident) == ("G12", versions["G12"])
    session.execute(text("UPDATE incident SET grid_code = 'G21', grid_id = :gid WHERE id = :id"),
                    {**params, "gid": versions["G11"]})
    assert _grid(session, incident) == ("G21", versions["G11"])  # both set: kept as given
    session.execute(text("UPDATE incident SET status = 'dispatched' WHERE id = :id"), params)
    assert _grid(session, incident) == ("G21", versions["G11"])
    session.execute(text("UPDATE incident SET grid_code = NULL WHERE id = :id"), params)
    assert _grid(session, incident) == (None, None)
