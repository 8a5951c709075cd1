"""Who answers for an incident: the fallback chain of workers, as pure (vectorised) functions.

Rules, tried in order for each incident at its ``reported_at`` (local time in
the configured zone); the first that finds someone wins and names the ``rule``:

1. ``primary``: an active primary (A角) of the incident's grid on shift;
2. ``backup``: an active backup (B角) of the grid on shift;
3. ``community_manager``: an active worker with role ``manager`` holding a duty
   (primary before backup) on the grid's community, on shift;
4. ``street_nearest``: the active worker of the grid's street with a last known
   position nearest to the incident (geodesic metres) who is on duty: a worker
   with duties must be on shift in one of them (on any grid), a worker without
   duties (patrol and volunteer team members) is on call. Workers of the street
   are the members of teams attached to it and the holders of a duty on it or on
   any grid below it. The position's age is not considered.
5. ``none``: nobody, with the reason.

A duty limited to some categories only counts for those (in every rule). Ties
go to the smallest worker code (then duty id); rule 4 ties on distance
(to the millimetre) go to the smallest code.

The *community* of a grid is the member of its chain (coarsest first) with
level ``community``, else the grid's parent; the *street* is the member with
level ``street``, else the coarsest grid of the chain.

Shifts are turned into weekly bitmaps (one flag per minute of the week), so
that a batch of incidents is matched with numpy per grid and duty rather than
one ``on_duty`` call per incident and duty; the result is the same as
:func:`geo.assign.on_duty` (shift bounds are whole minutes).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pyproj import Geod

from geo.assign import DutyCandidate, Shift

MINUTES_PER_WEEK = 7 * 24 * 60
RULES = ("primary", "backup", "community_manager", "street_nearest")
_GEOD = Geod(ellps="WGS84")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_KIND_ORDER = {"primary": 0, "backup": 1}
_SMALL = 16

ChainLink = tuple[str, str, str]  # (code, name, level)


@dataclass(frozen=True)
class StreetWorker:
    """A worker of a street with a last known position (WGS-84).

    ``duties`` holds ``(shifts, categories)`` of every duty the worker has (on
    any grid); empty means on call at any time for every category.
    """

    worker_id: int
    worker_code: str
    worker_name: str
    lon: float
    lat: float
    duties: tuple[tuple[tuple[Shift, ...], frozenset[str] | None], ...] = ()
    role: str | None = None


@dataclass
class RosterView:
    """The part of the roster the rules read: duties by grid code, street workers by street."""

    duties: Mapping[str, Sequence[DutyCandidate]] = field(default_factory=dict)
    street_workers: Mapping[str, Sequence[StreetWorker]] = field(default_factory=dict)
    #: With ``frozen`` (the duties will not change while the view lives, as in a bulk
    #: import): each rule's duties of a grid in their order and each duty's week mask
    #: are worked out once and kept here, not once per call of :func:`choose_workers`.
    frozen: bool = False
    ordered: dict[tuple[str, str], list[DutyCandidate]] = field(default_factory=dict)
    masks: dict[int, NDArray[np.bool_]] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerChoice:
    """The outcome for one incident: the worker (or None), the rule and, for none, the reason."""

    worker_id: int | None
    worker_code: str | None
    worker_name: str | None
    rule: str
    reason: str | None = None
    duty_id: int | None = None
    distance_m: float | None = None


def community_and_street(chain: Sequence[ChainLink]) -> tuple[str | None, str | None]:
    """The community and the street of a grid chain (coarsest first), by the module's rule."""
    if not chain:
        return None, None
    levels = {link[2]: link[0] for link in chain}
    community = levels.get("community") or (chain[-2][0] if len(chain) >= 2 else None)
    street = levels.get("street") or chain[0][0]
    return community, street


def communities_and_streets(
        chains: Sequence[Sequence[ChainLink]]) -> list[tuple[str | None, str | None]]:
    """:func:`community_and_street` of each chain, worked out once per distinct chain."""
    seen: dict[Any, tuple[str | None, str | None]] = {}
    out: list[tuple[str | None, str | None]] = []
    for chain in chains:
        try:
            place = seen.get(chain)
        except TypeError:  # an unhashable chain (lists): no memo
            out.append(community_and_street(chain))
            continue
        if place is None:
            place = seen[chain] = community_and_street(chain)
        out.append(place)
    return out


