"""A year of synthetic incidents for the demo city, loaded through the bulk import path.

Rules (all seeded: the same seed and ``now`` give the same incidents):

- **Where**: 60 % spread over the city in proportion to each grid's population
  (uniform inside the grid); 40 % around :data:`HOTSPOTS` seeded hotspots (a market,
  a school gate, an old quarter, a night-life street, a building site), each a
  Gaussian blob of 40–150 m with its own mix of categories. A few hotspot points
  fall just outside the district: they snap to the nearest grid or wait unassigned
  in the dispatcher's queue, as real reports do.
- **What**: each category has a base weight (street order and rubbish are common,
  road collapse is rare); hotspots have their own mix.
- **When**: over the 365 days before ``now``, local time. Days are weighted by the
  weekday (Monday busiest, Sunday quietest) and a mild season; waterlogged roads
  come in the typhoon season (June–September). Hours follow a daytime profile
  (peaks 9–11 and 15–17), an evening one for vending, hawkers and noise, and a
  flat one for sensors.
- **Who reports**: hotline 35 %, app 25 % (coordinates in GCJ-02, as Chinese map
  apps give them), patrol 25 %, camera 10 %, sensor 3 % (only for water, sewer and
  power matters; other draws go to the camera or the hotline), other 2 %.
- **Ids**: external ids ``DEMO-<seed>-<n>`` numbered in time order, source as
  drawn: loading the demo twice creates nothing new (every row is a duplicate).

What happens to them afterwards (dispatch, disposal, closure, evaluation,
escalation) is in :mod:`data.demo.incident_history`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.categories import CATEGORIES
from data.demo.city import City
from data.demo.incident_history import HistoryReport, overdue_count, play
from data.demo.tiling import sample_inside
from data.incident_import import ImportOptions, ImportSummary, import_rows
from data.incident_io import SourceRow
from geo.crs import wgs84_to_gcj02
from geo.incidents.escalation import escalate_overdue
from geo.settings import Settings

DEFAULT_COUNT = 100_000
DAYS = 365
HOTSPOTS = 30
HOTSPOT_SHARE = 0.4
M_PER_DEG_LAT = 110_940.0

#: Base weight of each category in the city at large.
BASE_WEIGHTS: dict[str, float] = {
    "C0101": 1.5, "C0102": 2.5, "C0103": 2.0, "C0104": 4.0, "C0105": 1.0, "C0106": 0.5,
    "C0201": 1.0, "C0202": 1.5, "C0203": 1.5, "C0204": 0.8, "C0301": 1.5, "C0302": 3.0,
    "C0303": 2.5, "C0401": 2.0, "C0402": 1.5, "C0601": 0.7,
    "E0101": 12.0, "E0102": 6.0, "E0103": 5.0, "E0104": 2.0, "E0201": 7.0, "E0202": 2.0,
    "E0301": 3.0, "E0302": 3.0, "E0401": 0.2, "E0402": 1.0, "E0403": 2.0, "E0501": 10.0,
    "E0502": 11.0, "E0503": 4.0, "E0504": 6.0, "E0601": 3.0, "E0602": 1.5, "E0603": 3.0,
}
#: Hotspot kinds: (place word for descriptions, category mix).
HOTSPOT_KINDS: dict[str, tuple[str, dict[str, float]]] = {
    "market": ("菜市场", {"E0501": 30, "E0503": 15, "E0101": 20, "E0504": 15, "E0103": 10,
                          "C0302": 5, "E0603": 5}),
    "school": ("学校门口", {"E0502": 40, "E0501": 15, "C0201": 10, "C0202": 10, "E0602": 10,
                            "E0201": 15}),
    "old_quarter": ("老旧小区", {"E0104": 15, "C0102": 10, "E0601": 20, "E0102": 15,
                                 "E0402": 10, "C0104": 10, "E0201": 15, "E0603": 5}),
    "nightlife": ("夜市街区", {"E0603": 35, "E0504": 20, "E0502": 20, "E0101": 15,
                               "E0602": 10}),
    "building_site": ("施工工地", {"E0301": 40, "E0302": 20, "E0102": 25, "E0603": 15}),
}
EVENING = frozenset({"E0501", "E0503", "E0504", "E0603"})
FLAT = frozenset({"E0403", "C0101", "C0102", "C0105"})
RAINY = frozenset({"E0403", "E0104", "C0103"})
#: Hour-of-day profiles (local time), relative weights.
HOURS: dict[str, tuple[float, ...]] = {
    "day": (0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.2, 2.8, 3.0, 2.6, 1.8, 1.9, 2.4, 2.7,
            2.6, 2.2, 1.7, 1.4, 1.2, 0.9, 0.6, 0.35),
    "evening": (0.6, 0.4, 0.2, 0.1, 0.1, 0.1, 0.3, 0.8, 1.2, 1.4, 1.5, 1.8, 1.6, 1.2, 1.2, 1.4,
                1.8, 2.4, 3.0, 3.2, 3.0, 2.4, 1.6, 1.0),
    "flat": (0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 1.0, 1.1, 1.2, 1.2, 1.2, 1.1, 1.1, 1.1, 1.1, 1.1,
             1.2, 1.2, 1.1, 1.0, 1.0, 0.9, 0.9, 0.8),
}
#: Monday (0) to Sunday (6).
WEEKDAY = (1.15, 1.05, 1.05, 1.05, 1.0, 0.8, 0.7)
SOURCES = ("hotline", "app", "patrol", "camera", "sensor", "other")
SOURCE_SHARES = (0.35, 0.25, 0.25, 0.10, 0.03, 0.02)
REPORTERS = {"hotline": "12345热线来电", "app": "市民（随手拍）", "patrol": "网格员巡查",
             "camera": "视频监控", "sensor": "物联感知设备", "other": "其他渠道"}


@dataclass(frozen=True)
class Hotspot:
    """One hotspot: a kind, a centre (WGS-84), a spread in metres and a relative weight."""

    kind: str
    lon: float
    lat: float
    sigma_m: float
    weight: float


def _rng(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x1C1D, key])


def _p(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def hotspots(city: City, seed: int) -> list[Hotspot]:
    """The seeded hotspots: centres in grids drawn by population, kinds in turn."""
    rng = _rng(seed, 1)
    grids = city.grids
    people = np.asarray([max(g.population or 0, 1) for g in grids], dtype=float)
    kinds = list(HOTSPOT_KINDS)
    out = []
    for i, g in enumerate(rng.choice(len(grids), size=HOTSPOTS, replace=False, p=_p(people))):
        lon, lat = sample_inside(grids[int(g)].geom, 1, rng)[0]
        out.append(Hotspot(kind=kinds[i % len(kinds)], lon=float(lon), lat=float(lat),
                           sigma_m=float(rng.uniform(40, 150)),
                           weight=float(rng.lognormal(0.0, 0.5))))
    return out


def _day_weights(first: dt.date, rainy: bool) -> np.ndarray:
    days = [first + dt.timedelta(days=d) for d in range(DAYS + 1)]
    season = np.asarray([1.0 + 0.15 * np.sin((d.timetuple().tm_yday - 100) / 365 * 2 * np.pi)
                         for d in days])
    if rainy:
        season *= np.asarray([3.0 if 6 <= d.month <= 9 else 0.4 for d in days])
    return _p(np.asarray([WEEKDAY[d.weekday()] for d in days]) * season)


def _times(categories: np.ndarray, now: dt.datetime, tz: ZoneInfo,
           rng: np.random.Generator) -> np.ndarray:
    """Report times (POSIX seconds) of the given categories, within the year before ``now``."""
    local_now = now.astimezone(tz)
    first = local_now.date() - dt.timedelta(days=DAYS)
    midnight = dt.datetime.combine(first, dt.time(), tz).timestamp()
    start, end = now.timestamp() - DAYS * 86400.0, now.timestamp()
    out = np.zeros(len(categories))
    todo = np.arange(len(categories))
    while len(todo):
        cats = categories[todo]
        rainy = np.isin(cats, list(RAINY))
        days = np.where(rainy, rng.choice(DAYS + 1, size=len(todo), p=_day_weights(first, True)),
                        rng.choice(DAYS + 1, size=len(todo), p=_day_weights(first, False)))
        hours = np.select(
            [np.isin(cats, list(EVENING)), np.isin(cats, list(FLAT))],
            [rng.choice(24, size=len(todo), p=_p(np.asarray(HOURS["evening"]))),
             rng.choice(24, size=len(todo), p=_p(np.asarray(HOURS["flat"])))],
            rng.choice(24, size=len(todo), p=_p(np.asarray(HOURS["day"]))))
        # whole local days from the first midnight (DST-free zones such as Asia/Shanghai)
        t = midnight + days * 86400.0 + hours * 3600.0 + rng.uniform(0, 3600, size=len(todo))
        ok = (t >= start) & (t < end)
        out[todo[ok]] = t[ok]
        todo = todo[~ok]
    return out


def _background(city: City, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    grids = city.grids
    people = np.asarray([max(g.population or 0, 1) for g in grids], dtype=float)
    counts = np.bincount(rng.choice(len(grids), size=n, p=_p(people)), minlength=len(grids))
    points = [sample_inside(g.geom, int(k), rng) for g, k in zip(grids, counts, strict=True)
              if k]
    xy = np.concatenate(points) if points else np.empty((0, 2))
    codes = list(BASE_WEIGHTS)
    weights = _p(np.asarray([BASE_WEIGHTS[c] for c in codes]))
    return xy, np.asarray(codes)[rng.choice(len(codes), size=len(xy), p=weights)]


def _around(spots: list[Hotspot], n: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    which = rng.choice(len(spots), size=n, p=_p(np.asarray([s.weight for s in spots])))
    lon0 = np.asarray([spots[i].lon for i in which])
    lat0 = np.asarray([spots[i].lat for i in which])
    sigma = np.asarray([spots[i].sigma_m for i in which])
    dy = rng.normal(0.0, 1.0, n) * sigma / M_PER_DEG_LAT
    dx = rng.normal(0.0, 1.0, n) * sigma / (M_PER_DEG_LAT * np.cos(np.radians(lat0)))
    cats = np.empty(n, dtype=object)
    for i, spot in enumerate(spots):
        mine = which == i
        mix = HOTSPOT_KINDS[spot.kind][1]
        codes = list(mix)
        cats[mine] = np.asarray(codes)[rng.choice(len(codes), size=int(mine.sum()),
                                                  p=_p(np.asarray([mix[c] for c in codes])))]
    return np.column_stack([lon0 + dx, lat0 + dy]), cats.astype(str), which


def generate(city: City, *, seed: int, now: dt.datetime, count: int = DEFAULT_COUNT,
             tz: ZoneInfo | None = None, gcj02_apps: bool = True) -> Iterator[SourceRow]:
    """The synthetic incidents as import rows, in time order (see the module docstring).

    Parameters
    ----------
    city : City
        The built demo city (its grids and populations).
    seed : int
        Seed of every draw.
    now : datetime
        End of the year of reports (timezone-aware).
    count : int
        How many incidents.
    tz : ZoneInfo
        Local time zone of the rhythms (Asia/Shanghai by default).
    gcj02_apps : bool
        Give app reports in GCJ-02 (True) or, like every other row, in WGS-84.

    Yields
    ------
    SourceRow
        Fields ``lon, lat, crs, category, source, external_id, reported_at,
        description, reporter``.
    """
    tz = tz or ZoneInfo("Asia/Shanghai")
    rng = _rng(seed, 2)
    n_spot = round(count * HOTSPOT_SHARE)
    spots = hotspots(city, seed)
    xy_b, cat_b = _background(city, count - n_spot, rng)
    xy_h, cat_h, which = _around(spots, n_spot, rng)
    xy = np.concatenate([xy_b, xy_h])
    cats = np.concatenate([cat_b, cat_h])
    place = np.concatenate([np.full(len(cat_b), -1), which])
    times = _times(cats, now, tz, rng)
    sources = np.asarray(SOURCES)[rng.choice(len(SOURCES), size=count, p=SOURCE_SHARES)]
    # sensors report only what sensors see; cameras see street order, others call the hotline
    misread = (sources == "sensor") & ~np.isin(cats, list(FLAT))
    sources[misread] = np.where(np.char.startswith(cats[misread].astype(str), "E05"),
                                "camera", "hotline")
    order = np.argsort(times, kind="stable")
    app = (sources == "app") & gcj02_apps
    lon, lat = xy[:, 0].copy(), xy[:, 1].copy()
    glon, glat = wgs84_to_gcj02(lon[app], lat[app])
    lon[app], lat[app] = glon, glat
    names = {c.code: c.name_zh for c in CATEGORIES}
    for n, i in enumerate(order, start=1):
        source = str(sources[i])
        spot = int(place[i])
        where = f"，{HOTSPOT_KINDS[spots[spot].kind][0]}附近" if spot >= 0 else ""
        yield SourceRow(row=n, values={
            "lon": round(float(lon[i]), 7), "lat": round(float(lat[i]), 7),
            "crs": "gcj02" if app[i] else "wgs84", "category": str(cats[i]),
            "source": source, "external_id": f"DEMO-{seed}-{n:06d}",
            "reported_at": dt.datetime.fromtimestamp(float(times[i]), tz).isoformat(
                timespec="seconds"),
            "description": f"{names[str(cats[i])]}{where}（演示数据）",
            "reporter": REPORTERS[source]})


_BACKDATE = text("""
WITH moved AS (
    UPDATE incident SET received_at = reported_at
     WHERE id = ANY(CAST(:ids AS bigint[]))
 RETURNING id, reported_at
)
UPDATE incident_event e SET at = moved.reported_at
  FROM moved
 WHERE e.incident_id = moved.id AND e.data->>'kind' IN ('intake', 'auto_dispatch')
