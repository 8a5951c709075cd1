"""A grid import and a grid change that commits while the import is being checked.

The import's checks read the current grids without the grids' lock; a plan apply or
another import that committed in the meantime used to slip past them, and the import
then committed grids overlapping the ones just written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box, mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

import data.grid_import as grid_import
from data.grid_io import ReadOptions
from geo.errors import ImportRefused
from geo.store import db
from geo.store.grids import GridRecord, write_versions


def test_a_grid_change_committed_during_the_checks_is_checked_too(
        session: Session, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "GNEW"},
        "geometry": mapping(box(121.00, 31.00, 121.01, 31.01))}]}))
    checked = grid_import._validate
    calls: list[int] = []

    def validate_then_a_plan_commits(*args: Any, **kwargs: Any) -> Any:
        out = checked(*args, **kwargs)
        if not calls:  # another transaction writes an overlapping grid and commits
            with db.session_scope(db_url) as other:
                write_versions(other, [GridRecord("GC", "concurrent", "grid",
                                                  MultiPolygon([box(121.005, 31.0, 121.015,
                                                                    31.01)]))])
        calls.append(1)
        return out

    monkeypatch.setattr(grid_import, "_validate", validate_then_a_plan_commits)
    with pytest.raises(ImportRefused) as refused:
        grid_import.import_grids(session, path, ReadOptions(code_field="code"), commit=True)
    session.rollback()
    assert len(calls) == 2  # checked again under the lock
    overlaps = refused.value.extra["overlaps"]
    assert {overlaps[0]["a"], overlaps[0]["b"]} == {"GNEW", "GC"}, overlaps
    codes = session.execute(text("SELECT code FROM grid")).scalars().all()
    assert codes == ["GC"]
