"""The edits of a grid plan, applied to the children of one parent (pure, no database).

A plan starts from the current children of its parent (:class:`Draft` per
code) and applies its edits in order. Geometries are WGS-84 lon/lat, as
GeoJSON gives them. Each edit checks its own input (:func:`check_edit`) and
raises :class:`~geo.errors.InvalidInput` naming the field, the value and what
is valid; the *result* is checked as a whole by :mod:`geo.plans.validate`.

Edits (``op`` and its payload):

- ``replace`` ``{code, geometry, take_from_neighbours=true}``: the grid gets the
  new polygon; with ``take_from_neighbours`` its siblings lose what it now covers.
- ``split`` ``{code, line, new_code, new_name?}``: a line drawn across the grid
  (from outside its edge to outside its edge) cuts one of its polygons in two;
  the larger part keeps ``code``, the smaller becomes the new grid ``new_code``.
- ``merge`` ``{codes, into, name?}``: the grids become one, ``into`` (one of
  ``codes``); the others retire and ``into`` inherits their area.
- ``move_cells`` ``{from, to, cells}``: the area of the H3 cells (any resolution)
  inside ``from`` moves to ``to``.
- ``create`` ``{code, name, geometry, level?, take_from_neighbours=true}``: a new
  grid under the plan's parent.
- ``retire`` ``{code, successor?}``: the grid closes; with ``successor`` that
  grid takes its area (otherwise its siblings must already cover it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import h3
import shapely
import shapely.errors
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import split as split_by

from geo.crs import finite_coordinates
from geo.errors import InvalidInput
from geo.topology import polygonal

OPS = ("replace", "split", "merge", "move_cells", "create", "retire")
CODE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
CODE_VALID = "1-64 letters, digits, '_', '.' or '-'"
_KEYS: dict[str, tuple[set[str], set[str]]] = {  # op -> (required, optional)
    "replace": ({"code", "geometry"}, {"take_from_neighbours"}),
    "split": ({"code", "line", "new_code"}, {"new_name"}),
    "merge": ({"codes", "into"}, {"name"}),
    "move_cells": ({"from", "to", "cells"}, set()),
    "create": ({"code", "name", "geometry"}, {"level", "take_from_neighbours"}),
    "retire": ({"code"}, {"successor"}),
}


@dataclass(frozen=True)
class Draft:
    """A grid as the plan sees it: ``version`` None for a grid the plan creates."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geom: BaseGeometry
    population: int | None = None
    households: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    version: int | None = None

    def solid(self) -> BaseGeometry:
        """The polygon, made valid when an edit left it invalid (a bow-tie is kept as drawn,
        for validation to report; set operations on it would fail in GEOS)."""
        return self.geom if shapely.is_valid(self.geom) else polygonal(
            shapely.make_valid(self.geom))


@dataclass
class PlanState:
    """Before and after: the parent's children now, and after the edits so far."""

    parent: str
    before: dict[str, Draft]
    after: dict[str, Draft]
    retired: dict[str, str | None] = field(default_factory=dict)  # code -> successor

    @classmethod
    def start(cls, parent: str, children: Sequence[Draft]) -> PlanState:
        """The state before any edit."""
        by_code = {d.code: d for d in children}
        return cls(parent=parent, before=by_code, after=dict(by_code))

    def touched(self) -> list[str]:
        """Codes whose grid changes, is created or retires, sorted."""
        out = set(self.retired)
        for code, draft in self.after.items():
            old = self.before.get(code)
            if old is None or draft is not old:
                out.add(code)
        return sorted(out)


def _field(op: str, name: str) -> str:
    return f"{op}.{name}"