""")


def _backdate_intake(session: Session, ids: list[int]) -> None:
    """Date the intake of the generated (historical) reports at their report time.

    A user's import is received now and its intake events say so; the demo
    pretends the reports came in live over the year, so that every incident's
    events run forward in time.
    """
    if ids:
        session.execute(_BACKDATE, {"ids": ids})


@dataclass
class DemoIncidents:
    """What :func:`load_demo_incidents` did."""

    generated: int
    imported: ImportSummary
    history: HistoryReport
    escalated: int
    overdue: int
    by_status: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """Counts only."""
        return {"generated": self.generated, "accepted": self.imported.accepted,
                "duplicates": self.imported.duplicates, "rejected": self.imported.rejected,
                "unassigned": self.imported.unassigned, "snapped": self.imported.snapped,
                "candidates": self.imported.candidates, "history": self.history.as_dict(),
                "escalated": self.escalated, "overdue": self.overdue,
                "by_status": self.by_status, "import_seconds": round(self.imported.seconds, 1)}


_STORED = text("SELECT count(*) FROM incident WHERE external_id LIKE :prefix")


def load_demo_incidents(session: Session, city: City, *, seed: int, now: dt.datetime,
                        settings: Settings, count: int = DEFAULT_COUNT) -> DemoIncidents:
    """Generate the demo incidents, import them like a user's file, then play their history.

    Parameters
    ----------
    session : Session
        The transaction of ``demo load`` (the city, roster and categories are in it).
    city : City
        The built city.
    seed : int
        Seed of the draws.
    now : datetime
        End of the demo year and the moment the history stops (timezone-aware).
    settings : Settings
        Snap tolerance, duplicate rule and time zone, as for any import.
    count : int
        How many incidents to generate.

    Returns
    -------
    DemoIncidents
        Only incidents created by this call get a history. When the demo incidents of
        ``seed`` are there already, nothing is generated and nothing changes (they
        count as duplicates): a later ``now`` draws other times, sources and so keys,
        which would have stored the year again beside the first.
    """
    stored = int(session.scalar(_STORED, {"prefix": f"DEMO-{seed}-%"}) or 0)
    if stored:
        kept = ImportSummary(source="demo incidents", format="generated", rows=stored,
                             duplicates=stored)
        return DemoIncidents(generated=0, imported=kept, history=HistoryReport(),
                             escalated=0, overdue=overdue_count(session, now), by_status={})
    rows = generate(city, seed=seed, now=now, count=count, tz=settings.tz)
    imported = import_rows(session, rows, ImportOptions(), settings=settings,
                           actor="demo:intake", source="demo incidents", fmt="generated",
                           keep_ids=True)
    _backdate_intake(session, imported.ids)
    history = play(session, imported.ids, seed=seed, now=now)
    escalated = 0
    if imported.ids:
        escalated = len(escalate_overdue(session, now, settings).escalated)
    by_status = {str(status): int(n) for status, n in session.execute(text(
        "SELECT status, count(*) FROM incident WHERE id = ANY(CAST(:ids AS bigint[])) "
        "GROUP BY status ORDER BY status"), {"ids": imported.ids})}
    return DemoIncidents(generated=count, imported=imported, history=history,
                         escalated=escalated, overdue=overdue_count(session, now),
                         by_status=by_status)
