"""What a plan changes: figures per grid before and after, workload balance (pure).

- **Areas** in m² and **Polsby-Popper** compactness ``4πA/P²`` (1 for a disc)
  measured in the local equal-area projection of :class:`geo.topology.AreaMeter`.
- **Population and households** after the plan are interpolated by area from
  the grids they came from (a grid that takes 30 % of another's area takes
  30 % of its people); None where a source grid has no figure.
- **Incidents**: incidents over the look-back window counted by the polygon
  that covers them (before: the current polygons; after: the plan's), a point
  on a shared edge going to the smallest code; **open incidents that move** are
  the open ones whose covering grid changes.
- **Workload** of a grid (the ``workload`` measure): ``incidents`` over the
  look-back, ``households``, or ``mix`` = ``w`` × its share of the parent's
  incidents + (1 − ``w``) × its share of the households. The **balance** of
  the parent is the coefficient of variation (population standard deviation
  over the mean) of the workload of its children.
- **Roster**: a retired grid's duties go to the grid that inherits the largest
  part of its area (the shares are reported for the planner to confirm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo import topology
from geo.errors import InvalidInput
from geo.plans.edits import Draft, PlanState

MEASURES = ("incidents", "households", "mix")


@dataclass(frozen=True)
class Workload:
    """How to weigh a grid: ``measure`` and, for ``mix``, the weight of incidents."""

    measure: str = "incidents"
    weight: float = 0.5

    def check(self) -> Workload:
        """Self, or InvalidInput naming the field."""
        if self.measure not in MEASURES:
            raise InvalidInput(f"workload {self.measure!r} is not a measure", field="workload",
                               value=self.measure, valid=", ".join(MEASURES))
        if not (isinstance(self.weight, int | float) and 0 <= self.weight <= 1):
            raise InvalidInput(f"weight {self.weight!r} is out of range", field="weight",
                               value=self.weight, valid="a number from 0 to 1 (the share of "
                               "incidents in the mix)")
        return self


def assign_points(items: Sequence[tuple[str, BaseGeometry]], lon: np.ndarray,
                  lat: np.ndarray) -> np.ndarray:
    """The code covering each point (smallest code on a shared edge), None outside all."""
    out = np.full(len(lon), None, dtype=object)
    for code, geom in sorted(items, key=lambda item: item[0]):
        todo = np.flatnonzero(out == None)  # noqa: E711 (elementwise)
        if not len(todo):
            break
        shapely.prepare(geom)
        hit = shapely.intersects_xy(geom, lon[todo], lat[todo])
        out[todo[hit]] = code
    return out


def polsby_popper(meter: topology.AreaMeter, geom: BaseGeometry) -> float | None:
    """``4πA/P²`` of ``geom`` in the equal-area projection (None when empty)."""
    if geom is None or geom.is_empty:
        return None
    projected = meter.project(geom)
    perimeter = float(projected.length)
    return None if perimeter == 0 else round(4 * math.pi * float(projected.area)
                                             / perimeter ** 2, 4)


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (population std / mean), None without values or a zero mean."""
    arr = np.asarray(list(values), dtype=float)
    if not len(arr) or arr.mean() == 0:
        return None
    return round(float(arr.std() / arr.mean()), 4)


def interpolate(state: PlanState, meter: topology.AreaMeter) -> dict[str, tuple[int | None,
                                                                                 int | None]]:
    """``code -> (population, households)`` after the plan, by area from the source grids."""
    touched = set(state.touched())
    sources = [d for c, d in state.before.items() if c in touched]
    src_area = {d.code: meter.area(d.geom) for d in sources}
    out: dict[str, tuple[int | None, int | None]] = {}
    for code, draft in state.after.items():
        if code not in touched:
            out[code] = (draft.population, draft.households)
            continue
        figures: list[float | None] = [0.0, 0.0]
        for src in sources:
            if not shapely.intersects(src.geom, draft.geom) or src_area[src.code] <= 0:
                continue
            share = meter.area(shapely.intersection(src.geom, draft.solid())) / src_area[
                src.code]
            if share <= 1e-9:
                continue
            for k, value in enumerate((src.population, src.households)):
                acc = figures[k]
                figures[k] = None if value is None or acc is None else acc + share * value
        out[code] = (None if figures[0] is None else round(figures[0]),
                     None if figures[1] is None else round(figures[1]))
    return out


