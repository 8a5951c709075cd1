"""P5: coverage of one day of tracks (300 workers, 8 hours, a fix every 5 s) for every grid.

Data: the demo city (its 324 grids); 300 workers, each patrolling around a grid of
its own (a loop through 6 random points of the grid's box grown by 100 m, walked
round and round at 1.25 m/s with stops and 3 m GPS noise), 5,760 fixes each,
1.73 M in all, stored in track_point with COPY.

* ours: ``geo.coverage`` raster coverage (lines sampled every 2 m, 2 m cells,
  a distance transform per grid window), from the same numpy arrays as the
  baseline; also ``level_coverage`` end to end (PostGIS read by binary COPY,
  projection, hotspots, ranking) reported beside it.
* baseline: shapely 2 buffer (25 m) of the tracks, ``union_all``, then the
  intersection area with every grid. Buffering a whole 8-hour line (thousands of
  self-overlapping vertices) takes GEOS ~9 s per worker, so the baseline gets
  the lines cut into 5-leg pieces, its fastest variant we measured.

The answers are compared grid by grid (percentage points).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

WORKERS, HOURS, STEP_S = 300, 8, 5
DISTANCE_M, CELL_M, CHUNK = 25.0, 2.0, 5
TARGET = 5


def _walks(boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each worker walks a loop through 6 random points of its box (grown by 100 m)
    round and round for 8 hours at 1.25 m/s, standing still 30% of the fixes."""
    import shapely

    n = HOURS * 3600 // STEP_S
    xs, ys = [], []
    for xmin, ymin, xmax, ymax in boxes:
        corners = rng.uniform([xmin - 100, ymin - 100], [xmax + 100, ymax + 100], (6, 2))
        loop = shapely.LineString(np.vstack([corners, corners[:1]]))
        along = np.cumsum(np.where(rng.random(n) < 0.3, 0.0, 1.25 * STEP_S)) % loop.length
        xy = shapely.get_coordinates(shapely.line_interpolate_point(loop, along))
        xy += rng.normal(0, 3, (n, 2))
        xs.append(xy[:, 0])
        ys.append(xy[:, 1])
    return np.concatenate(xs), np.concatenate(ys)


def _store(session: Any, workers: list[int], lon: np.ndarray, lat: np.ndarray,
           start: dt.datetime) -> None:
    from sqlalchemy import text

    n = HOURS * 3600 // STEP_S
    session.execute(text("SELECT track_point_partition(:t)"), {"t": start})
    buf = io.StringIO()
    for w, worker in enumerate(workers):
        for i in range(n):
            t = (start + dt.timedelta(seconds=i * STEP_S)).isoformat()
            k = w * n + i
            buf.write(f"{worker}\t{t}\tSRID=4326;POINT({lon[k]:.7f} {lat[k]:.7f})\t"
                      f"{'t' if i == 0 else 'f'}\n")
    dbapi = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cur, cur.copy(
            "COPY track_point (worker_id, t, geom, seg_start) FROM STDIN") as copy:
        copy.write(buf.getvalue())


def _baseline(polys: list[Any], x: np.ndarray, y: np.ndarray) -> list[float]:
    import shapely

    n = HOURS * 3600 // STEP_S
    pieces = []
    for w in range(len(x) // n):
        coords = np.column_stack([x[w * n:(w + 1) * n], y[w * n:(w + 1) * n]])
        pieces += [shapely.LineString(coords[a:a + CHUNK + 1]) for a in range(0, n - 1, CHUNK)]
    near = shapely.union_all(shapely.buffer(np.array(pieces, dtype=object), DISTANCE_M))
    shapely.prepare(near)
    areas = shapely.area(shapely.intersection(np.array(polys, dtype=object), near))
    return [float(a / p.area) for a, p in zip(areas, polys, strict=True)]


def run(ctx: Any) -> list[str]:
    """Load the demo city and the day of tracks, then time both sides."""
    import shapely
    from sqlalchemy import text

    from data.demo.load import load_demo
    from geo.coverage import area_coverage, sample_lines
    from geo.routes.network import MetricFrame
    from geo.store import coverage as store
    from geo.store import db

    with db.session_scope(ctx.database_url) as s:
        load_demo(s)
    with db.session_scope(ctx.database_url) as s:
        found = store.areas(s, level="grid")
        workers = [int(r[0]) for r in s.execute(text("SELECT id FROM worker ORDER BY id "
                                                     "LIMIT :n"), {"n": WORKERS})]
    assert len(workers) == WORKERS, f"the demo has {len(workers)} workers, {WORKERS} needed"
    lonlat = [shapely.from_wkb(a.wkb) for a in found]
    bounds = shapely.total_bounds(np.array(lonlat, dtype=object))
    frame = MetricFrame((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    polys = [frame.to_metric(g) for g in lonlat]
    rng = np.random.default_rng(20261110)
    picks = rng.choice(len(polys), WORKERS, replace=False)
    x, y = _walks(np.array([polys[i].bounds for i in picks]), rng)
    lon, lat = frame.inverse.transform(x, y)
    start = dt.datetime(2026, 11, 10, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    with db.session_scope(ctx.database_url) as s:
        _store(s, workers, np.asarray(lon), np.asarray(lat), start)
        s.execute(text("ANALYZE track_point"))

    n = HOURS * 3600 // STEP_S
    starts = np.zeros(len(x), dtype=bool)
    starts[::n] = True
    started = time.perf_counter()
    px, py = frame.xy(lon, lat)
    samples = sample_lines(px, py, starts, CELL_M, cell_m=CELL_M)
    ours = [c.share for c in area_coverage(polys, samples, distance_m=DISTANCE_M,
                                           cell_m=CELL_M)]
    t_ours = time.perf_counter() - started

    rules = store.Rules(distance_m=DISTANCE_M, cell_m=CELL_M)
    started = time.perf_counter()
    with db.session_scope(ctx.database_url) as s:
        ranked = store.level_coverage(s, "grid", start=start,
                                      end=start + dt.timedelta(hours=HOURS), rules=rules)
    t_e2e = time.perf_counter() - started

    started = time.perf_counter()
    base = _baseline(polys, px, py)
    t_base = time.perf_counter() - started

    diff = np.abs(np.array(ours) - np.array(base)) * 100
    e2e = {i["grid"]: i["coverage"] for i in ranked["items"]}
    diff_e2e = max(abs(e2e[a.code] - b) * 100 for a, b in zip(found, base, strict=True))
    return [
        f"P5 coverage of one day of tracks ({WORKERS} workers, {HOURS} hours, a point every "
        f"{STEP_S} s) for every grid of the demo city: ours={t_ours:.2f}s "
        f"baseline={t_base:.2f}s ratio={t_base / t_ours:.1f}x target={TARGET}",
        f"  {len(x):,} fixes, {len(polys)} grids, mean coverage {np.mean(base):.3f}; "
        f"|ours - exact| max {diff.max():.2f} pp, mean {diff.mean():.3f} pp; "
        f"end to end (PostGIS read + hotspots + ranking) {t_e2e:.2f}s, max diff "
        f"{diff_e2e:.2f} pp",
    ]
