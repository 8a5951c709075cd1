"""Topology checks of grid polygons: invalid geometries, overlaps, gaps, containment.

Pure functions over sequences of ``(code, geometry)`` pairs; nothing here touches
the database. Geometries are compared in their own coordinates (WGS-84 lon/lat
for grids, edges straight in lon/lat, exactly as PostGIS geometries are compared)
and every area is *measured* in m² in a Lambert azimuthal equal-area projection
centred on the data (:class:`AreaMeter`), after splitting edges longer than
0.0005° so that the measured shape is the stored one; never in degrees.

Overlap rule of :func:`resolve_overlaps` (deterministic, order-independent):
codes are sorted as plain strings; a polygon loses every part it shares with a
polygon whose code sorts before it, so each overlap goes to the smaller code.
Polygons listed as ``fixed`` (current grids that an import does not replace)
never change: an overlap with one of them always goes to the fixed polygon.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

Item = tuple[str, BaseGeometry]

_POLYGONAL = ("Polygon", "MultiPolygon")

#: Longest edge (degrees) measured as straight in the equal-area projection: longer
#: lon/lat edges are split first, since a straight lon/lat edge is curved there.
_SEGMENT_DEG = 0.0005


@dataclass(frozen=True)
class InvalidGeometry:
    """A geometry that cannot be stored as it is, and why."""

    code: str
    reason: str


@dataclass(frozen=True)
class Repair:
    """What :func:`repair` did to one geometry."""

    code: str
    reason: str
    area_m2: float
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Overlap:
    """Two polygons whose interiors share more than the tolerance."""

    a: str
    b: str
    area_m2: float
    point: tuple[float, float]
    existing: bool = False


@dataclass(frozen=True)
class Transfer:
    """One overlap settled by :func:`resolve_overlaps`: ``given_to`` keeps it."""

    a: str
    b: str
    area_m2: float
    given_to: str


@dataclass(frozen=True)
class Gap:
    """Uncovered area: a hole in the union (``parent`` None) or a part of a parent."""

    parent: str | None
    area_m2: float
    point: tuple[float, float]


@dataclass(frozen=True)
class Spill:
    """The part of a child polygon lying outside its parent."""

    code: str
    parent: str
    area_m2: float
    point: tuple[float, float]


def as_dict(item: Any) -> dict[str, Any]:
    """A finding as a JSON-ready dict (areas rounded to 0.01 m², points to 1e-6°)."""
    out = asdict(item)
    if "area_m2" in out:
        out["area_m2"] = round(float(out["area_m2"]), 2)
    if "point" in out:
        out["point"] = [round(float(v), 6) for v in out["point"]]
    if "dropped" in out:
        out["dropped"] = list(out["dropped"])
    return out


class AreaMeter:
    """Measures areas in m² for geometries in ``crs``.

    Projected CRSs in metres are measured as they are; geographic ones through a
    Lambert azimuthal equal-area projection centred on ``bounds`` (so the area of
    a city's polygons is exact up to the ellipsoid, unlike a UTM zone's 0.04–0.1%).
    """

    def __init__(self, bounds: Sequence[float], crs: str = "EPSG:4326") -> None:
        source = CRS.from_user_input(crs)
        self._transformer: Transformer | None = None
        if source.is_projected and source.axis_info[0].unit_name in ("metre", "meter"):
            return
        minx, miny, maxx, maxy = bounds
        lon0 = (minx + maxx) / 2 if np.isfinite(minx) else 0.0
        lat0 = (miny + maxy) / 2 if np.isfinite(miny) else 0.0
        local = CRS.from_proj4(f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} "
                               "+ellps=WGS84 +units=m +no_defs")
        self._transformer = Transformer.from_crs(source, local, always_xy=True)

    @classmethod
    def for_geometries(cls, geoms: Iterable[BaseGeometry], crs: str = "EPSG:4326") -> AreaMeter:
        """A meter centred on the bounds of ``geoms``."""
        arr = np.asarray(list(geoms), dtype=object)
        bounds = shapely.total_bounds(arr) if len(arr) else (0.0, 0.0, 0.0, 0.0)
        return cls(tuple(float(b) for b in bounds), crs)

    def project(self, geoms: Any) -> Any:
        """``geoms`` (one or an array) in the measuring projection."""
        if self._transformer is None:
            return geoms
        tr = self._transformer
        geoms = densify(geoms, _SEGMENT_DEG)

        def _xy(coords: np.ndarray) -> np.ndarray:
            x, y = tr.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geoms, _xy)

    def areas(self, geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
        """Areas in m² of an array of geometries."""
        arr = np.asarray(geoms, dtype=object)
        if not len(arr):
            return np.zeros(0)
        return np.asarray(shapely.area(self.project(arr)), dtype=float)

    def area(self, geom: BaseGeometry) -> float:
        """Area of one geometry in m²."""
        return float(self.areas([geom])[0])


def densify(geoms: Any, step: float) -> Any:
    """``geoms`` (one or an array) with points added along every edge longer than ``step``,
    so that no edge is longer. ``shapely.segmentize`` does this, but GEOS 3.14 returns an
    empty or broken polygon for some valid ones (libgeos/geos#1294: a grid measured 0 m²,
    so an overlap with it went unseen); polygons are densified here with numpy instead."""
    arr = np.asarray(geoms, dtype=object)
    flat = arr.reshape(-1)
    out = flat.copy()
    kinds = shapely.get_type_id(flat)
    empty = shapely.is_empty(flat)  # kept as they are: shapely's ragged arrays crash on them
    polys = np.flatnonzero(((kinds == 3) | (kinds == 6)) & ~empty)
    if len(polys):
        out[polys] = _densify_polygons(flat[polys], step)
    for k in np.flatnonzero(kinds == 7):  # collections: their parts
        out[k] = shapely.GeometryCollection(list(densify(shapely.get_parts(flat[k]), step)))
    rest = np.flatnonzero(~np.isin(kinds, (3, 6, 7)) & ~empty)
    if len(rest):
        out[rest] = shapely.segmentize(flat[rest], step)
    return out.reshape(arr.shape) if arr.ndim else out[0]


def _densify_polygons(polys: np.ndarray, step: float) -> np.ndarray:
    """Polygons and multipolygons densified through their ragged coordinate arrays."""
    kind, coords, offsets = shapely.to_ragged_array(polys)
    rings = offsets[0]
    count = len(coords)
    if count == 0:
        return polys
    last = np.zeros(count, dtype=bool)
    last[rings[1:] - 1] = True  # a ring's closing point starts no edge
    edge = np.roll(coords, -1, axis=0) - coords
    edge[last] = 0.0
    length = np.hypot(edge[:, 0], edge[:, 1])
    pieces = np.where(last, 1, np.maximum(1, np.ceil(length / step))).astype(np.int64)
    src = np.repeat(np.arange(count), pieces)
    k = np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    dense = coords[src] + edge[src] * (k / pieces[src])[:, None]
    ends = np.concatenate(([0], np.cumsum(pieces)))
    out = shapely.from_ragged_array(kind, dense, (ends[rings], *offsets[1:]))
    return np.asarray(out, dtype=object)


def polygonal(geom: BaseGeometry | None) -> MultiPolygon:
    """The polygonal parts of ``geom`` as one MultiPolygon (empty when there are none)."""
    if geom is None or geom.is_empty:
        return MultiPolygon()
    polys: list[Any] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon" and not part.is_empty:
            polys.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            polys.extend(polygonal(part).geoms)
    return MultiPolygon(polys)


def _non_polygonal(geom: BaseGeometry) -> list[str]:
    kinds: list[str] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "GeometryCollection":
            kinds.extend(_non_polygonal(part))
        elif part.geom_type not in _POLYGONAL:
            kinds.append(part.geom_type)
    return sorted(set(kinds))


#: Widest a polygon in degrees may be: one wider crosses the antimeridian the long way round.
MAX_WIDTH_DEG = 180.0


def invalid_reason(geom: BaseGeometry | None, *, degrees: bool = True) -> str | None:
    """Why ``geom`` (WGS-84 unless not ``degrees``) cannot be stored as a grid polygon, or
    None when it can."""
    if geom is None:
        return "no geometry"
    if geom.is_empty:
        return "empty geometry"
    others = _non_polygonal(geom)
    if others:
        return f"not polygonal: contains {', '.join(others)}"
    if not shapely.is_valid(geom):
        return str(shapely.is_valid_reason(geom))
    minx, _, maxx, _ = geom.bounds
    if degrees and maxx - minx > MAX_WIDTH_DEG:  # [179.9, -179.9] as a band round the world
        return (f"spans {maxx - minx:.1f} degrees of longitude: a polygon crossing the "
                "antimeridian is read the long way round (split it at 180, RFC 7946 3.1.9)")
    return None


def invalid_geometries(items: Iterable[Item]) -> list[InvalidGeometry]:
    """Every item whose geometry is missing, empty, not polygonal or not OGC-valid."""
    found = []
    for code, geom in items:
        reason = invalid_reason(geom)
        if reason is not None:
            found.append(InvalidGeometry(code, reason))
    return found


def repair(items: Iterable[Item], meter: AreaMeter) -> tuple[list[Item], list[Repair]]:
    """Repair invalid geometries with ``shapely.make_valid``, keeping polygonal parts only.

    Returns
    -------
    items, repairs
        The items with repaired geometries (valid ones untouched; a geometry with
        nothing polygonal left stays as it was, so it is still reported invalid)
        and one :class:`Repair` per changed geometry.
    """
    out: list[Item] = []
    repairs: list[Repair] = []
    for code, geom in items:
        reason = invalid_reason(geom)
        if reason is None or geom is None or geom.is_empty:
            out.append((code, geom))
            continue
        fixed = shapely.make_valid(geom)
        dropped = tuple(_non_polygonal(fixed))
        poly = polygonal(fixed)
        if poly.is_empty or not poly.is_valid:
            out.append((code, geom))
            continue
        poly = polygonal(shapely.union_all(list(poly.geoms)))
        out.append((code, poly))
        repairs.append(Repair(code, reason, meter.area(poly), dropped))
    return out, repairs


def _point(geom: BaseGeometry) -> tuple[float, float]:
    p = geom.representative_point()
    return (float(p.x), float(p.y))


def find_overlaps(items: Sequence[Item], meter: AreaMeter, tolerance_m2: float, *,
                  fixed: Sequence[Item] = ()) -> list[Overlap]:
    """Pairs of polygons whose shared area exceeds ``tolerance_m2``.

    Pairs within ``items`` are reported with ``a < b``; pairs of an item and a
    ``fixed`` polygon (never compared with each other) with ``existing=True``,
    ``a`` the item and ``b`` the fixed code. Sorted by ``(a, b)``.
    """
    codes = [c for c, _ in items] + [c for c, _ in fixed]
    geoms = np.asarray([g for _, g in items] + [g for _, g in fixed], dtype=object)
    n = len(items)
    if not len(geoms):
        return []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms[:n], predicate="intersects")
    keep = (left != right) & ((right >= n) | (left < right))
    left, right = left[keep], right[keep]
    shared = shapely.intersection(geoms[left], geoms[right])
    areas = meter.areas(shared)
    found = []
    for i, j, area, geom in zip(left, right, areas, shared, strict=True):
        if area <= tolerance_m2:
            continue
        a, b = codes[i], codes[j]
        existing = bool(j >= n)
        if not existing and b < a:
            a, b = b, a
        found.append(Overlap(a, b, float(area), _point(polygonal(geom)), existing))
    return sorted(found, key=lambda o: (o.a, o.b))


def resolve_overlaps(items: Sequence[Item], meter: AreaMeter, tolerance_m2: float, *,
                     fixed: Sequence[Item] = ()) -> tuple[list[Item], list[Transfer]]:
    """Give every overlap to exactly one polygon (see the module docstring for the rule).

    Returns
    -------
    items, transfers
        The items in the order given, each geometry minus the parts it loses,
        and one :class:`Transfer` per overlapping pair above ``tolerance_m2``.
        A polygon with nothing left keeps an empty geometry (reported invalid later).
    """
    overlaps = find_overlaps(items, meter, tolerance_m2, fixed=fixed)
    geom_of = dict(items)
    fixed_of = dict(fixed)
    losers: dict[str, list[BaseGeometry]] = defaultdict(list)
    transfers = []
    for ov in overlaps:
        if ov.existing:
            losers[ov.a].append(fixed_of[ov.b])
            transfers.append(Transfer(ov.a, ov.b, ov.area_m2, given_to=ov.b))
        else:
            losers[ov.b].append(geom_of[ov.a])
            transfers.append(Transfer(ov.a, ov.b, ov.area_m2, given_to=ov.a))
    out: list[Item] = []
    for code, geom in items:
        if code not in losers:
            out.append((code, geom))
            continue
        rest = shapely.difference(geom, shapely.union_all(losers[code]))
        rest = polygonal(shapely.make_valid(rest))
        out.append((code, rest))
    return out, transfers


def _holes(union: BaseGeometry) -> list[BaseGeometry]:
    """The uncovered areas enclosed by ``union``, one polygon per connected area."""
    parts = list(polygonal(union).geoms)
    if not any(p.interiors for p in parts):
        return []
    filled = shapely.union_all([shapely.Polygon(p.exterior) for p in parts])
    return list(polygonal(shapely.difference(filled, union)).geoms)


def union_gaps(items: Sequence[Item], meter: AreaMeter, tolerance_m2: float, *,
               fixed: Sequence[Item] = ()) -> list[Gap]:
    """Holes of the union of ``items`` (and ``fixed``) larger than ``tolerance_m2``.

    With ``fixed`` polygons, only holes that touch one of ``items`` are reported.
    Sorted by decreasing area.
    """
    geoms = [g for _, g in items if g is not None and not g.is_empty]
    if not geoms:
        return []
    others = [g for _, g in fixed if g is not None and not g.is_empty]
    union = shapely.union_all(geoms + others)
    holes = _holes(union)
    if others and holes:
        mine = shapely.union_all(geoms)
        holes = [h for h in holes if shapely.dwithin(h, mine, 1e-9)]
    areas = meter.areas(holes)
    gaps = [Gap(None, float(a), _point(h)) for h, a in zip(holes, areas, strict=True)
            if a > tolerance_m2]
    return sorted(gaps, key=lambda g: (-g.area_m2, g.point))


def parent_coverage(children: Sequence[tuple[str, str, BaseGeometry]],
                    parents: Mapping[str, BaseGeometry], meter: AreaMeter,
                    tolerance_m2: float) -> tuple[list[Gap], list[Spill]]:
    """Where children and their parents disagree.

    Parameters
    ----------
    children
        ``(code, parent_code, geometry)`` triples; those whose parent is not in
        ``parents`` are ignored.
    parents
        Parent geometries by code.

    Returns
    -------
    gaps, spills
        Parts of each parent (that has children) not covered by them, each above
        ``tolerance_m2``, and children whose area outside their parent exceeds it.
    """
    by_parent: dict[str, list[BaseGeometry]] = defaultdict(list)
    spills = []
    for code, parent, geom in children:
        if parent not in parents or geom is None or geom.is_empty:
            continue
        by_parent[parent].append(geom)
        outside = shapely.difference(geom, parents[parent])
        area = meter.area(outside)
        if area > tolerance_m2:
            spills.append(Spill(code, parent, area, _point(polygonal(outside))))
    gaps = []
    for parent in sorted(by_parent):
        rest = polygonal(shapely.difference(parents[parent], shapely.union_all(by_parent[parent])))
        parts = list(rest.geoms)
        for part, area in zip(parts, meter.areas(parts), strict=True):
            if area > tolerance_m2:
                gaps.append(Gap(parent, float(area), _point(part)))
    return gaps, sorted(spills, key=lambda s: (s.code, s.parent))