def inheritance(state: PlanState, meter: topology.AreaMeter) -> dict[str, list[tuple[str,
                                                                                     float]]]:
    """For each retired grid, the grids after the plan that cover its area, largest share first."""
    out: dict[str, list[tuple[str, float]]] = {}
    for code in sorted(state.retired):
        old = state.before.get(code)
        if old is None:
            continue
        total = meter.area(old.geom)
        shares = []
        for other, draft in sorted(state.after.items()):
            if total > 0 and shapely.intersects(old.geom, draft.geom):
                share = meter.area(shapely.intersection(old.geom, draft.solid())) / total
                if share > 1e-6:
                    shares.append((other, round(share, 4)))
        out[code] = sorted(shares, key=lambda s: -s[1])
    return out


def workloads(measure: Workload, incidents: Mapping[str, int],
              households: Mapping[str, int | None]) -> dict[str, float]:
    """The workload of each grid of ``incidents`` (keys) under ``measure``."""
    codes = sorted(incidents)
    inc = {c: float(incidents[c]) for c in codes}
    hh = {c: float(households.get(c) or 0) for c in codes}
    if measure.measure == "incidents":
        return inc
    if measure.measure == "households":
        return hh
    ti, th = sum(inc.values()) or 1.0, sum(hh.values()) or 1.0
    w = measure.weight
    return {c: round(len(codes) * (w * inc[c] / ti + (1 - w) * hh[c] / th), 6) for c in codes}


@dataclass
class Side:
    """Figures of one side (before or after) of the plan, per grid."""

    grids: dict[str, Draft]
    people: dict[str, tuple[int | None, int | None]]
    cover: np.ndarray  # code covering each incident point

    def counts(self, mask: np.ndarray) -> dict[str, int]:
        """Incidents (of ``mask``) per grid of this side."""
        out = {c: 0 for c in self.grids}
        for code in self.cover[mask]:
            if code in out:
                out[code] += 1
        return out


def _snapped(before: Side, after: Side, grid_codes: Sequence[str | None],
             heirs: Mapping[str, list[tuple[str, float]]], state: PlanState) -> None:
    """An incident snapped onto a plan's grid from outside it (no grid covers it, before or
    after) is on its stored grid before, and after where the apply puts it: that grid, or
    its heir when the plan retires it (one a shrunk grid leaves outside every grid: see
    :func:`_kept_on_grid`)."""
    if not len(grid_codes):
        return
    for k in np.flatnonzero((before.cover == None) & (after.cover == None)):  # noqa: E711
        old = grid_codes[int(k)]
        if old in state.before:
            before.cover[k] = old
            after.cover[k] = heirs[old][0][0] if heirs.get(old) else (
                old if old in state.after else None)


def _kept_on_grid(before: Side, after: Side, grid_codes: Sequence[str | None],
                  heirs: Mapping[str, list[tuple[str, float]]]) -> np.ndarray:
    """Points a grid covers before and none after (a grid shrunk, leaving them outside every
    grid): after, they are where the apply keeps them, on their grid or its heir when it is
    retired, not nowhere. Returns which points they are (the preview counts the open ones)."""
    left = (before.cover != None) & (after.cover == None)  # noqa: E711
    for k in np.flatnonzero(left):
        stored = grid_codes[int(k)] if len(grid_codes) else None
        after.cover[k] = heir_or_self(str(stored or before.cover[k]), heirs)
    return np.asarray(left, dtype=bool)


def heir_or_self(code: str, heirs: Mapping[str, list[tuple[str, float]]]) -> str:
    """Where the apply puts an open incident of grid ``code`` that no new polygon covers: the
    grid inheriting the largest share of ``code`` when the plan retires it, else ``code``."""
    return heirs[code][0][0] if heirs.get(code) else code


