"""Reading GPS tracks: segments as lines by worker, grid and time window; raw points; partitions.

A window's lines are built in SQL: consecutive points of a worker belong to one
line until a stored segment start (a gap or a jump found when cleaning). With a
grid, only the points the grid covers count, and a line is also cut where the
track leaves the grid, so each line lies in the grid.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import MOMENT_VALID, InvalidInput, NotFound
from geo.store.grid_queries import parse_at

if TYPE_CHECKING:
    import psycopg

_ALL_POINTS = """
WITH win AS (
  SELECT p.worker_id, p.t, p.geom, p.seg_start, true AS inside
    FROM track_point p
   WHERE p.t >= :start AND p.t < :end
     AND (CAST(:worker AS integer) IS NULL OR p.worker_id = CAST(:worker AS integer))
),"""

_GRID_POINTS = """
WITH g AS (SELECT geom FROM grid WHERE code = :grid AND valid_to IS NULL),
who AS (
  SELECT DISTINCT q.worker_id
    FROM track_point q, g
   WHERE q.t >= :start AND q.t < :end AND ST_Covers(g.geom, q.geom)
     AND (CAST(:worker AS integer) IS NULL OR q.worker_id = CAST(:worker AS integer))
),
win AS (
  SELECT p.worker_id, p.t, p.geom, p.seg_start, ST_Covers(g.geom, p.geom) AS inside
    FROM track_point p, g
   WHERE p.worker_id IN (SELECT worker_id FROM who) AND p.t >= :start AND p.t < :end
),"""

_PIECES = """
marked AS (
  SELECT worker_id, t, geom, inside,
         CASE WHEN seg_start
                OR NOT coalesce(lag(inside) OVER (PARTITION BY worker_id ORDER BY t), false)
              THEN 1 ELSE 0 END AS brk
    FROM win
),
pieces AS (
  SELECT worker_id, t, geom, inside, brk,
         sum(brk) OVER (PARTITION BY worker_id ORDER BY t) AS piece
    FROM marked
)"""

_LINES = """,
lines AS (
  SELECT worker_id, piece, min(t) AS start_at, max(t) AS end_at, count(*) AS points,
         CASE WHEN count(*) > 1 THEN ST_MakeLine(geom ORDER BY t)
              ELSE (array_agg(geom))[1] END AS geom
    FROM pieces WHERE inside
   GROUP BY worker_id, piece
)
SELECT l.worker_id, w.code AS worker_code, l.start_at, l.end_at, l.points,
       CASE WHEN l.points > 1 THEN ST_Length(l.geom::geography) ELSE 0 END AS length_m,
       ST_AsGeoJSON(l.geom, 7) AS geometry, count(*) OVER () AS total
  FROM lines l JOIN worker w ON w.id = l.worker_id
 ORDER BY l.worker_id, l.start_at
 LIMIT :limit OFFSET :offset
"""

_COUNT = """,
lines AS (SELECT DISTINCT worker_id, piece FROM pieces WHERE inside)
SELECT count(*) FROM lines
"""

_PLAIN_POINTS = """
SELECT p.worker_id, (extract(epoch FROM p.t) * 1000000)::bigint AS t_us,
       ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, p.seg_start
  FROM track_point p
 WHERE p.t >= :start AND p.t < :end
   AND (CAST(:worker AS integer) IS NULL OR p.worker_id = CAST(:worker AS integer))
 ORDER BY p.worker_id, p.t
"""

_POINTS = """
SELECT worker_id, (extract(epoch FROM t) * 1000000)::bigint AS t_us,
       ST_X(geom) AS lon, ST_Y(geom) AS lat, brk = 1 AS seg_start
  FROM pieces WHERE inside
 ORDER BY worker_id, t
"""

_PARTITIONS = text("""
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bounds,
       greatest(s.n_live_tup, c.reltuples, 0)::bigint AS rows_estimate,
       pg_total_relation_size(c.oid) AS bytes
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE i.inhparent = 'track_point'::regclass
 ORDER BY c.relname
