"""Plan validation places every blocking problem on the map (pure, no database)."""

from __future__ import annotations

from shapely.geometry import Polygon, box

from geo.plans.edits import Draft, PlanState, apply_edit
from geo.plans.validate import validate

PARENT = box(120.0, 30.0, 120.02, 30.02)


def _state() -> PlanState:
    return PlanState.start("C1", [
        Draft("G1", "一", "grid", "C1", box(120.0, 30.0, 120.01, 30.02), version=1),
        Draft("G2", "二", "grid", "C1", box(120.01, 30.0, 120.02, 30.02), version=1)])


def test_an_invalid_polygon_is_placed_where_geos_finds_it() -> None:
    state = _state()
    bowtie = Polygon([(120.0, 30.0), (120.01, 30.02), (120.01, 30.0), (120.0, 30.02)])
    state.after["G1"] = Draft("G1", "一", "grid", "C1", bowtie, version=1)
    [bad] = [p for p in validate(state, PARENT, 1.0).problems if p.kind == "invalid_geometry"]
    out = bad.to_dict()
    assert out["point"] == [120.005, 30.01] and out["blocking"] is True
    assert out["geometry"]["type"] == "Polygon"


def test_orphans_name_where_the_children_are() -> None:
    state = _state()
    apply_edit(state, "retire", {"code": "G2", "successor": "G1"}, taken={"G1", "G2"})
    kids = {"G2": [("G2-1", box(120.012, 30.002, 120.014, 30.004)),
                   ("G2-2", box(120.016, 30.002, 120.018, 30.004))]}
    [orphans] = [p for p in validate(state, PARENT, 1.0, grandchildren=kids).problems
                 if p.kind == "orphans"]
    assert orphans.codes == ["G2", "G2-1", "G2-2"]
    assert orphans.area_m2 is not None and 84_000 < orphans.area_m2 < 87_000
    assert orphans.point is not None and 120.012 < orphans.point[0] < 120.018
    assert orphans.geometry is not None and orphans.geometry.geom_type == "MultiPolygon"