def _grid_figures(side: Side, code: str, meter: topology.AreaMeter, recent: Mapping[str, int],
                  open_in: Mapping[str, int], workers: Sequence[tuple[int, str, str]],
                  workload: Mapping[str, float]) -> dict[str, Any] | None:
    draft = side.grids.get(code)
    if draft is None:
        return None
    population, households = side.people.get(code, (None, None))
    return {"version": draft.version, "name": draft.name,
            "area_m2": round(meter.area(draft.geom), 1), "population": population,
            "households": households, "incidents": recent.get(code, 0),
            "open_incidents": open_in.get(code, 0), "workload": workload.get(code),
            "polsby_popper": polsby_popper(meter, draft.geom),
            "workers": [{"id": w[0], "code": w[1], "name": w[2]} for w in workers]}


def compare(state: PlanState, parent_geom: BaseGeometry, *, lon: np.ndarray, lat: np.ndarray,
            recent: np.ndarray, is_open: np.ndarray, ids: np.ndarray,
            workers_before: Mapping[str, Sequence[tuple[int, str, str]]],
            measure: Workload, grid_codes: Sequence[str | None] = (),
            duties: Sequence[Mapping[str, Any]] = (),
            retired_versions: Mapping[str, int] | None = None,
            teams: Mapping[str, Sequence[str]] | None = None,
            routes: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The impact report of ``state`` (see the module docstring and the README).

    ``duties`` (``grid_code, kind, code, name`` of every duty on the retired grids and the
    grids inheriting them) become each ``roster`` entry's ``duties``, as the apply will move
    them (:func:`roster_report`). ``retired_versions``: the last version of each
    created code that had grids before (it comes back as the next one); ``after.version`` is
    the version the apply writes.

    ``grid_codes`` (each point's stored grid, when given) places a point no grid covers but
    stored on one of the plan's grids (snapped onto it from outside) on that grid before,
    and after on the same grid or, retired, its heir: as the apply does."""
    meter = topology.AreaMeter.for_geometries([parent_geom])
    before = Side(dict(state.before), {c: (d.population, d.households)
                                       for c, d in state.before.items()},
                  assign_points([(c, d.geom) for c, d in state.before.items()], lon, lat))
    after = Side(dict(state.after), interpolate(state, meter),
                 assign_points([(c, d.geom) for c, d in state.after.items()], lon, lat))
    heirs = inheritance(state, meter)
    _snapped(before, after, grid_codes, heirs, state)
    left_outside = _kept_on_grid(before, after, grid_codes, heirs)
    workers_after: dict[str, list[tuple[int, str, str]]] = {
        c: list(workers_before.get(c, ())) for c in state.after}
    for old, shares in heirs.items():
        if shares:  # a worker already on the heir stays there once, as the apply keeps one duty
            heir = workers_after[shares[0][0]]
            heir.extend(w for w in workers_before.get(old, ()) if w not in heir)
    rec_b, rec_a = before.counts(recent), after.counts(recent)
    open_b, open_a = before.counts(is_open), after.counts(is_open)
    load_b = workloads(measure, rec_b, {c: p[1] for c, p in before.people.items()})
    load_a = workloads(measure, rec_a, {c: p[1] for c, p in after.people.items()})
    moving = is_open & (before.cover != after.cover) & (before.cover != None)  # noqa: E711
    touched = state.touched()
    grids = []
    for code in touched:
        b = _grid_figures(before, code, meter, rec_b, open_b, workers_before.get(code, ()),
                          load_b)
        a = _grid_figures(after, code, meter, rec_a, open_a, workers_after.get(code, ()), load_a)
        if a is not None:  # the apply writes the next version (the draft holds its base)
            a["version"] = (b["version"] if b is not None and b["version"] is not None
                            else (retired_versions or {}).get(code, 0)) + 1
        status = "retired" if a is None else "created" if b is None else "changed"
        out_of = int((moving & (before.cover == code)).sum())
        grids.append({"code": code, "status": status, "before": b, "after": a,
                      "open_moving_out": out_of, "successor": state.retired.get(code),
                      "inherited_by": [{"code": c, "share": s} for c, s in heirs.get(code, [])]})
    pairs: dict[tuple[str, str | None], int] = {}
    for f, t in zip(before.cover[moving], after.cover[moving], strict=True):
        key = (str(f), None if t is None else str(t))  # None: outside every grid after it
        pairs[key] = pairs.get(key, 0) + 1
    return {
        "grids": grids,
        "moves": {"open_incidents": int(moving.sum()),
                  "pairs": [{"from": f, "to": t, "count": n}
                            for (f, t), n in sorted(pairs.items(),
                                                    key=lambda p: (p[0][0], p[0][1] or ""))],
                  "incident_ids": [int(i) for i in ids[moving][:500]],
                  "left_outside": int((left_outside & is_open).sum())},
        "workers": _worker_loads(workers_before, workers_after, load_b, load_a),
        "roster": roster_report(heirs, duties, teams=teams, routes=routes),
        "balance": {"measure": measure.measure, "weight": measure.weight,
                    "grids_before": len(state.before), "grids_after": len(state.after),
                    "cv_before": cv(list(load_b.values())), "cv_after": cv(list(load_a.values())),
                    "incidents_before": int(sum(rec_b.values())),
                    "incidents_after": int(sum(rec_a.values())),
                    "polsby_popper_mean_before": _mean(
                        polsby_popper(meter, d.geom) for d in state.before.values()),
                    "polsby_popper_mean_after": _mean(
                        polsby_popper(meter, d.geom) for d in state.after.values()),
                    "workload_before": load_b, "workload_after": load_a},
    }


def _mean(values: Any) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def _worker_loads(before: Mapping[str, Sequence[tuple[int, str, str]]],
                  after: Mapping[str, Sequence[tuple[int, str, str]]],
                  load_b: Mapping[str, float], load_a: Mapping[str, float]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}
    for side, grids, loads in (("before", before, load_b), ("after", after, load_a)):
        for code, workers in grids.items():
            for wid, wcode, name in workers:
                row = people.setdefault(wcode, {"id": wid, "code": wcode, "name": name,
                                                "grids_before": [], "grids_after": [],
                                                "workload_before": 0.0, "workload_after": 0.0})
                row[f"grids_{side}"].append(code)
                row[f"workload_{side}"] = round(row[f"workload_{side}"]
                                                + float(loads.get(code, 0.0)), 6)
    return sorted(people.values(), key=lambda r: r["code"])


#: The note on a duty of a retired grid that no grid inherits.
NO_HEIR = "no grid inherits the area: the duty stays on the retired grid"


def roster_report(heirs: Mapping[str, Sequence[tuple[str, float]]],
                  duties: Sequence[Mapping[str, Any]],
                  move: Callable[[Mapping[str, Any], str], bool] | None = None,
                  teams: Mapping[str, Sequence[str]] | None = None,
                  routes: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """Where the duties of each retired grid go: to the grid inheriting the largest share
    of it, or nowhere (they stay, :data:`NO_HEIR`) when none does.

    ``duties`` (``grid_code, kind, code, name`` and, for ``move``, ``id``) holds the duties
    on the retired grids and, for the preview, on the grids inheriting them. ``move(duty,
    target)`` (the apply) moves one and says whether it went; False means the worker already
    had that kind of duty there (the duty is dropped, noted). Without it (the preview) that
    is read from ``duties``. ``teams`` and ``routes`` (retired code -> team or route codes)
    go with the duties: ``teams`` and ``routes`` of each entry (the apply moves them too).
    One entry per retired grid, in ``heirs``' order.
    """
    report = []
    for old, shares in heirs.items():
        target = shares[0][0] if shares else None
        held = {(d["code"], d["kind"]) for d in duties if d["grid_code"] == target}
        moved = []
        for d in (d for d in duties if d["grid_code"] == old):
            note = None
            if target is None:
                note = NO_HEIR
            elif move is not None and not move(d, target):
                note = f"{d['code']} already had a {d['kind']} duty on {target}"
            elif move is None and (d["code"], d["kind"]) in held:
                note = f"{d['code']} already has a {d['kind']} duty on {target}"
            moved.append({"worker": d["code"], "name": d["name"], "kind": d["kind"],
                          "to": target, "note": note})
        report.append({"grid": old, "to": target,
                       "shares": [{"code": c, "share": s} for c, s in shares],
                       "workers": sorted({d["worker"] for d in moved}), "duties": moved,
                       "teams": list((teams or {}).get(old, ())),
                       "routes": list((routes or {}).get(old, ()))})
    return report
