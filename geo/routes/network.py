"""Walkable street networks: OSM ways or plain lines -> edges between junctions -> a graph.

Pure functions (no database). A network is a list of :class:`Edge`: a line between
two *nodes* (junctions or dead ends, identified by integers) with its geodesic
length in metres. Walking ignores one-way rules, so the graph is undirected.

Which OSM ways are walkable follows OSMnx's ``walk`` filter: a ``highway`` that is
not one of :data:`NOT_WALKABLE`, not an area (``area=yes``), not ``foot=no``, not
``service=private``, and not ``access=private``/``no`` unless ``foot`` allows it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod, Transformer
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

#: ``highway`` values that are not walked (motorways, construction, non-streets).
NOT_WALKABLE = frozenset({
    "abandoned", "bus_guideway", "construction", "cycleway", "motorway", "motorway_link",
    "no", "planned", "platform", "proposed", "raceway", "razed", "escape", "rest_area",
    "services", "bus_stop", "elevator", "emergency_bay",
})
_FOOT_ALLOWED = frozenset({"yes", "designated", "permissive", "official"})
_GEOD = Geod(ellps="WGS84")

Coords = NDArray[np.float64]


@dataclass(frozen=True)
class Way:
    """An OSM way as read from a file: its node ids, their positions and its tags."""

    way_id: int
    nodes: tuple[int, ...]
    coords: Coords  # (n, 2) lon, lat
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Edge:
    """A street piece between two nodes; ``coords`` run from ``source`` to ``target``."""

    source: int
    target: int
    coords: Coords  # (n, 2) lon, lat
    length_m: float
    highway: str | None = None
    name: str | None = None
    way_id: int | None = None


def walkable(tags: Mapping[str, str]) -> bool:
    """Whether a way with these OSM tags may be walked by a patrol (see the module doc)."""
    highway = tags.get("highway")
    if not highway or highway in NOT_WALKABLE:
        return False
    if tags.get("area") == "yes" or tags.get("foot") == "no":
        return False
    if tags.get("service") == "private":
        return False
    return not (tags.get("access") in ("private", "no")
                and tags.get("foot") not in _FOOT_ALLOWED)


def geodesic_lengths(lines: Sequence[Coords]) -> NDArray[np.float64]:
    """Geodesic length (m, WGS-84 ellipsoid) of each (n, 2) lon/lat array, vectorised."""
    if not lines:
        return np.zeros(0)
    sizes = np.array([len(c) for c in lines])
    allc = np.concatenate([np.asarray(c, dtype=float) for c in lines])
    _, _, dist = _GEOD.inv(allc[:-1, 0], allc[:-1, 1], allc[1:, 0], allc[1:, 1])
    dist = np.asarray(dist, dtype=float)
    last = np.cumsum(sizes) - 1  # index of each line's last vertex
    dist[last[:-1]] = 0.0        # the "segment" joining a line to the next one
    dist = np.append(dist, 0.0)
    starts = np.concatenate([[0], last[:-1] + 1])
    return np.add.reduceat(dist, starts)


def _pieces(nodes: tuple[int, ...], split: set[int]) -> list[tuple[int, int]]:
    cuts = [i for i, n in enumerate(nodes) if i in (0, len(nodes) - 1) or n in split]
    out: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(cuts):
        if nodes[a] == nodes[b]:  # a closed loop with one junction: cut it in two
            if b - a >= 2:
                mid = (a + b) // 2
                out += [(a, mid), (mid, b)]
            continue
        out.append((a, b))
    return out


def split_ways(ways: Iterable[Way]) -> list[Edge]:
    """Cut ways at every node they share (and at their ends) into :class:`Edge` rows.

    A node used by two ways, or twice by one way, is a junction. A closed way is
    cut in two at its middle vertex so that no edge runs from a node to itself.
    Ways with fewer than two nodes are dropped. The order follows the ways' order.
    """
    ways = [w for w in ways if len(w.nodes) >= 2]
    uses: Counter[int] = Counter()
    for way in ways:
        uses.update(way.nodes)
    split = {n for n, c in uses.items() if c > 1}
    raw: list[tuple[Way, int, int]] = []
    for way in ways:
        raw += [(way, a, b) for a, b in _pieces(way.nodes, split)]
    lengths = geodesic_lengths([w.coords[a:b + 1] for w, a, b in raw])
    return [Edge(source=w.nodes[a], target=w.nodes[b], coords=w.coords[a:b + 1],
                 length_m=float(length), highway=w.tags.get("highway"), name=w.tags.get("name"),
                 way_id=w.way_id)
            for (w, a, b), length in zip(raw, lengths, strict=True)]


def edges_from_lines(lines: Iterable[BaseGeometry], *, grid_size: float = 1e-7,
                     highway: str | None = None) -> list[Edge]:
    """A network from plain lines (e.g. grid boundaries taken as streets).

    The lines are noded and merged (``shapely.union_all`` on a ``grid_size``
    precision grid, then ``line_merge``), so that shared pieces count once and
    every crossing is a junction. Node ids are 1.. in (lon, lat) order of the
    junctions, so the same lines always give the same network.
    """
    parts = [g for g in lines if g is not None and not g.is_empty]
    if not parts:
        return []
    merged = shapely.line_merge(shapely.union_all(parts, grid_size=grid_size))
    pieces: list[Coords] = []
    for line in shapely.get_parts(merged):
        coords = np.asarray(line.coords, dtype=float)
        if len(coords) < 2:
            continue
        if np.array_equal(coords[0], coords[-1]):
            if len(coords) < 4:
                continue
            mid = len(coords) // 2
            pieces += [coords[:mid + 1], coords[mid:]]
        else:
            pieces.append(coords)
    keys = sorted({tuple(c) for p in pieces for c in (p[0], p[-1])})
    ids = {k: i + 1 for i, k in enumerate(keys)}
    pieces.sort(key=lambda p: (tuple(p[0]), tuple(p[-1]), len(p)))
    lengths = geodesic_lengths(pieces)
    return [Edge(source=ids[tuple(p[0])], target=ids[tuple(p[-1])], coords=p,
                 length_m=float(length), highway=highway)
            for p, length in zip(pieces, lengths, strict=True)]


# --------------------------------------------------------------------------- metric frame

class MetricFrame:
    """The UTM zone around a point: (lon, lat) degrees <-> metres, for distances and buffers."""

    def __init__(self, lon: float, lat: float) -> None:
        zone = int((lon + 180.0) // 6.0) % 60 + 1
        south = " +south" if lat < 0 else ""
        proj = f"+proj=utm +zone={zone}{south} +datum=WGS84 +units=m +no_defs"
        self.forward = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        self.inverse = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)

    def xy(self, lon: Any, lat: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Metres east and north for lon/lat arrays."""
        x, y = self.forward.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def to_metric(self, geom: BaseGeometry) -> BaseGeometry:
        """``geom`` from lon/lat to metres."""
        return shapely.transform(geom, lambda c: np.column_stack(self.xy(c[:, 0], c[:, 1])))

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        """``geom`` from metres to lon/lat."""
        def back(c: Coords) -> Coords:
            lon, lat = self.inverse.transform(c[:, 0], c[:, 1])
            return np.column_stack([lon, lat])
        return shapely.transform(geom, back)


