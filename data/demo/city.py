"""The demo city: 鼓楼区 (Gulou, Fuzhou) as streets -> communities -> grids.

Construction rules (all seeded, so a seed always gives the same city):

1. The district outline and the centre points of the code table are converted
   from GCJ-02 to WGS-84 (``geo.crs``); geometry is then built in a local metric
   frame.
2. **Streets** (街道/镇): every real point (a street's centre and the centres of
   its communities) is a Voronoi seed labelled with its street; a street is the
   union of its labelled cells, clipped to the district. A street with no point
   at all gets a deterministic one (farthest-point sampling). A street cut into
   pieces keeps its largest piece; the others go to the neighbour sharing the
   longest border.
3. **Communities** (社区): inside each street, the seeds are the real centre points
   that fall inside the street, plus, for communities without a point (or whose
   point fell outside), seeds chosen by farthest-point sampling from a seeded
   random sample of the street and moved by three Lloyd steps (real points never
   move). Voronoi cells clipped to the street; stray pieces as above.
4. **Grids** (网格): each community gets ``clip(round(area / 0.1 km²), 3, 8)`` grids,
   seeded by farthest-point sampling and five Lloyd steps; Voronoi cells clipped to
   the community; stray pieces as above. They are numbered 001, 002 … from north
   to south (then west to east) by their seed.
5. **Rounding**: all grids are rounded together (see ``data.demo.coverage``) to
   1e-7° (about 1 cm): neighbours share edges exactly, communities and streets are
   exact unions of their grids, and every cell is one polygon.
6. **People**: each community draws a density (log-normal around 20,000 people
   per km², 40 % lower in the township 洪山镇); a grid's population is its area
   times that density times a factor in [0.75, 1.25]; households are population
   divided by 2.5–3.0. Communities and streets add up their grids.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point
from shapely.geometry.base import BaseGeometry

from data.demo import tiling
from data.demo.coverage import GRID_SIZE, exact_coverage
from data.demo.sources import Place, Sources, read_sources
from geo.store.grids import GridRecord

DEFAULT_SEED = 350102
GRID_TARGET_M2 = 100_000.0
MIN_GRIDS, MAX_GRIDS = 3, 8
COMMUNITY_LLOYD_STEPS = 3
GRID_LLOYD_STEPS = 5
#: Two seeds closer than this (m) count as one: the later one is replaced.
MIN_SEED_GAP_M = 5.0


@dataclass
class City:
    """The built city: grid records coarsest first, and how each community was seeded."""

    district_code: str
    district_name: str
    district: BaseGeometry
    streets: list[GridRecord] = field(default_factory=list)
    communities: list[GridRecord] = field(default_factory=list)
    grids: list[GridRecord] = field(default_factory=list)
    stray_pieces_moved: int = 0

    @property
    def records(self) -> list[GridRecord]:
        """Every record, parents before children (the order ``write_versions`` likes)."""
        return [*self.streets, *self.communities, *self.grids]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _far_from(seeds: np.ndarray, xy: tuple[float, float]) -> bool:
    return not len(seeds) or float(np.min(np.linalg.norm(seeds - np.asarray(xy), axis=1))) \
        >= MIN_SEED_GAP_M


def _streets(src: Sources, frame: tiling.LocalFrame, district: BaseGeometry,
             seed: int) -> dict[str, BaseGeometry]:
    """Street polygons (local metres) from the labelled Voronoi cells of all real points."""
    points: list[tuple[float, float]] = []
    labels: list[str] = []
    for place in (*src.streets, *src.communities):
        label = place.code if place.level == "town" else place.parent
        if place.point is None:
            continue
        xy = frame.point_to_local(*place.point)
        if district.covers(Point(xy)) and _far_from(np.asarray(points).reshape(-1, 2), xy):
            points.append(xy)
            labels.append(label)
    for street in src.streets:
        if street.code not in labels:  # no point at all: a deterministic one
            sample = tiling.sample_inside(district, 500, _rng(seed, int(street.code)))
            points.append(tuple(tiling.farthest_points(sample, np.asarray(points), 1)[0]))
            labels.append(street.code)
    cells = tiling.voronoi_cells(np.asarray(points), district)
    grouped: dict[str, list[BaseGeometry]] = defaultdict(list)
    for label, cell in zip(labels, cells, strict=True):
        grouped[label].append(cell)
    merged = {code: shapely.union_all(parts) for code, parts in grouped.items()}
    return tiling.make_contiguous(merged)


def _communities(street: BaseGeometry, members: list[Place], frame: tiling.LocalFrame,
                 seed: int, street_code: str) -> tuple[dict[str, BaseGeometry], set[str]]:
    """Community polygons of one street, and the codes seeded by their real point."""
    fixed: list[tuple[float, float]] = []
    real: list[str] = []
    missing: list[str] = []
    for place in members:
        xy = frame.point_to_local(*place.point) if place.point else None
        if xy is not None and street.covers(Point(xy)) \
                and _far_from(np.asarray(fixed).reshape(-1, 2), xy):
            fixed.append(xy)
            real.append(place.code)
        else:
            missing.append(place.code)
    fixed_xy = np.asarray(fixed).reshape(-1, 2)
    sample = tiling.sample_inside(street, 600, _rng(seed, int(street_code)))
    extra = tiling.farthest_points(sample, fixed_xy, len(missing))
    seeds = np.concatenate([fixed_xy, extra])
    movable = np.array([False] * len(fixed) + [True] * len(missing))
    seeds = tiling.lloyd(seeds, movable, street, COMMUNITY_LLOYD_STEPS)
    cells = tiling.voronoi_cells(seeds, street)
    by_code = dict(zip([*real, *missing], cells, strict=True))
    return tiling.make_contiguous(by_code), set(real)


def grid_count(area_m2: float) -> int:
    """How many grids a community of ``area_m2`` square metres is split into (3 to 8)."""
    return int(np.clip(round(area_m2 / GRID_TARGET_M2), MIN_GRIDS, MAX_GRIDS))


def _grids(community: BaseGeometry, seed: int, code: str) -> dict[str, BaseGeometry]:
    """The grid polygons of one community, coded ``<community code>001`` and so on."""
    n = grid_count(community.area)
    rng = _rng(seed, int(code), 1)
    sample = tiling.sample_inside(community, 400, rng)
    seeds = tiling.farthest_points(sample, np.empty((0, 2)), n)
    seeds = tiling.lloyd(seeds, np.ones(n, dtype=bool), community, GRID_LLOYD_STEPS)
    order = sorted(range(n), key=lambda i: (-round(seeds[i][1], 3), round(seeds[i][0], 3)))
    cells = tiling.voronoi_cells(seeds, community)
    by_code = {f"{code}{rank + 1:03d}": cells[i] for rank, i in enumerate(order)}
    return tiling.make_contiguous(by_code)


def _people(grids: dict[str, BaseGeometry], communities: list[Place], seed: int,
            frame: tiling.LocalFrame) -> dict[str, tuple[int, int]]:
    """Seeded (population, households) of every grid (areas from the local frame)."""
    out: dict[str, tuple[int, int]] = {}
    for place in communities:
        rng = _rng(seed, int(place.code), 2)
        density = float(rng.lognormal(np.log(20_000.0), 0.35))
        if place.parent.endswith("100000"):  # a township (镇), not a street
            density *= 0.6
        for code in sorted(c for c in grids if c[:12] == place.code):
            area_km2 = frame.to_local(grids[code]).area / 1e6
            population = round(area_km2 * density * float(rng.uniform(0.75, 1.25)))
            households = round(population / float(rng.uniform(2.5, 3.0)))
            out[code] = (population, households)
    return out


def build_city(seed: int = DEFAULT_SEED, sources: Sources | None = None) -> City:
    """Build the demo city (no database).

    Parameters
    ----------
    seed : int
        Seed of every random choice; the same seed gives identical geometries.
    sources : Sources, optional
        The real inputs; read from ``data/china/`` when omitted.

    Returns
    -------
    City
        WGS-84 records of 10 streets, 69 communities and their grids.
    """
    src = sources or read_sources()
    centre = src.district.centroid
    frame = tiling.LocalFrame(lon0=round(centre.x, 4), lat0=round(centre.y, 4))
    district = tiling.largest_part(frame.to_local(src.district))
    streets = _streets(src, frame, district, seed)

    members: dict[str, list[Place]] = defaultdict(list)
    for place in src.communities:
        members[place.parent].append(place)
    real_seeded: set[str] = set()
    leaves: dict[str, BaseGeometry] = {}
    parent_of: dict[str, str | None] = {s.code: None for s in src.streets}
    for street in src.streets:
        comms, real = _communities(streets[street.code], members[street.code], frame, seed,
                                   street.code)
        real_seeded |= real
        for code in sorted(comms):
            parent_of[code] = street.code
            for grid_code, cell in _grids(comms[code], seed, code).items():
                leaves[grid_code] = frame.to_lonlat(cell)
                parent_of[grid_code] = code
    shapes, moved = exact_coverage(leaves, parent_of, grid_size=GRID_SIZE)
    people = _people({c: shapes[c] for c in leaves}, list(src.communities), seed, frame)

    city = City(district_code=src.district_code, district_name=src.district_name,
                district=shapely.union_all([shapes[s.code] for s in src.streets],
                                           grid_size=GRID_SIZE),
                stray_pieces_moved=moved)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for code in sorted(leaves):
        pop, hh = people[code]
        for ancestor in (parent_of[code], parent_of[str(parent_of[code])]):
            totals[str(ancestor)][0] += pop
            totals[str(ancestor)][1] += hh
    names = {p.code: p.name for p in (*src.streets, *src.communities)}
    for street in src.streets:
        kind = "镇" if street.name.endswith("镇") else "街道"
        city.streets.append(GridRecord(
            code=street.code, name=street.name, level="street", geom=_multi(shapes[street.code]),
            parent_code=None, population=totals[street.code][0],
            households=totals[street.code][1], attrs={"source": "demo", "kind": kind}))
    for place in src.communities:
        city.communities.append(GridRecord(
            code=place.code, name=place.name, level="community", geom=_multi(shapes[place.code]),
            parent_code=place.parent, population=totals[place.code][0],
            households=totals[place.code][1],
            attrs={"source": "demo",
                   "seed": "adcode" if place.code in real_seeded else "synthetic"}))
    for code in sorted(leaves):
        parent = str(parent_of[code])
        city.grids.append(GridRecord(
            code=code, name=f"{names[parent]}第{int(code[-3:])}网格", level="grid",
            geom=_multi(shapes[code]), parent_code=parent, population=people[code][0],
            households=people[code][1], attrs={"source": "demo"}))
    return city


def _multi(geom: BaseGeometry) -> MultiPolygon:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    return MultiPolygon(parts)