""")

WINDOW_VALID = ("ISO 8601 date-times with from < to (a date alone is local midnight; without an "
                "offset the time is local)")


@dataclass
class SegmentPage:
    """A page of track lines as GeoJSON features, and how many lines match in all."""

    features: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


@dataclass
class TrackPoints:
    """Points of a window as arrays, sorted by worker and time.

    ``seg_start`` is true where a line starts: a stored segment start, the first
    point of a worker in the window, or (with a grid) the first point back inside.
    """

    worker_id: NDArray[np.int64]
    t_us: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    seg_start: NDArray[np.bool_]


def parse_window(start: str | dt.datetime | None, end: str | dt.datetime | None, *,
                 tz: ZoneInfo, max_days: float,
                 now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The window ``[from, to)``: ``to`` defaults to now, ``from`` to a day before ``to``.

    Raises
    ------
    InvalidInput
        ``field='from'`` or ``'to'`` for unreadable times, ``to <= from`` or a window
        longer than ``max_days``.
    """
    moments: dict[str, dt.datetime | None] = {}
    for name, value in (("from", start), ("to", end)):
        try:
            moments[name] = parse_at(value, tz, name)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=name, value=value,
                               valid=f"{WINDOW_VALID}, {MOMENT_VALID}") from None
    hi = moments["to"] or now or dt.datetime.now(dt.UTC)
    lo = moments["from"] or hi - dt.timedelta(days=1)
    if hi <= lo:  # the one given is at fault (to, when both are)
        blamed, value = ("to", end) if moments["to"] is not None else ("from", start)
        shown = "" if moments["to"] is not None else " (now, to's default)"
        raise InvalidInput(f"to ({hi.isoformat()}{shown}) is not after from ({lo.isoformat()})",
                           field=blamed, value=str(value), valid=WINDOW_VALID)
    if hi - lo > dt.timedelta(days=max_days):
        raise InvalidInput(f"the window from {lo.isoformat()} to {hi.isoformat()} is longer "
                           f"than {max_days:g} days", field="from", value=str(start),
                           valid=f"a window of at most {max_days:g} days "
                                 "(PATROLGRID_TRACK_MAX_WINDOW_DAYS)")
    return lo, hi


def resolve_worker(session: Session, value: str | int | None) -> int | None:
    """A worker id from a code or an id (a worker's code first: a code made of digits,
    ``0099`` or ``99``, is that worker's, not worker 99); None for None; NotFound when none."""
    if value is None or value == "":
        return None
    text_value = str(value).strip()
    by_code = session.execute(text("SELECT id FROM worker WHERE code = :code"),
                              {"code": text_value}).scalar()
    by_id = None
    if by_code is None and text_value.isascii() and text_value.isdigit() \
            and len(text_value) <= 9:  # not "²"
        by_id = session.execute(text("SELECT id FROM worker WHERE id = :id"),
                                {"id": int(text_value)}).scalar()
    found = by_code if by_code is not None else by_id
    if found is None:
        raise NotFound(f"there is no worker {text_value!r}", field="worker", value=value,
                       valid="a worker id or code (GET /api/v1/workers)")
    return int(found)


def check_grid(session: Session, code: str | None) -> str | None:
    """``code`` when it names a current grid (None stays None); NotFound otherwise."""
    if code is None or code == "":
        return None
    found = session.execute(text("SELECT 1 FROM grid WHERE code = :code AND valid_to IS NULL"),
                            {"code": code}).scalar()
    if found is None:
        raise NotFound(f"there is no current grid {code!r}", field="grid", value=code,
                       valid="the code of a current grid (GET /api/v1/grids)")
    return code


def _params(start: dt.datetime, end: dt.datetime, worker_id: int | None,
            grid: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start, "end": end, "worker": worker_id}
    if grid is not None:
        params["grid"] = grid
    return params