def _code(payload: Mapping[str, Any], op: str, key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise InvalidInput(f"{key} {value!r} is not a grid code", field=_field(op, key),
                           value=value, valid=CODE_VALID)
    return value


def _existing(state: PlanState, payload: Mapping[str, Any], op: str, key: str) -> str:
    code = _code(payload, op, key)
    if code not in state.after:
        valid = ", ".join(sorted(state.after)) or "(none)"
        gone = " (it retires earlier in this plan)" if code in state.retired else ""
        raise InvalidInput(f"{key} {code!r} is not a grid under {state.parent}{gone}",
                           field=_field(op, key), value=code,
                           valid=f"the code of a current child of {state.parent}: {valid}")
    return code


def _fresh(state: PlanState, payload: Mapping[str, Any], op: str, key: str,
           taken: set[str]) -> str:
    code = _code(payload, op, key)
    if code in state.after or code in state.retired or code in taken:
        raise InvalidInput(f"{key} {code!r} is already a grid code", field=_field(op, key),
                           value=code, valid="a code no grid has (now or in history)")
    return code


def geometry_of(value: Any, fld: str, kinds: tuple[str, ...]) -> BaseGeometry:
    """A shapely geometry from GeoJSON ``value`` of one of ``kinds``, or InvalidInput."""
    valid = f"a GeoJSON {' or '.join(kinds)} in WGS-84 (lon, lat)"
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{fld} is not a GeoJSON geometry", field=fld,
                           value=str(value)[:80], valid=valid)
    if not finite_coordinates(value.get("coordinates")):
        raise InvalidInput(f"{fld} has a coordinate that is not a number", field=fld,
                           value=str(value)[:80], valid=valid)
    ring = open_ring(value)
    if ring is not None:
        where, first, last = ring
        raise InvalidInput(f"{fld} has a ring that is not closed ({where} ends at {last}, "
                           f"not at its first position {first})", field=fld, value=where,
                           valid=f"{valid} whose every ring ends at its first position")
    try:
        geom = shapely.force_2d(shape(dict(value)))  # a Z (from a GPS survey) is dropped
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
            shapely.errors.GEOSException) as exc:
        raise InvalidInput(f"{fld} is not a readable GeoJSON geometry: {exc}", field=fld,
                           value=str(value)[:80], valid=valid) from exc
    if geom.geom_type not in kinds or geom.is_empty:
        what = f"an empty {geom.geom_type}" if geom.is_empty else f"a {geom.geom_type}"
        raise InvalidInput(f"{fld} is {what}", field=fld, value=str(value)[:80], valid=valid)
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        hint = " (lon and lat look swapped: give lon first)" if (
            minx >= -90 and maxx <= 90 and (miny < -90 or maxy > 90 or miny < -180)) else ""
        raise InvalidInput(f"{fld} has coordinates outside lon [-180, 180], lat [-90, 90]{hint}",
                           field=fld, value=[round(v, 6) for v in geom.bounds], valid=valid)
    return geom


