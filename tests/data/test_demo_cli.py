"""`patrolgrid demo load` leaves the tables it wrote vacuumed and analysed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from geo.store import db


def test_demo_load_vacuums_and_analyses(cli: Callable[..., Any], db_url: str) -> None:
    result = cli("demo", "load", "--no-incidents", "--track-days", "0")
    assert result.exit_code == 0, result.output
    with db.session_scope(db_url) as s:
        rows = s.execute(text("SELECT relname, last_vacuum IS NOT NULL AS vacuumed, "
                              "last_analyze IS NOT NULL AS analysed FROM pg_stat_user_tables "
                              "WHERE relname IN ('grid', 'incident', 'duty')")).all()
    assert sorted(tuple(r) for r in rows) == [("duty", True, True), ("grid", True, True),
                                              ("incident", True, True)]
