"""P4: the heatmap page over 1,000,000 incidents.

Data: the demo city (its grids and categories) and 1M incidents written by COPY
over a year: 60 % around 300 hotspots (Gaussian, sigma 120 m), 40 % uniform over
the district's grids, random categories and statuses.

* ours: ``/maps/heatmap``'s HTML for the year, from the database rows:
  ``maps.pages.render`` (positions packed into one bytea, exact H3 binning at
  resolution 10, one weighted point per cell, the grid outlines, the offline page).
* baseline: folium's HeatMap fed the same 1M raw points (an in-memory numpy
  array, no database) on the same map with the same outlines, rendered to HTML.

Both are the best of two runs. The page sizes are printed beside the times.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from typing import Any

import numpy as np

N = 1_000_000
HOTSPOTS, HOT_SHARE, SIGMA_M = 300, 0.6, 120.0
TARGET = 5


def _positions(polys: list[Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points inside the district: uniform over the grids, plus clusters round hotspots."""
    import shapely

    district = shapely.union_all(np.array(polys, dtype=object))
    x0, y0, x1, y1 = district.bounds
    shapely.prepare(district)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    need = N
    hot_x = hot_y = np.zeros(0)
    while len(hot_x) < HOTSPOTS:  # hotspot centres inside the district
        cx, cy = rng.uniform(x0, x1, 4 * HOTSPOTS), rng.uniform(y0, y1, 4 * HOTSPOTS)
        keep = shapely.contains_xy(district, cx, cy)
        hot_x, hot_y = np.concatenate([hot_x, cx[keep]]), np.concatenate([hot_y, cy[keep]])
    hot_x, hot_y = hot_x[:HOTSPOTS], hot_y[:HOTSPOTS]
    n_hot = int(N * HOT_SHARE)
    pick = rng.integers(0, HOTSPOTS, n_hot)
    sigma = SIGMA_M / 111_000
    xs.append(hot_x[pick] + rng.normal(0, sigma, n_hot))
    ys.append(hot_y[pick] + rng.normal(0, sigma, n_hot))
    need -= n_hot
    while need > 0:
        ux, uy = rng.uniform(x0, x1, 2 * need), rng.uniform(y0, y1, 2 * need)
        keep = shapely.contains_xy(district, ux, uy)
        xs.append(ux[keep][:need])
        ys.append(uy[keep][:need])
        need -= int(min(keep.sum(), need))
    return np.concatenate(xs), np.concatenate(ys)


def _store(session: Any, lon: np.ndarray, lat: np.ndarray, end: dt.datetime,
           rng: np.random.Generator) -> None:
    from sqlalchemy import text

    from geo.store.models import INCIDENT_STATUSES

    categories = [r[0] for r in session.execute(text("SELECT code FROM category ORDER BY code"))]
    cats = rng.integers(0, len(categories), N)
    stats = rng.integers(0, len(INCIDENT_STATUSES), N)
    ages = rng.uniform(0, 365 * 86400, N)
    buf = io.StringIO()
    for i in range(N):
        at = end - dt.timedelta(seconds=float(ages[i]))
        buf.write(f"app\tB{i}\t{categories[cats[i]]}\tSRID=4326;POINT({lon[i]:.7f} {lat[i]:.7f})"
                  f"\t{INCIDENT_STATUSES[stats[i]]}\t{at.isoformat()}\t"
                  f"{(at + dt.timedelta(hours=24)).isoformat()}\n")
    dbapi = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cur, cur.copy(
            "COPY incident (source, external_id, category_code, geom, status, reported_at, "
            "due_at) FROM STDIN") as copy:
        copy.write(buf.getvalue())


def _best(fn: Any) -> tuple[float, str]:
    times, page = [], ""
    for _ in range(2):
        started = time.perf_counter()
        page = fn()
        times.append(time.perf_counter() - started)
    return min(times), page


def run(ctx: Any) -> list[str]:
    """Time both pages on a database of P4's own (the others leave incidents behind)."""
    from sqlalchemy.engine import make_url

    from geo.store import db

    url = make_url(ctx.database_url)
    own = url.set(database=f"{url.database}_p4").render_as_string(hide_password=False)
    db.create_database(own)
    try:
        db.migrate(own)
        return _run(own)
    finally:
        db.drop_database(own)


def _run(database_url: str) -> list[str]:
    """Load the demo city and 1M incidents, then time both pages."""
    import shapely
    from folium.plugins import HeatMap
    from sqlalchemy import text

    from data.demo.load import load_demo
    from geo.settings import Settings
    from geo.store import db
    from geo.store.map_grids import grid_outlines, grids_extent
    from maps import pages
    from maps.basemap import Basemap, new_map
    from maps.offline import render_page
    from maps.pages.common import add_outlines

    settings = Settings(database_url=database_url, escalation_interval_s=0)
    end = dt.datetime.now(dt.UTC)
    rng = np.random.default_rng(20261201)
    with db.session_scope(database_url) as s:
        load_demo(s, settings=settings)
    with db.session_scope(database_url) as s:
        rows = s.execute(text("SELECT ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL "
                              "AND level = 'grid'")).scalars().all()
        lon, lat = _positions([shapely.from_wkb(bytes(r)) for r in rows], rng)
        _store(s, lon, lat, end, rng)
    with db.session_scope(database_url) as s:
        s.execute(text("ANALYZE incident"))
    raw = {"since": (end - dt.timedelta(days=366)).isoformat(),
           "until": (end + dt.timedelta(seconds=1)).isoformat()}

    def ours() -> str:
        with db.session_scope(database_url) as s:
            return pages.render(s, settings, "heatmap", raw)

    with db.session_scope(database_url) as s:
        outlines = grid_outlines(s, level="grid")
        bounds = grids_extent(s)
    points = np.column_stack([lat, lon])

    def baseline() -> str:
        m = new_map(basemap=Basemap("none"), bounds=bounds)
        HeatMap(points, name="heat", radius=12).add_to(m)
        add_outlines(m, Basemap("none"), [dict(f, properties=dict(f["properties"]))
                                          for f in outlines], name="grids", lang="zh")
        return render_page(m, title="baseline")

    t_ours, page_ours = _best(ours)
    t_base, page_base = _best(baseline)
    heat = re.search(r"L\.heatLayer\(\s*(\[\[.*?\]\])", page_ours, re.S)
    cells = len(json.loads(heat.group(1))) if heat else 0
    assert f"{N:,}" in page_ours, "the page does not count every incident"
    return [
        f"P4 heatmap page over 1M incidents: ours={t_ours:.2f}s baseline={t_base:.2f}s "
        f"ratio={t_base / t_ours:.1f}x target={TARGET}",
        f"  page sizes: ours {len(page_ours.encode()) / 1e6:.2f} MB, baseline "
        f"{len(page_base.encode()) / 1e6:.1f} MB; ours draws ~{cells:,} weighted H3 cells "
        f"(resolution 10) for {N:,} incidents",
    ]
