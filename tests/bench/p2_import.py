"""P2: importing 1M incidents end to end vs COPY plus one PostGIS join.

Data: the demo city (324 grids under 69 communities and 10 streets, with its
roster) and ``P2_ROWS`` synthetic incidents from ``data.demo.incidents``
(hotspots, rhythms, mixed sources, unique external ids), all in WGS-84 so that
the baseline can read them too, written to one CSV file.

- **ours**: ``data.incident_import.import_file`` on that file, as ``patrolgrid
  incidents import`` runs it: streaming parse, validation, CRS, the finest grid
  from the assignment index (snapping), the worker by the fallback chain at each
  report time, duplicate candidates, the insert with the registration and
  dispatch events, one commit.
- **baseline**: ``COPY`` of the same file into a staging table, then one
  ``INSERT INTO incident … SELECT`` whose lateral join picks, for each point,
  the finest current grid that ``ST_Covers`` it (GiST index), one commit. No
  worker, no events, no snapping, no validation beyond the column types.

Both write into the same ``incident`` table (emptied before each run), so both
pay for its indexes. The ratio is the speed-up, baseline seconds / ours.
Peak RSS is the process's high-water mark during our import (reset before it
through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from data.demo.city import DEFAULT_SEED, build_city
from data.demo.incidents import generate
from data.demo.load import load_demo
from data.incident_import import ImportOptions, import_file
from geo.settings import Settings
from geo.store.db import get_engine, session_scope

ROWS = int(os.environ.get("P2_ROWS", "1000000"))
TARGET = 2
NOW = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.UTC)
COLUMNS = ("lon", "lat", "crs", "category", "source", "external_id", "reported_at",
           "description", "reporter")

_STAGE = """
CREATE TEMP TABLE p2_stage (lon float8, lat float8, crs text, category text, source text,
    external_id text, reported_at timestamptz, description text, reporter text)
"""
_JOIN = text("""
INSERT INTO incident (source, external_id, category_code, description, reporter, geom,
                      input_crs, grid_code, reported_at, due_at)
SELECT s.source, s.external_id, s.category, s.description, s.reporter, p.geom, s.crs,
       g.code, s.reported_at, s.reported_at + make_interval(hours => c.sla_hours::int)
  FROM p2_stage s
  JOIN category c ON c.code = s.category
 CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326) AS geom) p
  LEFT JOIN LATERAL (
        SELECT code FROM grid
         WHERE valid_to IS NULL AND ST_Covers(geom, p.geom)
         ORDER BY depth DESC, code LIMIT 1) g ON true
""")


def _write_csv(path: Path, rows: int) -> None:
    city = build_city(DEFAULT_SEED)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in generate(city, seed=7, now=NOW, count=rows, gcj02_apps=False):
            writer.writerow([row.values[c] for c in COLUMNS])


def _empty(url: str) -> None:
    with session_scope(url) as session:
        session.execute(text("TRUNCATE incident_event, incident RESTART IDENTITY CASCADE"))
    with get_engine(url).connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE incident"))


def _baseline(url: str, path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    raw: Any = get_engine(url).raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(_STAGE)
            with path.open("rb") as src, cur.copy(
                    "COPY p2_stage FROM STDIN (FORMAT csv, HEADER true)") as copy:
                while chunk := src.read(1 << 20):
                    copy.write(chunk)
            cur.execute(str(_JOIN))
            count = cur.rowcount
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started, int(count)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(url: str, path: Path) -> tuple[float, Any]:
    settings = Settings(database_url=url)
    started = time.perf_counter()
    with session_scope(url) as session:
        summary = import_file(session, path, ImportOptions(), settings=settings,
                              actor="bench:p2")
    return time.perf_counter() - started, summary


def run(ctx: Any) -> list[str]:
    """Print the P2 lines (see the module docstring)."""
    url = ctx.database_url
    with session_scope(url) as session:
        load_demo(session)
    with tempfile.TemporaryDirectory(prefix="patrolgrid-p2-") as tmp:
        path = Path(tmp) / "incidents.csv"
        _write_csv(path, ROWS)
        size_mb = path.stat().st_size / 1e6
        _empty(url)
        base_s, base_n = _baseline(url, path)
        _empty(url)
        exact = _reset_peak()
        ours_s, summary = _ours(url, path)
        peak = _peak_mb()
    with session_scope(url) as session:
        events = session.execute(text("SELECT count(*) FROM incident_event")).scalar_one()
    assert summary.accepted + summary.rejected == ROWS == base_n, (summary.as_dict(), base_n)
    label = f"{ROWS // 1_000_000}M" if ROWS % 1_000_000 == 0 else f"{ROWS:,}"
    return [
        f"P2 import {label} incidents end to end (s): ours={ours_s:.1f} "
        f"baseline={base_s:.1f} ratio={base_s / ours_s:.2f} target={TARGET}",
        f"  P2 ours: {ROWS / ours_s:,.0f} rows/s, {summary.accepted:,} new, "
        f"{summary.unassigned:,} unassigned, {summary.snapped:,} snapped, {events:,} events; "
        f"baseline: {ROWS / base_s:,.0f} rows/s; file {size_mb:.0f} MB",
        f"  P2 peak RSS during our import: {peak:.0f} MB"
        + ("" if exact else " (process lifetime peak: clear_refs unavailable)"),
    ]