@lru_cache(maxsize=4096)
def week_mask(shifts: tuple[Shift, ...]) -> NDArray[np.bool_]:
    """One flag per minute of the local week (Monday 00:00 = 0): on shift or not.

    Parameters
    ----------
    shifts : tuple of Shift
        Empty means always on duty.

    Returns
    -------
    numpy.ndarray of bool, shape (10080,)
        Read-only; equal to :func:`geo.assign.on_duty` at every minute.
    """
    mask = np.zeros(MINUTES_PER_WEEK, dtype=bool)
    if not shifts:
        mask[:] = True
    for shift in shifts:
        length = shift.end - shift.start if shift.end > shift.start else \
            24 * 60 - shift.start + shift.end
        for day in shift.days:
            start = day * 24 * 60 + shift.start
            idx = np.arange(start, start + length) % MINUTES_PER_WEEK
            mask[idx] = True
    mask.flags.writeable = False
    return mask


def minutes_of_week(at: Sequence[dt.datetime], tz: ZoneInfo | str) -> NDArray[np.int64]:
    """The local minute of the week (Monday 00:00 = 0) of each moment (vectorised).

    Parameters
    ----------
    at : sequence of datetime
        Timezone-aware moments (naive ones are read as local time in ``tz``).
    tz : ZoneInfo or str
        The time zone of the shifts.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    if len(at) <= _SMALL:  # pandas costs more than it saves on a handful of moments
        moments = [(t if t.tzinfo else t.replace(tzinfo=zone)).astimezone(zone) for t in at]
        return np.array([t.weekday() * 1440 + t.hour * 60 + t.minute for t in moments],
                        dtype=np.int64)
    step = dt.timedelta(microseconds=1)
    micros = np.fromiter(
        (((t if t.tzinfo else t.replace(tzinfo=zone)) - _EPOCH) // step for t in at),
        dtype=np.int64, count=len(at))
    local = pd.DatetimeIndex(pd.to_datetime(micros, unit="us", utc=True)).tz_convert(zone)
    return np.asarray(local.day_of_week * 1440 + local.hour * 60 + local.minute, dtype=np.int64)


def _serves(categories: frozenset[str] | None, cats: NDArray[np.object_]) -> NDArray[np.bool_]:
    if categories is None:
        return np.ones(len(cats), dtype=bool)
    return np.isin(cats, list(categories))


class _Batch:
    """The state of one call of :func:`choose_workers`."""

    def __init__(self, mow: NDArray[np.int64], cats: NDArray[np.object_], n: int,
                 view: RosterView) -> None:
        self.ordered = view.ordered if view.frozen else {}
        self.masks = view.masks if view.frozen else {}
        self.mow = mow
        self.cats = cats
        self.found: list[WorkerChoice | None] = [None] * n
        self.pending = np.ones(n, dtype=bool)

    def by_duties(self, groups: Mapping[str, NDArray[np.int64]], view: RosterView, rule: str,
                  keep: Any) -> None:
        for code, idx in groups.items():
            todo = idx[self.pending[idx]]
            if todo.size == 0:
                continue
            ordered = self.ordered.get((code, rule))
            if ordered is None:
                ordered = self.ordered[(code, rule)] = sorted(
                    (d for d in view.duties.get(code, ()) if d.active and keep(d)),
                    key=lambda d: (_KIND_ORDER.get(d.kind, 9), d.worker_code, d.duty_id))
            for duty in ordered:
                mask = self.masks.get(duty.duty_id)
                if mask is None:
                    mask = self.masks[duty.duty_id] = week_mask(duty.shifts)
                hit = mask[self.mow[todo]] & _serves(duty.categories, self.cats[todo])
                if not hit.any():
                    continue
                choice = WorkerChoice(duty.worker_id, duty.worker_code, duty.worker_name, rule,
                                      duty_id=duty.duty_id)
                for i in todo[hit]:
                    self.found[i] = choice
                self.pending[todo[hit]] = False
                todo = todo[~hit]
                if todo.size == 0:
                    break


def _group(keys: Sequence[str | None]) -> dict[str, NDArray[np.int64]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if key is not None:
            groups[key].append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def _available(worker: StreetWorker, minute: int, category: str) -> bool:
    if not worker.duties:
        return True
    return any(week_mask(shifts)[minute] and (cats is None or category in cats)
               for shifts, cats in worker.duties)


def _nearest(workers: Sequence[StreetWorker], lon: float, lat: float, minute: int,
             category: str) -> tuple[StreetWorker, float] | None:
    ready = [w for w in workers if _available(w, minute, category)]
    if not ready:
        return None
    _, _, dist = _GEOD.inv(np.full(len(ready), lon), np.full(len(ready), lat),
                           np.array([w.lon for w in ready]), np.array([w.lat for w in ready]))
    best = min(range(len(ready)), key=lambda k: (round(float(dist[k]), 3), ready[k].worker_code))
    return ready[best], float(dist[best])


def _reason(view: RosterView, grid: str, community: str | None, street: str | None,
            community_level: str = "community") -> str:
    parts = []
    duties = view.duties.get(grid, ())
    if not duties:
        parts.append(f"no worker has a duty on grid {grid}")
    elif not any(d.active for d in duties):
        parts.append(f"every worker with a duty on grid {grid} is inactive")
    else:
        parts.append(f"no primary or backup of grid {grid} is on shift for this category")
    if community is not None and community != grid:
        parts.append(f"no manager of {community_level} {community} is on shift")
    if street is not None:
        parts.append(f"no worker of street {street} with a known position is on duty")
    return "; ".join(parts)


def choose_workers(view: RosterView, grids: Sequence[str | None],
                   chains: Sequence[Sequence[ChainLink]], lon: Sequence[float],
                   lat: Sequence[float], at: Sequence[dt.datetime], categories: Sequence[str],
                   tz: ZoneInfo | str) -> list[WorkerChoice]:
    """The responsible worker of each incident, by the module's rules.

    Parameters
    ----------
    view : RosterView
        Duties of the grids and communities involved, workers of the streets.
    grids : sequence of str or None
        The finest grid of each incident (None: unassigned, the answer is ``none``).
    chains : sequence of sequences of (code, name, level)
        Each incident's grid chain, coarsest first.
    lon, lat : sequences of float
        WGS-84 position of each incident.
    at : sequence of datetime
        When each was reported (timezone-aware).
    categories : sequence of str
        Category code of each.
    tz : ZoneInfo or str
        Time zone of the shifts.

    Returns
    -------
    list of WorkerChoice
        One per incident, in order.
    """
    n = len(grids)
    if n == 0:
        return []
    batch = _Batch(minutes_of_week(at, tz), np.asarray(categories, dtype=object), n, view)
    batch.pending &= np.array([g is not None for g in grids])
    places = communities_and_streets(chains)
    by_grid = _group(grids)
    batch.by_duties(by_grid, view, "primary", lambda d: d.kind == "primary")
    batch.by_duties(by_grid, view, "backup", lambda d: d.kind == "backup")
    batch.by_duties(_group([p[0] for p in places]), view, "community_manager",
                    lambda d: d.role == "manager")
    for i in (int(k) for k in np.flatnonzero(batch.pending)):
        grid = grids[i]
        assert grid is not None
        community, street = places[i]
        near = None
        if street is not None:
            near = _nearest(view.street_workers.get(street, ()), float(lon[i]), float(lat[i]),
                            int(batch.mow[i]), categories[i])
        if near is not None:
            worker, distance = near
            batch.found[i] = WorkerChoice(worker.worker_id, worker.worker_code,
                                          worker.worker_name, "street_nearest",
                                          distance_m=round(distance, 3))
        else:
            level = next((link[2] for link in chains[i] if link[0] == community), "community")
            batch.found[i] = WorkerChoice(None, None, None, "none",
                                          reason=_reason(view, grid, community, street, level))
    return [c if c is not None else
            WorkerChoice(None, None, None, "none", reason="the incident is outside every grid")
            for c in batch.found]
