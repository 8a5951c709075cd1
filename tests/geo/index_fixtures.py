"""Shared helpers of the assignment index tests: databases with real grids, PostGIS answers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from geo.assign import GridCandidate, choose_chain
from geo.store import db, grid_queries
from geo.store.grids import GridRecord, as_multipolygon, write_versions

_BULK = text("""
    SELECT p.i, g.code, g.name, g.level, g.depth, g.parent_code
      FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
      JOIN grid g ON g.valid_to IS NULL
                 AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))""")


@contextmanager
def scratch_db(template_url: str, prefix: str) -> Iterator[str]:
    """A database cloned from the migrated template, dropped afterwards."""
    url = make_url(template_url).set(database=f"{prefix}_{uuid.uuid4().hex[:10]}")
    rendered = url.render_as_string(hide_password=False)
    db.create_database(rendered, template=make_url(template_url).database)
    try:
        yield rendered
    finally:
        db.drop_database(rendered)


def chicago_records(shared_data: Path) -> list[GridRecord]:
    """Chicago districts (level ``district``) and beats (level ``beat``, under their district).

    Features sharing a label (beat 3100, districts 16 and 31) are merged into one
    MultiPolygon, as the store wants one record per code.
    """
    import json

    folder = shared_data / "chicago"
    parts: dict[tuple[str, str, str | None], list[object]] = defaultdict(list)
    for feat in json.loads((folder / "police_districts.geojson").read_text())["features"]:
        code = "D" + feat["properties"]["DIST_NUM"].zfill(2)
        parts[(code, "district", None)].append(shape(feat["geometry"]))
    for feat in json.loads((folder / "police_beats.geojson").read_text())["features"]:
        props = feat["properties"]
        parts[(props["BEAT_NUM"], "beat", "D" + props["DISTRICT"])].append(
            shape(feat["geometry"]))
    records = []
    districts_first = sorted(parts.items(), key=lambda kv: kv[0][1] != "district")
    for (code, level, parent), geoms in districts_first:
        polys = [p for g in geoms for p in as_multipolygon(g).geoms]  # type: ignore[arg-type]
        records.append(GridRecord(code=code, name=f"{level} {code}", level=level,
                                  geom=shapely.MultiPolygon(polys), parent_code=parent))
    return records


def write_and_commit(url: str, records: Sequence[GridRecord]) -> None:
    """Write grid records into ``url`` and commit."""
    with db.session_scope(url) as s:
        write_versions(s, records)


def segments(session: Session) -> np.ndarray:
    """Every boundary segment of the current grids as rows ``x1, y1, x2, y2`` (from PostGIS)."""
    wkbs = [bytes(r[0]) for r in session.execute(
        text("SELECT ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL ORDER BY code"))]
    rings = shapely.get_rings(shapely.get_parts(shapely.from_wkb(wkbs)))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    start = np.flatnonzero(ring[1:] == ring[:-1])
    return np.column_stack([coords[start], coords[start + 1]])


def postgis_finest(session: Session, lon: float, lat: float) -> str | None:
    """What ``ST_Covers`` + ``choose_chain`` answer for one point (the production query)."""
    cands = [GridCandidate(code=r.code, name=r.name, level=r.level, depth=r.depth,
                           parent_code=r.parent_code)
             for r in grid_queries.covering(session, lon, lat)]
    chain = choose_chain(cands)
    return chain[-1].code if chain else None


def postgis_finest_many(session: Session, xs: np.ndarray, ys: np.ndarray) -> list[str | None]:
    """``postgis_finest`` for many points in one query."""
    found: dict[int, list[GridCandidate]] = defaultdict(list)
    for i in range(0, len(xs), 50_000):
        rows = session.execute(_BULK, {"xs": xs[i:i + 50_000].tolist(),
                                       "ys": ys[i:i + 50_000].tolist()})
        for r in rows:
            found[i + r.i - 1].append(GridCandidate(code=r.code, name=r.name, level=r.level,
                                                    depth=r.depth, parent_code=r.parent_code))
    out: list[str | None] = []
    for i in range(len(xs)):
        chain = choose_chain(found.get(i, []))
        out.append(chain[-1].code if chain else None)
    return out


def boundary_probes(segs: np.ndarray, rng: np.random.Generator, n: int) -> tuple[
        np.ndarray, np.ndarray]:
    """Points on and a few ulps off the boundary: vertices, edge points, midpoints, nudges."""
    pick = rng.integers(0, len(segs), n)
    x1, y1, x2, y2 = segs[pick].T
    t = rng.uniform(0, 1, n)
    ex, ey = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
    xs = [x1, ex, (x1 + x2) / 2]
    ys = [y1, ey, (y1 + y2) / 2]
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1)):
        xs.append(ex if dx == 0 else np.nextafter(ex, dx * np.inf))
        ys.append(ey if dy == 0 else np.nextafter(ey, dy * np.inf))
    return np.concatenate(xs), np.concatenate(ys)


def mismatches(got: Sequence[object], want: Sequence[object], xs: np.ndarray,
               ys: np.ndarray) -> list[tuple[float, float, object, object]]:
    """The points where the index and PostGIS disagree (a few, for the failure message)."""
    return [(float(xs[i]), float(ys[i]), got[i], want[i])
            for i in range(len(want)) if got[i] != want[i]][:5]
