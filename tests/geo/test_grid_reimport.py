"""A grid retired by a plan and imported again continues its version numbers."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.grids import GridRecord, write_versions
from geo.store.plans import retire_grids


def test_a_retired_code_imported_again_gets_the_next_version(session: Session) -> None:
    grid = GridRecord("G1", "一", "grid", box(120.0, 30.0, 120.01, 30.01))
    write_versions(session, [grid], at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    retire_grids(session, ["G1"], dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    counts = write_versions(session, [grid], at=dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    assert counts.created == ["G1"]
    rows = session.execute(text("SELECT version, valid_to IS NULL FROM grid WHERE code = 'G1' "
                                "ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [(1, False), (2, True)]
