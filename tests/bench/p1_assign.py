"""P1: exact bulk assignment of 1M points to the demo grids, ours vs ``geopandas.sjoin``.

Both sides start from the same polygons (the current demo grids read from PostGIS)
and the same 1M points (uniform over the city's bounding box plus hotspots
around random grids), and end with the finest covering grid of every point (the
``choose_chain`` rule: greatest depth, then smallest code; None outside).

* ours: ``AssignmentIndex.build`` + ``locate_many`` (the build is counted);
* baseline: ``points_from_xy`` + ``sjoin(predicate="covered_by")`` + keeping the
  best-ranked match per point.

Each side runs three times in a fresh process of its own (the best time is kept)
so that its peak RSS is its own. The answers are compared point by point.
"""

from __future__ import annotations

import pickle
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

N_POINTS = 1_000_000
TARGET = 5
RUNS = 3


def _load(folder: str) -> tuple[list[tuple[str, int, bytes]], np.ndarray, np.ndarray]:
    with open(Path(folder) / "grids.pkl", "rb") as fh:
        grids = pickle.load(fh)  # our own file, written just before
    pts = np.load(Path(folder) / "points.npz")
    return grids, pts["x"], pts["y"]


def _as_ids(codes: np.ndarray, grids: list[tuple[str, int, bytes]]) -> np.ndarray:
    ids = {g[0]: i for i, g in enumerate(grids)}
    return np.array([ids.get(c, -1) if isinstance(c, str) else -1 for c in codes],
                    dtype=np.int32)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(folder: str) -> dict[str, Any]:
    import shapely

    from geo.index import AssignmentIndex, IndexedGrid

    grids, x, y = _load(folder)
    geoms = shapely.from_wkb([g[2] for g in grids])
    items = [IndexedGrid(code=c, depth=d, parent_code=None, geom=geom)
             for (c, d, _), geom in zip(grids, geoms, strict=True)]
    best: dict[str, Any] = {"seconds": float("inf")}
    for _ in range(RUNS):
        started = time.perf_counter()
        index = AssignmentIndex.build(items)
        built = time.perf_counter()
        codes = index.locate_many(x, y)
        done = time.perf_counter()
        if done - started < best["seconds"]:
            best = {"seconds": done - started, "build": built - started,
                    "lookup": done - built, "cell_m": index.stats.cell_m}
        del index
    best["rss"] = _peak_mib()
    index = AssignmentIndex.build(items)
    f = index._raster.frame
    cells = index._raster.cells[f.rows(y).clip(0, f.n_rows - 1) * f.n_cols
                                + f.cols(x).clip(0, f.n_cols - 1)]
    best["exact_share"] = float((cells <= -2).mean())
    np.save(Path(folder) / "ours.npy", _as_ids(codes, grids))
    return best


def _baseline(folder: str) -> dict[str, Any]:
    import geopandas as gpd
    import shapely

    grids, x, y = _load(folder)
    ranked = sorted(range(len(grids)), key=lambda i: (-grids[i][1], grids[i][0]))
    polys = gpd.GeoDataFrame(
        {"code": [grids[i][0] for i in ranked], "rank": np.arange(len(ranked))},
        geometry=shapely.from_wkb([grids[i][2] for i in ranked]), crs=4326)
    best: dict[str, Any] = {"seconds": float("inf")}
    for _ in range(RUNS):
        started = time.perf_counter()
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
        joined = gpd.sjoin(points, polys, how="left", predicate="covered_by")
        finest = joined.sort_values("rank").groupby(level=0)["code"].first()
        codes = finest.reindex(range(len(x))).to_numpy(dtype=object)
        seconds = time.perf_counter() - started
        best["seconds"] = min(best["seconds"], seconds)
    best["rss"] = _peak_mib()
    np.save(Path(folder) / "baseline.npy", _as_ids(codes, grids))
    return best


def _points(bounds: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20260101)
    n_hot = N_POINTS // 5
    minx, miny, maxx, maxy = bounds
    x = rng.uniform(minx, maxx, N_POINTS - n_hot)
    y = rng.uniform(miny, maxy, N_POINTS - n_hot)
    hot = centres[rng.integers(0, len(centres), n_hot)]
    hx = hot[:, 0] + rng.normal(0, 0.002, n_hot)
    hy = hot[:, 1] + rng.normal(0, 0.002, n_hot)
    return np.r_[x, hx], np.r_[y, hy]


def _in_fresh_process(fn: Any, folder: str) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, folder).result()


def run(ctx: Any) -> list[str]:
    """Load the demo city, then time both sides on the same data."""
    import shapely

    from data.demo.load import load_demo
    from geo.store import db

    with db.session_scope(ctx.database_url) as s:
        load_demo(s)
    with db.session_scope(ctx.database_url) as s:
        rows = s.execute(text("""SELECT code, depth, ST_AsBinary(geom) AS wkb FROM grid
                                  WHERE valid_to IS NULL""")).all()
    grids = [(r.code, int(r.depth), bytes(r.wkb)) for r in rows]
    geoms = shapely.from_wkb([g[2] for g in grids])
    leaves = [g for g, (_, d, _) in zip(geoms, grids, strict=True) if d == max(r[1] for r in grids)]
    centres = shapely.get_coordinates(shapely.centroid(np.array(leaves)))
    x, y = _points(shapely.total_bounds(geoms), centres)
    with tempfile.TemporaryDirectory(prefix="p1_") as folder:
        with open(Path(folder) / "grids.pkl", "wb") as fh:
            pickle.dump(grids, fh)
        np.savez(Path(folder) / "points.npz", x=x, y=y)
        ours = _in_fresh_process(_ours, folder)
        base = _in_fresh_process(_baseline, folder)
        same = int((np.load(Path(folder) / "ours.npy")
                    == np.load(Path(folder) / "baseline.npy")).sum())
    ratio = base["seconds"] / ours["seconds"]
    return [
        f"P1 exact bulk assignment of {N_POINTS:,} points to {len(grids)} demo grids (s): "
        f"ours={ours['seconds']:.3f} baseline={base['seconds']:.3f} ratio={ratio:.1f} "
        f"target={TARGET}",
        f"  P1 peak RSS: ours={ours['rss']:.0f} MiB baseline={base['rss']:.0f} MiB",
        f"  P1 ours: build {ours['build']:.3f} s + lookup {ours['lookup']:.3f} s; cells of "
        f"{ours['cell_m']:.1f} m; {ours['exact_share']:.1%} of points needed an exact test; "
        f"same answer as sjoin for {same:,} of {N_POINTS:,} points",
    ]
