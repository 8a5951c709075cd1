"""Synthetic GPS tracks of the demo patrols: a month of walks along their routes.

Pure (no database): :func:`month_of_tracks` yields one :class:`SyntheticTrack` per
walk, in the form of ``geo.tracks.points.TrackInput`` (WGS-84 lon/lat, int64
microseconds since the epoch), ready for the track store.

Each day, in each window of the route's schedule, one member of the team (in turn)
walks the loop once, starting 0-20 minutes into the window, at a walking speed
drawn around 1.25 m/s, with a point every 5 s and short stops. What makes it
realistic, all seeded:

- GPS noise: Gaussian, sigma 4 m per axis; 0.3% of the points jump 50-300 m;
- 1% of the points repeat the previous time stamp (a real receiver habit);
- signal loss: a third of the walks lose 1-4 minutes of points;
- misses: 8% of the walks do not happen, and a quarter of the others turn back
  after 60-85% of the loop and return the way they came, leaving out the rest
  (``missed`` holds the part left out as fractions of the route's length, for
  checking planned-vs-actual coverage).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import LineString
from shapely.ops import substring
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.routes.network import MetricFrame

INTERVAL_S = 5.0
NOISE_M = 4.0
SPIKE_SHARE, DUPLICATE_SHARE = 0.003, 0.01
SKIP_WALK, TURN_BACK, SIGNAL_LOSS = 0.08, 0.25, 0.33
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PatrolPlan:
    """What a team walks: its route (lon/lat vertices), schedule and members."""

    route_code: str
    coords: NDArray[np.float64]
    schedule: Sequence[Mapping[str, object]]
    workers: Sequence[str]


@dataclass
class SyntheticTrack:
    """One walk: who, along which route, and its points."""

    worker_code: str
    route_code: str
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    t_us: NDArray[np.int64]
    missed: list[tuple[float, float]] = field(default_factory=list)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _minutes(hhmm: object) -> int:
    hours, minutes = str(hhmm).split(":")
    return int(hours) * 60 + int(minutes)


def walk(coords: NDArray[np.float64], start: dt.datetime, rng: np.random.Generator,
         ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64],
                    list[tuple[float, float]]]:
    """One noisy walk along a route (lon/lat vertices) starting at ``start``."""
    frame = MetricFrame(float(coords[0, 0]), float(coords[0, 1]))
    line = LineString(shapely.get_coordinates(frame.to_metric(LineString(coords))))
    missed: list[tuple[float, float]] = []
    path = line
    if rng.random() < TURN_BACK:
        a = float(rng.uniform(0.60, 0.85))
        there = substring(line, 0, a, normalized=True)
        path = LineString([*there.coords, *list(there.coords)[::-1][1:]])
        missed.append((round(a, 4), 1.0))
    speed = float(np.clip(rng.normal(1.25, 0.12), 0.9, 1.6))
    steps = int(path.length / (speed * INTERVAL_S)) + 1
    t = np.arange(steps) * INTERVAL_S
    stops = rng.random(steps) < 0.002  # a stop of 1-5 minutes now and then
    t = t + np.cumsum(np.where(stops, rng.uniform(60, 300, steps), 0.0))
    points = shapely.line_interpolate_point(path, np.minimum(np.arange(steps) * speed
                                                             * INTERVAL_S, path.length))
    xy = shapely.get_coordinates(points) + rng.normal(0.0, NOISE_M, (steps, 2))
    spikes = rng.random(steps) < SPIKE_SHARE
    angle = rng.uniform(0, 2 * np.pi, steps)
    jump = rng.uniform(50, 300, steps)
    xy[spikes] += np.column_stack([np.cos(angle), np.sin(angle)])[spikes] * jump[spikes, None]
    keep = np.ones(steps, dtype=bool)
    if rng.random() < SIGNAL_LOSS and steps > 100:
        lost = int(rng.uniform(12, 48))
        at = int(rng.integers(10, steps - lost))
        keep[at:at + lost] = False
    duplicate = rng.random(steps) < DUPLICATE_SHARE
    duplicate[0] = False
    t_us = np.round(t * 1e6).astype(np.int64) + _us(start)
    t_us[duplicate] = np.roll(t_us, 1)[duplicate]
    lonlat = shapely.get_coordinates(frame.to_lonlat(LineString(xy[keep])))
    return lonlat[:, 0], lonlat[:, 1], t_us[keep], missed


def _us(moment: dt.datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def month_of_tracks(plans: Sequence[PatrolPlan], *, first_day: dt.date, days: int = 30,
                    seed: int, tz: str = "Asia/Shanghai") -> Iterator[SyntheticTrack]:
    """Every walk of ``days`` days from ``first_day``, route by route, day by day.

    Parameters
    ----------
    plans : sequence of PatrolPlan
        The routes, their weekly schedule (windows ``{"days", "start", "end"}`` in
        local time; Monday is 0) and the members who take turns.
    first_day : date
        First local day.
    days : int
        How many days.
    seed : int
        Seed of every draw: the same seed gives the same tracks.
    tz : str
        Time zone of the schedules.
    """
    zone = ZoneInfo(tz)
    for plan in plans:
        if not plan.workers:
            continue
        turn = 0
        for offset in range(days):
            day = first_day + dt.timedelta(days=offset)
            for window in plan.schedule:
                if day.weekday() not in list(window["days"]):  # type: ignore[call-overload]
                    continue
                rng = _rng(seed, plan.route_code, day.isoformat(), str(window["start"]))
                worker = plan.workers[turn % len(plan.workers)]
                turn += 1
                if rng.random() < SKIP_WALK:
                    continue
                minute = _minutes(window["start"]) + float(rng.uniform(0, 20))
                start = dt.datetime.combine(day, dt.time(0), zone) + dt.timedelta(minutes=minute)
                lon, lat, t_us, missed = walk(plan.coords, start.astimezone(dt.UTC), rng)
                yield SyntheticTrack(worker_code=worker, route_code=plan.route_code, lon=lon,
                                     lat=lat, t_us=t_us, missed=missed)


def demo_plans(session: Session) -> list[PatrolPlan]:
    """The demo routes (``attrs.source = 'demo'``) with their teams' active patrol members."""
    rows = session.execute(text("""
        SELECT r.code, ST_AsBinary(ST_GeometryN(r.geom, 1)) AS wkb, r.schedule,
               array_agg(w.code ORDER BY w.code) AS workers
          FROM patrol_route r
          JOIN worker w ON w.team_id = r.team_id AND w.active AND w.role = 'patrol'
         WHERE r.attrs->>'source' = 'demo'
         GROUP BY r.id ORDER BY r.code""")).all()
    return [PatrolPlan(route_code=r.code, schedule=list(r.schedule), workers=list(r.workers),
                       coords=shapely.get_coordinates(shapely.from_wkb(bytes(r.wkb))))
            for r in rows]
