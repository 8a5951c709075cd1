"""Two uploads that both need a new month's partition: the second waits and uses it."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from geo.store import db
from geo.store.db import session_scope
from geo.store.models import Worker
from geo.store.track_queries import partitions

MONTH = "2025-03-05T01:00:00+00"


def test_the_second_creator_sees_the_first_ones_partition(db_url: str) -> None:
    """A creates the partition and holds its transaction open; B asks for the same month,
    waits on the advisory lock, and must find A's table once A commits (it used to fail
    with "relation already exists": its name lookup read a stale catalog cache)."""
    out: dict[str, object] = {}
    with session_scope(db_url) as setup:
        worker = Worker(code="W1", name="巡逻员", role="patrol", active=True)
        setup.add(worker)
        setup.flush()
        worker_id = worker.id
    with session_scope(db_url) as a:
        name = a.execute(text("SELECT track_point_partition(:t)"), {"t": MONTH}).scalar_one()

        def second() -> None:
            try:
                with session_scope(db_url) as b:
                    out["name"] = b.execute(text("SELECT track_point_partition(:t)"),
                                            {"t": MONTH}).scalar_one()
                    b.execute(text("INSERT INTO track_point (worker_id, t, geom, seg_start) "
                                   "VALUES (:w, :t, ST_SetSRID(ST_MakePoint(119.3, 26.1), "
                                   "4326), true)"), {"t": MONTH, "w": worker_id})
            except Exception as exc:  # reported below, in the test's thread
                out["error"] = exc

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # B is now waiting for A's advisory lock
        assert thread.is_alive()
    thread.join(timeout=30)
    assert "error" not in out, out.get("error")
    assert out["name"] == name == "track_point_y2025m03"
    with session_scope(db_url) as s:
        assert s.execute(text("SELECT count(*) FROM track_point_y2025m03")).scalar_one() == 1


def test_partition_row_estimates_survive_a_statistics_reset(db_url: str) -> None:
    with session_scope(db_url) as s:
        worker = Worker(code="W1", name="巡逻员", role="patrol", active=True)
        s.add(worker)
        s.flush()
        s.execute(text("SELECT track_point_partition(:t)"), {"t": MONTH})
        s.execute(text("INSERT INTO track_point (worker_id, t, geom) SELECT :w, "
                       "CAST(:t AS timestamptz) + k * interval '5 seconds', "
                       "ST_SetSRID(ST_MakePoint(119.3, 26.1), 4326) "
                       "FROM generate_series(1, 500) AS k"), {"w": worker.id, "t": MONTH})
    db.vacuum_analyze(db_url, ("track_point",))
    with db.get_engine(db_url).connect() as conn:
        conn.execute(text("SELECT pg_stat_reset()"))  # counters gone, reltuples kept
        conn.commit()
    with session_scope(db_url) as s:
        [part] = partitions(s)
    assert part["name"] == "track_point_y2025m03" and part["rows_estimate"] == 500
