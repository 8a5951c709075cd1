"""``get_index``: one index per database, rebuilt when grids change, uncommitted grids private."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from shapely.geometry import box
from sqlalchemy import text

from geo import index_cache
from geo.index import AssignmentIndex
from geo.store import db
from geo.store.grids import GridRecord, write_versions
from tests.geo.index_fixtures import scratch_db


def _grid(code: str, x: float) -> GridRecord:
    return GridRecord(code=code, name=code, level="grid", geom=box(x, 0.0, x + 0.01, 0.01))


@pytest.fixture
def grids_url(db_url: str) -> Iterator[str]:
    """A database with one committed grid ``A`` over lon 0..0.01, lat 0..0.01."""
    with db.session_scope(db_url) as s:
        write_versions(s, [_grid("A", 0.0)])
    index_cache.clear()
    yield db_url
    index_cache.clear()


def test_the_index_is_built_once_and_shared(grids_url: str) -> None:
    before = index_cache.builds
    with db.session_scope(grids_url) as s1, db.session_scope(grids_url) as s2:
        first = index_cache.get_index(s1)
        assert index_cache.get_index(s1) is first
        assert index_cache.get_index(s2) is first
    assert index_cache.builds == before + 1
    assert first.locate(0.005, 0.005) == "A"


def test_a_committed_change_rebuilds(grids_url: str) -> None:
    with db.session_scope(grids_url) as s:
        old = index_cache.get_index(s)
    with db.session_scope(grids_url) as s:
        write_versions(s, [_grid("B", 0.02)])
    with db.session_scope(grids_url) as s:
        new = index_cache.get_index(s)
        epoch = s.execute(text("SELECT epoch FROM grid_epoch")).scalar_one()
    assert new is not old and new.epoch == epoch > old.epoch
    assert new.locate(0.025, 0.005) == "B" and old.locate(0.025, 0.005) is None
    with db.session_scope(grids_url) as s:
        assert index_cache.get_index(s) is new


def test_uncommitted_grids_stay_private(grids_url: str) -> None:
    with db.session_scope(grids_url) as s:
        shared = index_cache.get_index(s)
    writer = db._factory(grids_url)()
    try:
        write_versions(writer, [_grid("C", 0.04)])
        mine = index_cache.get_index(writer)
        assert mine.locate(0.045, 0.005) == "C"
        assert index_cache.get_index(writer) is mine  # reused inside the transaction
        with db.session_scope(grids_url) as other:
            assert index_cache.get_index(other) is shared
        writer.rollback()
    finally:
        writer.close()
    with db.session_scope(grids_url) as s:
        after = index_cache.get_index(s)
    assert after is shared and after.locate(0.045, 0.005) is None


def test_a_savepoint_change_is_private_too(grids_url: str) -> None:
    with db.session_scope(grids_url) as s:
        shared = index_cache.get_index(s)
    writer = db._factory(grids_url)()
    try:
        writer.execute(text("CREATE TEMP TABLE scratch (x int)"))  # the transaction has an id
        with writer.begin_nested():
            write_versions(writer, [_grid("D", 0.06)])
            mine = index_cache.get_index(writer)
        assert mine is not shared and mine.locate(0.065, 0.005) == "D"
        writer.rollback()
    finally:
        writer.close()


def test_a_writing_session_without_grid_changes_shares_the_index(grids_url: str) -> None:
    with db.session_scope(grids_url) as s:
        shared = index_cache.get_index(s)
    with db.session_scope(grids_url) as s:
        s.execute(text("CREATE TEMP TABLE scratch (x int)"))  # writes, but no grid
        assert index_cache.get_index(s) is shared


def test_concurrent_callers_build_once(grids_url: str) -> None:
    with db.session_scope(grids_url) as s:
        index_cache.get_index(s)
    with db.session_scope(grids_url) as s:
        write_versions(s, [_grid("E", 0.08)])
    before = index_cache.builds
    got: list[AssignmentIndex] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        with db.session_scope(grids_url) as s:
            barrier.wait()
            got.append(index_cache.get_index(s))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(g is got[0] for g in got)
    assert index_cache.builds == before + 1
    assert got[0].locate(0.085, 0.005) == "E"


def test_each_database_has_its_own_index(grids_url: str, template_url: str) -> None:
    with db.session_scope(grids_url) as s:
        here = index_cache.get_index(s)
    with (scratch_db(template_url, "patrolgrid_test_index_other") as other_url,
          db.session_scope(other_url) as s):
        empty = index_cache.get_index(s)
    assert len(here) == 1 and len(empty) == 0 and here is not empty