def segments(session: Session, *, start: dt.datetime, end: dt.datetime,
             worker_id: int | None = None, grid: str | None = None, limit: int = 100,
             offset: int = 0) -> SegmentPage:
    """Track lines in ``[start, end)`` as GeoJSON features, by worker then start time.

    Parameters
    ----------
    session : Session
    start, end : datetime
        The window (aware).
    worker_id : int, optional
        Only this worker's lines.
    grid : str, optional
        Only the points inside this current grid; lines are cut where the track
        leaves it.
    limit, offset : int
        Paging over lines.

    Returns
    -------
    SegmentPage
        Features with a LineString (a Point for a lone fix) and properties
        ``worker_id``, ``worker_code``, ``start``, ``end``, ``points``, ``length_m``.
    """
    head = _ALL_POINTS if grid is None else _GRID_POINTS
    params = _params(start, end, worker_id, grid) | {"limit": limit, "offset": offset}
    rows = session.execute(text(head + _PIECES + _LINES), params).mappings().all()
    page = SegmentPage()
    for row in rows:
        page.features.append({
            "type": "Feature",
            "id": f"{row['worker_id']}@{row['start_at'].isoformat()}",
            "geometry": json.loads(row["geometry"]),
            "properties": {
                "worker_id": row["worker_id"], "worker_code": row["worker_code"],
                "start": row["start_at"].isoformat(), "end": row["end_at"].isoformat(),
                "points": row["points"], "length_m": round(float(row["length_m"]), 1),
            },
        })
    if rows:
        page.total = int(rows[0]["total"])
    else:
        count_params = _params(start, end, worker_id, grid)
        page.total = int(session.execute(text(head + _PIECES + _COUNT), count_params).scalar_one())
    return page


def load_points(session: Session, *, start: dt.datetime, end: dt.datetime,
                worker_id: int | None = None, grid: str | None = None) -> TrackPoints:
    """The points of a window as numpy arrays (for coverage and other bulk work).

    Read with a binary COPY (about a million points a second) rather than row by row.

    Parameters
    ----------
    session : Session
    start, end : datetime
        The window ``[start, end)``.
    worker_id : int, optional
        Only this worker.
    grid : str, optional
        Only points inside this current grid, with a line start wherever the
        track comes back into it.
    """
    params = _params(start, end, worker_id, grid)
    sql = _PLAIN_POINTS if grid is None else _GRID_POINTS + _PIECES + _POINTS
    compiled = text(sql).bindparams(**params).compile(dialect=session.get_bind().dialect)
    dbapi = cast("psycopg.Connection[Any]", session.connection().connection.dbapi_connection)
    data = bytearray()
    with dbapi.cursor() as cursor, cursor.copy(
            "COPY (" + str(compiled) + ") TO STDOUT (FORMAT binary)", compiled.params) as copy:
        for chunk in copy:
            data += chunk
    rows = _decode_copy(bytes(data))
    starts = rows["seg_start"].astype(bool)
    workers = rows["worker_id"].astype(np.int64)
    if len(workers):  # the first point of each worker in the window starts a line
        starts[0] = True
        starts[1:] |= workers[1:] != workers[:-1]
    return TrackPoints(worker_id=workers, t_us=rows["t_us"].astype(np.int64),
                       lon=rows["lon"].astype(np.float64), lat=rows["lat"].astype(np.float64),
                       seg_start=starts)


#: One row of the binary COPY of the point queries: a field count, then per field
#: its length and big-endian value (worker int4, t_us int8, lon, lat float8, bool).
_COPY_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("worker_id", ">i4"), ("l2", ">i4"),
                      ("t_us", ">i8"), ("l3", ">i4"), ("lon", ">f8"), ("l4", ">i4"),
                      ("lat", ">f8"), ("l5", ">i4"), ("seg_start", "u1")])
_COPY_HEADER = 11 + 4 + 4  # signature, flags, header extension length (0)


def _decode_copy(data: bytes) -> np.ndarray:
    """The rows of a PostgreSQL binary COPY of the point queries (no NULLs by the schema)."""
    if not data:
        return np.empty(0, dtype=_COPY_ROW)
    body = data[_COPY_HEADER:-2]  # the trailer is a field count of -1
    rows = np.frombuffer(body, dtype=_COPY_ROW)
    assert len(body) == rows.nbytes and (len(rows) == 0 or (rows["n"] == 5).all())
    return rows


def partitions(session: Session) -> list[dict[str, Any]]:
    """The monthly partitions of track_point: name, from, to, estimated rows, bytes on disk."""
    out = []
    for row in session.execute(_PARTITIONS).mappings():
        bounds = re.findall(r"'([^']+)'", row["bounds"])
        out.append({"name": row["name"], "from": bounds[0] if bounds else None,
                    "to": bounds[-1] if bounds else None,
                    "rows_estimate": int(row["rows_estimate"]), "bytes": int(row["bytes"])})
    return out
