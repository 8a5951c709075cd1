"""``POST /plans/suggest``: a balanced partition of a parent returned as a draft plan.

The partition (:mod:`geo.plans.suggest`) becomes ordinary edits of a plan of
kind ``suggested``: each region is matched to the current grid it overlaps
most (an optimal one-to-one matching on shared area, so codes, duties and
history follow the area they mostly keep) and ``replace``\\ s its geometry;
regions left over are ``create``\\ d with new codes ``<parent>-S<n>``; current
grids left over ``retire`` (their duties go to the grid taking most of their
area). The answer is the plan with its validation and its impact preview,
whose ``balance`` has ``cv_before`` and ``cv_after``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment
from shapely.geometry import mapping
from sqlalchemy.orm import Session

from geo import topology
from geo.errors import InvalidInput
from geo.plans import service, suggest
from geo.plans.impact import Workload
from geo.settings import Settings
from geo.store import plans as store

#: The largest seed (numpy's generators take 0 and up; 64 bits is plenty).
SEED_MAX = 2**63 - 1


def _match(current: list[Any], shapes: list[Any], meter: topology.AreaMeter
           ) -> dict[int, str]:
    """Region index -> the code of the current grid it takes over (max total shared area)."""
    if not current:
        return {}
    shared = np.zeros((len(shapes), len(current)))
    for i, geom in enumerate(shapes):
        for j, draft in enumerate(current):
            if shapely.intersects(geom, draft.geom):
                shared[i, j] = meter.area(shapely.intersection(geom, draft.geom))
    rows, cols = linear_sum_assignment(-shared)
    return {int(i): current[int(j)].code for i, j in zip(rows, cols, strict=True)}


def _new_codes(parent: str, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    i = 1
    while len(out) < n:
        code = f"{parent}-S{i}"[:64]
        if code not in taken:
            out.append(code)
        i += 1
    return out


def suggest_plan(session: Session, *, parent: str, k: int, measure: Workload,
                 lookback_days: float, settings: Settings, user_id: int | None,
                 resolution: int | None = None, seed: int = 0, name: str | None = None,
                 compactness: float = suggest.COMPACTNESS,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """Draft a balanced plan for ``parent`` (see the module docstring); plan and impact."""
    measure.check()
    if not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k {k!r} is not a number of grids", field="k", value=k,
                           valid="an integer >= 1")
    parent_grid = store.current_grid(session, parent)
    current = store.current_children(session, parent)
    meter = topology.AreaMeter.for_geometries([parent_grid.geom])
    res = resolution or suggest.choose_resolution(meter.area(parent_grid.geom), k)
    cells = suggest.cells_of(parent_grid.geom, res, meter)
    now = now or dt.datetime.now(dt.UTC)
    points = store.incidents_near(session, parent_grid.geom,
                                  since=now - dt.timedelta(days=lookback_days))
    inside = points.recent & shapely.intersects_xy(parent_grid.geom, points.lon, points.lat)
    weights = suggest.cell_weights(
        cells, lon=points.lon[inside], lat=points.lat[inside],
        grids={d.code: (d.geom, d.households) for d in current}, measure=measure.measure,
        weight=measure.weight, meter=meter)
    if not (isinstance(compactness, int | float) and 0 <= compactness <= 100):
        raise InvalidInput(f"compactness {compactness!r} is out of range", field="compactness",
                           value=compactness, valid="a number from 0 (balance only) to 100")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidInput(f"seed {seed!r} is out of range", field="seed", value=seed,
                           valid=f"a whole number from 0 to {SEED_MAX}")
    label = suggest.partition(cells, weights, k, seed=seed, compactness=compactness)
    shapes = suggest.regions(cells, label, k, meter)
    matched = _match(current, shapes, meter)
    fresh = iter(_new_codes(parent, k - len(matched), store.all_codes(session)))
    plan = service.create_plan(session, name=name or f"balanced {parent} into {k} "
                               f"({measure.measure})", parent=parent, user_id=user_id,
                               kind="suggested", attrs={"k": k, "workload": measure.measure,
                                                        "weight": measure.weight,
                                                        "resolution": res, "seed": seed,
                                                        "compactness": compactness,
                                                        "cells": len(cells)})
    for i, geom in enumerate(shapes):
        if i in matched:
            payload: dict[str, Any] = {"code": matched[i], "geometry": dict(mapping(geom)),
                                       "take_from_neighbours": False}
            service.add_edit(session, plan.id, op="replace", payload=payload, user_id=user_id)
        else:
            code = next(fresh)
            service.add_edit(session, plan.id, op="create", user_id=user_id, payload={
                "code": code, "name": f"{parent_grid.name} {code}", "geometry": dict(mapping(geom)),
                "take_from_neighbours": False})
    for draft in current:
        if draft.code not in matched.values():
            service.add_edit(session, plan.id, op="retire", payload={"code": draft.code},
                             user_id=user_id)
    rep = service.replay(session, plan.id)
    validation = service.check(session, rep, settings.topology_tolerance_m2)
    return {"plan": service.plan_dict(rep, validation),
            "impact": service.impact(session, rep, lookback_days=lookback_days,
                                     measure=measure, now=now)}
