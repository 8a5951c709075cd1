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
- **baseline**: ``COPY`` of the same file into a staging table (with a generated
  point column), a GiST index on the staged points, then one ``INSERT INTO
  incident … SELECT`` that gives each point the finest current grid that
  ``ST_Covers`` it, one commit. The join is written in its fastest plain-SQL
  form: each grid is the outer side of a lateral join over the indexed points
  (PostGIS then prepares each polygon once; probing the grid index once per point
  instead is about four times slower), ``DISTINCT ON`` keeps the finest grid
  (depth, then code) and ``work_mem`` is raised so that its sort stays in memory.
  The join also gives the grid version (``grid_id``), so that the table's
  grid-version trigger is skipped, as our import skips it.
  No worker, no events, no snapping, no duplicates, no validation beyond the
  column types.

Both write into the same ``incident`` table (emptied before each run), so both
pay for its indexes. The ratio is the speed-up, baseline seconds / ours.
A last line measures how much of the baseline is the write of the incident rows
themselves (the same rows again, by ``INSERT … SELECT`` from a copy, rolled
back): every import that stores them in one transaction pays that, so baseline / that
time bounds the ratio any all-or-nothing import can reach on this table. The line after
it writes the same rows in two concurrent transactions: faster, but an import split so
could fail half-written.
Peak RSS is the process's high-water mark during our import (reset before it
through ``/proc/self/clear_refs``). The last lines break our time down by stage
(each thread's own seconds; they overlap) and give the CPU seconds of the
PostgreSQL backend of each side and of our Python process, read from ``/proc``
(the database runs on this host), so that a run on a busy machine can be read.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import resource
import tempfile
import threading
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
    external_id text, reported_at timestamptz, description text, reporter text,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    geom geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326))
        STORED) ON COMMIT DROP
"""
_COPY = ("COPY p2_stage (lon, lat, crs, category, source, external_id, reported_at, description, "
         "reporter) FROM STDIN (FORMAT csv, HEADER true)")
_INDEX = "CREATE INDEX ON p2_stage USING gist (geom)"
# The grid is the outer side of the lateral join: each grid polygon is tested against
# the staged points its box covers (GiST on the points), so PostGIS prepares each
# polygon once and reuses it, instead of probing the grid index once per point (about
# four times slower). DISTINCT ON keeps the finest covering grid of each point, as
# the assignment index does (depth, then code).
_JOIN = text("""
INSERT INTO incident (source, external_id, category_code, description, reporter, geom,
                      input_crs, grid_code, grid_id, reported_at, due_at)
SELECT s.source, s.external_id, s.category, s.description, s.reporter, s.geom, s.crs,
       h.code, h.id, s.reported_at, s.reported_at + make_interval(hours => c.sla_hours::int)
  FROM p2_stage s
  JOIN category c ON c.code = s.category
  LEFT JOIN (
        SELECT DISTINCT ON (p.seq) p.seq, g.code, g.id
          FROM grid g
         CROSS JOIN LATERAL (SELECT seq FROM p2_stage p WHERE ST_Covers(g.geom, p.geom)) p
         WHERE g.valid_to IS NULL
         ORDER BY p.seq, g.depth DESC, g.code) h ON h.seq = s.seq
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


def _server_cpu(pid: int) -> float | None:
    """CPU seconds used so far by the PostgreSQL backend ``pid`` (None: not on this host)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _baseline(url: str, path: Path) -> tuple[float, int, float | None]:
    started = time.perf_counter()
    raw: Any = get_engine(url).raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = int(cur.fetchone()[0])
            cpu = _server_cpu(pid)
            cur.execute("SET LOCAL work_mem = '256MB'")  # the DISTINCT ON sort stays in memory
            cur.execute(_STAGE)
            with path.open("rb") as src, cur.copy(_COPY) as copy:
                while chunk := src.read(1 << 20):
                    copy.write(chunk)
            cur.execute(_INDEX)
            cur.execute(str(_JOIN))
            count = cur.rowcount
        raw.commit()
        cpu = _delta(cpu, _server_cpu(pid))
    finally:
        raw.close()
    return time.perf_counter() - started, int(count), cpu


def _rows_alone(url: str) -> float:
    """Seconds PostgreSQL takes to write the incident rows the baseline stored, and nothing
    else: no parsing, no join, no events (an ``INSERT … SELECT`` from a copy of them, in a
    transaction that is rolled back). Any import that stores these rows pays this."""
    raw: Any = get_engine(url).raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE p2_rows ON COMMIT DROP AS SELECT * FROM incident")
            cur.execute("TRUNCATE incident_event, incident CASCADE")
            started = time.perf_counter()
            cur.execute("INSERT INTO incident SELECT * FROM p2_rows")
            seconds = time.perf_counter() - started
        raw.rollback()
    finally:
        raw.close()
    return seconds


def _rows_split(url: str, writers: int = 2) -> float:
    """Seconds ``writers`` concurrent transactions take to write the same incident rows, each
    a share of them (rolled back; the table is left empty). It shows what the one-transaction
    rule costs: an import that is all or nothing is written by one backend."""
    with session_scope(url) as session:
        session.execute(text("CREATE UNLOGGED TABLE p2_rows_split AS SELECT * FROM incident"))
        session.execute(text("TRUNCATE incident_event, incident CASCADE"))
    raws: list[Any] = [get_engine(url).raw_connection() for _ in range(writers)]
    failures: list[BaseException] = []

    def write(k: int) -> None:
        try:
            with raws[k].cursor() as cur:
                cur.execute("INSERT INTO incident SELECT * FROM p2_rows_split "
                            "WHERE id %% %s = %s", (writers, k))
        except Exception as exc:  # reported once every writer is done
            failures.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        for raw in raws:
            raw.rollback()
            raw.close()
        with session_scope(url) as session:
            session.execute(text("DROP TABLE p2_rows_split"))
    if failures:
        raise failures[0]
    return seconds


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


def _ours(url: str, path: Path) -> tuple[float, Any, float | None, float]:
    settings = Settings(database_url=url)
    started = time.perf_counter()
    own = _own_cpu()
    with session_scope(url) as session:
        pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        cpu = _server_cpu(pid)
        summary = import_file(session, path, ImportOptions(), settings=settings,
                              actor="bench:p2")
        session.commit()
        cpu = _delta(cpu, _server_cpu(pid))
    return time.perf_counter() - started, summary, cpu, _own_cpu() - own


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
        base_s, base_n, base_cpu = _baseline(url, path)
        alone_s = _rows_alone(url)
        split_s = _rows_split(url)
        _empty(url)
        exact = _reset_peak()
        ours_s, summary, ours_cpu, client_cpu = _ours(url, path)
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
        "  P2 ours by stage (s, per thread, overlapping): " + ", ".join(
            f"{k} {v:.1f}" for k, v in summary.stages.items()),
        f"  P2 CPU (s): ours: PostgreSQL {_shown(ours_cpu)} + Python {client_cpu:.1f} "
        f"(all threads); baseline: PostgreSQL {_shown(base_cpu)}; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        f"  P2 cap: PostgreSQL writes the same {base_n:,} incident rows alone (indexes, "
        f"foreign keys; no parsing, no join, no events) in {alone_s:.1f} s, "
        f"{alone_s / base_s:.0%} of the baseline: no import that stores them in one "
        f"transaction can reach a ratio above {base_s / alone_s:.2f}",
        f"  P2 cap, split: two concurrent transactions write the same rows in {split_s:.1f} s "
        f"({alone_s / split_s:.2f}x as fast), but an import is one transaction (all or "
        f"nothing), written by one backend",
    ]


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
