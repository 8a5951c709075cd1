"""Validation of a plan's result with the import's checks (pure, :mod:`geo.topology`).

The checks and the tolerance are those of ``patrolgrid grids import``: every
area is measured in m² in the local equal-area projection of
:class:`geo.topology.AreaMeter`, and findings up to ``tolerance_m2``
(``PATROLGRID_TOPOLOGY_TOLERANCE_M2``, 1 m² by default) are ignored.

Blocking problems (apply is refused while there is one):

- ``invalid_geometry``: a changed or new grid whose polygon is empty, not
  polygonal or not OGC-valid (self-intersection, ...);
- ``overlap``: a changed or new grid overlapping a sibling (changed or not);
- ``gap``: part of the parent that was covered by its children before the plan
  and is covered by none after it (gaps that were there already are listed as
  ``existing_gap``, not blocking);
- ``outside_parent``: a changed or new grid reaching outside the parent;
- ``orphans`` / ``child_outside``: a retired grid that still has children, or
  a grandchild that would stick out of its changed grid.

Warnings (not blocking):

- ``existing_gap``: see ``gap``;
- ``not_contiguous``: a changed or new grid made of separate pieces (a merge or a
  retirement into a grid it does not touch, cells moved to a distant grid): a
  grid worker would have to cross other grids to walk it; each piece but the
  largest is named with its area.

Every problem names the grids (``codes``), the area in m², a point inside it
(lon, lat) and carries the area's geometry so that a map can draw it; an
``invalid_geometry`` has the place GEOS names as its point and the polygon as
drawn (no area), ``orphans`` the children left behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo import topology
from geo.plans.edits import PlanState

#: Every kind of problem the validation reports (the planner page names each one).
PROBLEM_KINDS = ("invalid_geometry", "overlap", "gap", "existing_gap", "outside_parent",
                 "orphans", "child_outside", "not_contiguous")


@dataclass
class Problem:
    """One finding of the validation (``kind`` one of :data:`PROBLEM_KINDS`)."""

    kind: str
    codes: list[str]
    message: str
    area_m2: float | None = None
    point: tuple[float, float] | None = None
    geometry: BaseGeometry | None = None
    blocking: bool = True

    def __post_init__(self) -> None:
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}: add it to PROBLEM_KINDS")

    def to_dict(self, geometry: bool = True) -> dict[str, Any]:
        """JSON-ready (area to 0.01 m², point to 1e-6°, geometry as GeoJSON)."""
        out: dict[str, Any] = {"kind": self.kind, "codes": self.codes, "message": self.message,
                               "blocking": self.blocking,
                               "area_m2": None if self.area_m2 is None else round(self.area_m2, 2),
                               "point": None if self.point is None else
                               [round(self.point[0], 6), round(self.point[1], 6)]}
        if geometry:
            out["geometry"] = None if self.geometry is None else geojson(self.geometry)
        return out


@dataclass
class Validation:
    """Every problem of a plan's result and the tolerance used."""

    tolerance_m2: float
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether apply would accept the result."""
        return not any(p.blocking for p in self.problems)

    def to_dict(self, geometry: bool = True) -> dict[str, Any]:
        """The validation report as JSON."""
        return {"ok": self.ok, "tolerance_m2": self.tolerance_m2,
                "blocking": sum(p.blocking for p in self.problems),
                "problems": [p.to_dict(geometry) for p in self.problems]}


def geojson(geom: BaseGeometry, digits: int = 8) -> dict[str, Any]:
    """``geom`` as a GeoJSON dict, coordinates rounded to ``digits`` decimals (1e-8° ~ 1 mm);
    rounds vertex by vertex, so an invalid geometry is shown as it is."""
    return dict(mapping(shapely.transform(geom, lambda xy: np.round(xy, digits))))


def _point(geom: BaseGeometry) -> tuple[float, float]:
    p = geom.representative_point()
    return (float(p.x), float(p.y))


_AT = re.compile(r"\[(-?[0-9.eE+-]+) (-?[0-9.eE+-]+)")


def _where(reason: str, geom: BaseGeometry | None) -> tuple[float, float] | None:
    """Where ``geom`` is invalid: the place GEOS names in ``reason`` (a self-intersection,
    a ring crossing), else a point of its outline; None without a geometry."""
    found = _AT.search(reason)
    if found:
        return (float(found.group(1)), float(found.group(2)))
    if geom is None:
        return None
    first = shapely.get_coordinates(geom)[:1]
    return (float(first[0, 0]), float(first[0, 1])) if len(first) else None


def _parts(geom: BaseGeometry, meter: topology.AreaMeter,
           tol: float) -> list[tuple[BaseGeometry, float]]:
    parts = list(topology.polygonal(geom).geoms)
    return [(g, float(a)) for g, a in zip(parts, meter.areas(parts), strict=True) if a > tol]


def _union(geoms: Sequence[BaseGeometry]) -> BaseGeometry:
    return shapely.union_all([g for g in geoms if g is not None and not g.is_empty])


def _who_had(area: BaseGeometry, before: Mapping[str, BaseGeometry]) -> list[str]:
    return sorted(c for c, g in before.items()
                  if shapely.intersects(g, area) and
                  shapely.area(shapely.intersection(g, area)) > 0)


def validate(state: PlanState, parent_geom: BaseGeometry, tolerance_m2: float, *,
             grandchildren: Mapping[str, Sequence[tuple[str, BaseGeometry]]] | None = None
             ) -> Validation:
    """Check the result of ``state`` under the parent polygon (see the module docstring).

    Parameters
    ----------
    state : PlanState
        The plan after its edits.
    parent_geom : BaseGeometry
        The parent's current polygon (WGS-84).
    tolerance_m2 : float
        Findings up to this area are ignored.
    grandchildren : mapping, optional
        Current children ``(code, geometry)`` of each touched grid.
    """
    tol = tolerance_m2
    meter = topology.AreaMeter.for_geometries([parent_geom])
    out = Validation(tolerance_m2=tol)
    touched = [c for c in state.touched() if c in state.after]
    invalid = {c: r for c in touched if (r := topology.invalid_reason(state.after[c].geom))}
    for code, reason in sorted(invalid.items()):
        geom = state.after[code].geom
        shown = None if geom is None or geom.is_empty else geom
        out.problems.append(Problem("invalid_geometry", [code], f"grid {code!r}: {reason}",
                                    point=_where(reason, shown), geometry=shown))
    mine = [(c, state.after[c].geom) for c in touched if c not in invalid]
    fixed = [(c, d.geom) for c, d in sorted(state.after.items()) if c not in touched]
    geom_of = dict(mine + fixed)
    for ov in topology.find_overlaps(mine, meter, tol, fixed=fixed):
        shared = topology.polygonal(shapely.intersection(geom_of[ov.a], geom_of[ov.b]))
        out.problems.append(Problem(
            "overlap", sorted([ov.a, ov.b]), f"grids {ov.a} and {ov.b} overlap by "
            f"{ov.area_m2:.1f} m²",
            ov.area_m2, ov.point, shared))
    before = {c: d.geom for c, d in state.before.items()}
    valid_after = [g for g in geom_of.values()]
    gap_after = shapely.difference(parent_geom, _union(valid_after))
    gap_before = shapely.difference(parent_geom, _union(list(before.values())))
    for part, area in _parts(shapely.difference(gap_after, gap_before), meter, tol):
        had = _who_had(part, before)
        out.problems.append(Problem(
            "gap", had, f"{area:.1f} m² of {state.parent} that {', '.join(had) or 'a grid'} "
            "covered is covered by no grid after the plan", area, _point(part), part))
    for part, area in _parts(shapely.intersection(gap_after, gap_before), meter, tol):
        out.problems.append(Problem(
            "existing_gap", [], f"{area:.1f} m² of {state.parent} was covered by no grid "
            "before the plan either", area, _point(part), part, blocking=False))
    for code, geom in mine:
        for part, area in _parts(shapely.difference(geom, parent_geom), meter, tol):
            out.problems.append(Problem(
                "outside_parent", [code], f"grid {code} reaches {area:.1f} m² outside its "
                f"parent {state.parent}", area, _point(part), part))
    for code, geom in mine:
        pieces = sorted(_parts(geom, meter, tol), key=lambda pa: -pa[1])
        for part, area in pieces[1:]:
            out.problems.append(Problem(
                "not_contiguous", [code], f"grid {code} is in {len(pieces)} separate pieces; "
                f"this one of {area:.1f} m² does not touch the largest", area, _point(part),
                part, blocking=False))
    _check_grandchildren(state, grandchildren or {}, geom_of, meter, tol, out)
    return out


def _check_grandchildren(state: PlanState,
                         grandchildren: Mapping[str, Sequence[tuple[str, BaseGeometry]]],
                         geom_of: Mapping[str, BaseGeometry], meter: topology.AreaMeter,
                         tol: float, out: Validation) -> None:
    for code, kids in sorted(grandchildren.items()):
        if not kids:
            continue
        if code in state.retired:
            names = sorted(k for k, _ in kids)
            left = _union([g for _, g in kids])
            out.problems.append(Problem(
                "orphans", [code, *names], f"grid {code} retires but still has children: "
                f"{', '.join(names[:10])}; retire or re-import them first",
                float(meter.areas([left])[0]), _point(left), left))
            continue
        if code not in geom_of:
            continue
        for kid, geom in kids:
            for part, area in _parts(shapely.difference(geom, geom_of[code]), meter, tol):
                out.problems.append(Problem(
                    "child_outside", [code, kid], f"child {kid} would reach {area:.1f} m² "
                    f"outside grid {code}", area, _point(part), part))