# --------------------------------------------------------------------------- graph

@dataclass(frozen=True)
class GraphEdge:
    """An edge as the planner loads it from the database."""

    edge_id: int
    source: int
    target: int
    length_m: float
    coords: Coords


class StreetGraph:
    """An undirected graph of street edges (parallel edges: the shortest is kept).

    Edges are added in ``edge_id`` order so that shortest paths, and so planned
    loops, are the same on every run.
    """

    def __init__(self, edges: Iterable[GraphEdge]) -> None:
        self.graph: nx.Graph = nx.Graph()
        self.coords: dict[int, Coords] = {}
        self.node_lonlat: dict[int, tuple[float, float]] = {}
        for e in sorted(edges, key=lambda e: e.edge_id):
            if e.source == e.target:
                continue
            self.node_lonlat.setdefault(e.source, (float(e.coords[0, 0]), float(e.coords[0, 1])))
            self.node_lonlat.setdefault(e.target,
                                        (float(e.coords[-1, 0]), float(e.coords[-1, 1])))
            old = self.graph.get_edge_data(e.source, e.target)
            if old is not None and old["length"] <= e.length_m:
                continue
            self.graph.add_edge(e.source, e.target, length=e.length_m, eid=e.edge_id,
                                src=e.source)
            self.coords[e.edge_id] = e.coords

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())

    def largest_component(self) -> StreetGraph:
        """The sub-network of the largest connected component (ties: smallest node id)."""
        if len(self) == 0:
            return self
        comps = sorted(nx.connected_components(self.graph), key=lambda c: (-len(c), min(c)))
        keep = comps[0]
        out = StreetGraph(())
        out.graph = self.graph.subgraph(sorted(keep)).copy()
        out.node_lonlat = {n: self.node_lonlat[n] for n in keep}
        out.coords = {d["eid"]: self.coords[d["eid"]] for _, _, d in out.graph.edges(data=True)}
        return out

    def nodes_array(self) -> tuple[NDArray[np.int64], Coords]:
        """Node ids (sorted) and their (lon, lat) as an (n, 2) array."""
        ids = np.array(sorted(self.node_lonlat), dtype=np.int64)
        lonlat = np.array([self.node_lonlat[int(n)] for n in ids], dtype=float).reshape(-1, 2)
        return ids, lonlat

    def walk_coords(self, path: Sequence[int]) -> Coords:
        """The (lon, lat) vertices of a walk along ``path`` (consecutive nodes adjacent)."""
        parts: list[Coords] = []
        for u, v in itertools.pairwise(path):
            data = self.graph.edges[u, v]
            coords = self.coords[data["eid"]]
            if data["src"] != u:
                coords = coords[::-1]
            parts.append(coords if not parts else coords[1:])
        return np.concatenate(parts) if parts else np.zeros((0, 2))

    def walk_length(self, path: Sequence[int]) -> float:
        """Sum of the edge lengths (m) along ``path``."""
        return float(sum(self.graph.edges[u, v]["length"]
                         for u, v in itertools.pairwise(path)))


def as_line(coords: Coords) -> LineString:
    """A shapely line of (n, 2) lon/lat vertices."""
    return LineString(coords)


def fingerprint(edges: Sequence[Edge]) -> str:
    """SHA-256 of the edges (ends, vertices to 1e-7 degrees, tags): equal networks, equal prints."""
    import hashlib

    digest = hashlib.sha256()
    for e in edges:
        digest.update(np.array([e.source, e.target], dtype=np.int64).tobytes())
        digest.update(np.round(np.asarray(e.coords, dtype=float), 7).tobytes())
        digest.update(f"{e.highway}|{e.name}|{e.way_id};".encode())
    return digest.hexdigest()