def open_ring(value: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first ring of a GeoJSON Polygon or MultiPolygon whose last position is not its
    first (GeoJSON requires it; shapely would close it silently): where (``coordinates[i]``
    or ``coordinates[j][i]``), its first and last positions. None: every ring is closed,
    or ``value`` is of another type or shape (left to shapely)."""
    coords = value.get("coordinates")
    kind = value.get("type")
    if kind == "Polygon":
        polygons, prefix = [coords], ["coordinates"]
    elif kind == "MultiPolygon" and isinstance(coords, list):
        polygons, prefix = coords, [f"coordinates[{j}]" for j in range(len(coords))]
    else:
        return None
    for rings, where in zip(polygons, prefix, strict=True):
        for i, ring in enumerate(rings if isinstance(rings, list) else []):
            if isinstance(ring, list) and len(ring) >= 2 and ring[0] != ring[-1]:
                return f"{where}[{i}]", ring[0], ring[-1]
    return None


def _polygons(value: Any, op: str, key: str) -> BaseGeometry:
    return geometry_of(value, _field(op, key), ("Polygon", "MultiPolygon"))


def _flag(payload: Mapping[str, Any], op: str, key: str, default: bool) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} {value!r} is not true or false", field=_field(op, key),
                           value=value, valid="true or false")
    return value


def check_edit(op: Any, payload: Any) -> None:
    """Raise InvalidInput unless ``op`` is known and ``payload`` has exactly its fields."""
    if op not in OPS:
        raise InvalidInput(f"op {op!r} is not an edit", field="op", value=op,
                           valid=", ".join(OPS))
    if not isinstance(payload, Mapping):
        raise InvalidInput("the edit is not a JSON object", field=op, value=str(payload)[:80],
                           valid="an object with the fields of the edit")
    required, optional = _KEYS[op]
    missing = sorted(required - payload.keys())
    if missing:
        raise InvalidInput(f"{op} needs {', '.join(missing)}", field=_field(op, missing[0]),
                           value=None, valid=f"fields {', '.join(sorted(required))}"
                           + (f" (optional {', '.join(sorted(optional))})" if optional else ""))
    unknown = sorted(set(payload) - required - optional)
    if unknown:
        raise InvalidInput(f"{op} has no field {unknown[0]!r}", field=_field(op, unknown[0]),
                           value=unknown[0], valid=", ".join(sorted(required | optional)))


def _set_geom(state: PlanState, code: str, geom: BaseGeometry) -> None:
    state.after[code] = replace(state.after[code], geom=polygonal(geom))


def _take(state: PlanState, code: str, geom: BaseGeometry) -> None:
    """Siblings of ``code`` lose what ``geom`` covers. An invalid ``geom`` (a bow-tie, say)
    takes nothing: set operations on it are undefined (GEOS raises), and the plan's
    validation reports it as a blocking ``invalid_geometry``."""
    if not shapely.is_valid(geom):
        return
    for other, draft in list(state.after.items()):
        if other == code or not shapely.is_valid(draft.geom):
            continue  # an invalid neighbour stays as drawn, reported as invalid_geometry
        if shapely.intersects(draft.geom, geom):
            rest = shapely.difference(draft.geom, geom)
            if not shapely.equals(rest, draft.geom):
                _set_geom(state, other, shapely.make_valid(rest))


def _replace(state: PlanState, p: Mapping[str, Any]) -> None:
    code = _existing(state, p, "replace", "code")
    geom = _polygons(p["geometry"], "replace", "geometry")
    if _flag(p, "replace", "take_from_neighbours", True):
        _take(state, code, geom)
    state.after[code] = replace(state.after[code], geom=geom)


def _cut(geom: BaseGeometry, line: BaseGeometry, code: str) -> tuple[BaseGeometry,
                                                                      BaseGeometry]:
    parts = list(polygonal(geom).geoms)
    cut: list[tuple[int, list[BaseGeometry]]] = []
    for i, part in enumerate(parts):
        pieces = [g for g in split_by(part, line).geoms if g.geom_type == "Polygon"]
        if len(pieces) > 1:
            cut.append((i, pieces))
    valid = ("a LineString that crosses the grid once, from outside its edge to outside its "
             "edge, cutting it into two parts")
    if not cut:
        raise InvalidInput(f"the line does not cut grid {code!r} in two (it must cross it "
                           "from edge to edge)", field="split.line", value=code, valid=valid)
    if len(cut) > 1 or len(cut[0][1]) != 2:
        count = sum(len(p) for _, p in cut)
        raise InvalidInput(f"the line cuts grid {code!r} into {count} parts, not two",
                           field="split.line", value=count, valid=valid)
    i, (a, b) = cut[0]
    if a.area < b.area:
        a, b = b, a
    keep = polygonal(shapely.union_all([*parts[:i], a, *parts[i + 1:]]))
    return keep, polygonal(b)


def _split(state: PlanState, p: Mapping[str, Any], taken: set[str]) -> None:
    code = _existing(state, p, "split", "code")
    new_code = _fresh(state, p, "split", "new_code", taken)
    line = geometry_of(p["line"], "split.line", ("LineString", "MultiLineString"))
    keep, new = _cut(state.after[code].solid(), line, code)
    old = state.after[code]
    name = p.get("new_name") or f"{old.name} ({new_code})"
    if not isinstance(name, str):
        raise InvalidInput("new_name is not text", field="split.new_name", value=name,
                           valid="a name")
    state.after[code] = replace(old, geom=keep)
    state.after[new_code] = Draft(code=new_code, name=name, level=old.level,
                                  parent_code=old.parent_code, geom=new, attrs={})


def _merge(state: PlanState, p: Mapping[str, Any]) -> None:
    codes = p["codes"]
    if not isinstance(codes, list) or len(codes) < 2 or len(set(map(str, codes))) != len(codes):
        raise InvalidInput("codes must list two or more different grids", field="merge.codes",
                           value=codes, valid="a list of at least two grid codes")
    for k in range(len(codes)):
        _existing(state, {"codes": codes[k]}, "merge", "codes")
    into = _code(p, "merge", "into")
    if into not in codes:
        raise InvalidInput(f"into {into!r} is not one of the merged codes", field="merge.into",
                           value=into, valid=", ".join(codes))
    geom = shapely.union_all([state.after[c].solid() for c in codes])
    name = p.get("name") or state.after[into].name
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is not text", field="merge.name", value=str(name)[:80],
                           valid="the merged grid's name (text), or leave it out")
    state.after[into] = replace(state.after[into], geom=polygonal(geom), name=name.strip())
    for c in codes:
        if c != into:
            del state.after[c]
            state.retired[c] = into


def cells_geometry(cells: Any, fld: str) -> BaseGeometry:
    """The union of H3 cells (ids as text), or InvalidInput naming the bad id."""
    if not isinstance(cells, list) or not cells:
        raise InvalidInput("cells must list H3 cell ids", field=fld, value=str(cells)[:80],
                           valid="a non-empty list of H3 cell ids such as '8a4b...'")
    polys = []
    for cell in cells:
        if not isinstance(cell, str) or not h3.is_valid_cell(cell):
            raise InvalidInput(f"{cell!r} is not an H3 cell id", field=fld, value=cell,
                               valid="H3 cell ids (hexadecimal text, e.g. from h3.latlng_to_cell)")
        polys.append(Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(cell)]))
    return shapely.union_all(polys)


def _move_cells(state: PlanState, p: Mapping[str, Any]) -> None:
    src = _existing(state, p, "move_cells", "from")
    dst = _existing(state, p, "move_cells", "to")
    if src == dst:
        raise InvalidInput("from and to are the same grid", field="move_cells.to", value=dst,
                           valid=f"a grid other than {src}")
    area = shapely.intersection(cells_geometry(p["cells"], "move_cells.cells"),
                                state.after[src].solid())
    if polygonal(area).is_empty:
        raise InvalidInput(f"none of the cells lies inside grid {src!r}",
                           field="move_cells.cells", value=p["cells"][:5],
                           valid=f"H3 cells that overlap grid {src}")
    _set_geom(state, src, shapely.difference(state.after[src].solid(), area))
    _set_geom(state, dst, shapely.union(state.after[dst].solid(), area))


def _create(state: PlanState, p: Mapping[str, Any], taken: set[str]) -> None:
    code = _fresh(state, p, "create", "code", taken)
    geom = _polygons(p["geometry"], "create", "geometry")
    levels = sorted({d.level for d in state.before.values()}) or ["grid"]
    level = p.get("level") or levels[0]
    if level not in levels:  # a new grid is a sibling of the parent's other children
        raise InvalidInput(f"level {level!r} is not the level of the grids under "
                           f"{state.parent!r}", field="create.level", value=level,
                           valid=", ".join(levels))
    name = p["name"]
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is empty" if isinstance(name, str) else "name is not text",
                           field="create.name", value=str(name)[:80], valid="the grid's name")
    if _flag(p, "create", "take_from_neighbours", True):
        _take(state, code, geom)
    state.after[code] = Draft(code=code, name=name.strip(), level=level,
                              parent_code=state.parent, geom=geom, attrs={})


def _retire(state: PlanState, p: Mapping[str, Any]) -> None:
    code = _existing(state, p, "retire", "code")
    successor = p.get("successor")
    if successor is not None:
        successor = _existing(state, p, "retire", "successor")
        if successor == code:
            raise InvalidInput("a grid cannot succeed itself", field="retire.successor",
                               value=code, valid="another grid of the parent")
        _set_geom(state, successor, shapely.union(state.after[successor].solid(),
                                                  state.after[code].solid()))
    del state.after[code]
    state.retired[code] = successor


def apply_edit(state: PlanState, op: str, payload: Mapping[str, Any], *,
               taken: Collection[str] = ()) -> None:
    """Apply one edit to ``state`` in place (``taken``: codes in use outside the parent)."""
    check_edit(op, payload)
    if op == "replace":
        _replace(state, payload)
    elif op == "split":
        _split(state, payload, set(taken))
    elif op == "merge":
        _merge(state, payload)
    elif op == "move_cells":
        _move_cells(state, payload)
    elif op == "create":
        _create(state, payload, set(taken))
    else:
        _retire(state, payload)


def read_codes(state: PlanState, op: str, payload: Mapping[str, Any]) -> list[str]:
    """The existing grid codes an edit reads (for its ``base`` versions)."""
    keys = {"replace": ["code"], "split": ["code"], "merge": [], "move_cells": ["from", "to"],
            "create": [], "retire": ["code", "successor"]}[op]
    codes = [payload[k] for k in keys if isinstance(payload.get(k), str)]
    if op == "merge" and isinstance(payload.get("codes"), list):
        codes += [c for c in payload["codes"] if isinstance(c, str)]
    if payload.get("take_from_neighbours", True) and op in ("replace", "create"):
        codes += list(state.after)
    return sorted({c for c in codes if c in state.before})


def new_codes(op: str, payload: Mapping[str, Any]) -> list[str]:
    """Codes an edit creates (their base version is 0: they must still be free)."""
    if op == "split":
        return [str(payload["new_code"])]
    if op == "create":
        return [str(payload["code"])]
    return []

