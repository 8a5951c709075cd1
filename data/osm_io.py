"""Reading OpenStreetMap extracts (``.osm.pbf``, ``.osm``, ``.osm.bz2``) into walkable edges.

pyosmium (``osmium`` on PyPI, the maintained bindings of libosmium) streams the
file: node locations go into an in-memory index, and only ways with a
``highway`` tag reach Python. The walkable ones (``geo.routes.network.walkable``)
are cut at junctions into edges. A way that leaves the extract (nodes without a
location) keeps its located runs of two or more nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geo.errors import InvalidInput
from geo.routes.network import Edge, Way, split_ways, walkable

#: Endings of the files :func:`read_osm_network` reads.
OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz")
#: Tags kept on a way (the rest are not needed to walk it).
KEPT_TAGS = ("highway", "name", "area", "foot", "access", "service")


@dataclass
class OsmNetwork:
    """The walkable edges of an extract and what was read to get them."""

    path: Path
    edges: list[Edge]
    highway_ways: int = 0
    walkable_ways: int = 0
    ways_cut_at_extract_edge: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Counts for the CLI and the API."""
        nodes = {e.source for e in self.edges} | {e.target for e in self.edges}
        return {"file": self.path.name, "highway_ways": self.highway_ways,
                "walkable_ways": self.walkable_ways, "edges": len(self.edges),
                "nodes": len(nodes), "length_m": round(sum(e.length_m for e in self.edges), 1),
                "ways_cut_at_extract_edge": self.ways_cut_at_extract_edge,
                "not_walkable_by_highway": dict(sorted(self.skipped.items()))}


def _check_path(path: Path) -> None:
    name = path.name.lower()
    if not any(name.endswith(s) for s in OSM_SUFFIXES):
        raise InvalidInput(f"cannot read {path.name!r} as OpenStreetMap data", field="file",
                           value=path.name, valid="a file ending in " + ", ".join(OSM_SUFFIXES))
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist", field="file", value=str(path),
                           valid="an existing .osm.pbf file")


def _runs(refs: list[int], coords: list[tuple[float, float] | None]) -> list[tuple[int, int]]:
    """Index ranges [a, b) of consecutive located nodes, two or more long."""
    out, start = [], None
    for i, c in enumerate([*coords, None]):
        if c is not None and start is None:
            start = i
        elif c is None and start is not None:
            if i - start >= 2:
                out.append((start, i))
            start = None
    return out


def read_ways(path: str | Path) -> tuple[list[Way], OsmNetwork]:
    """The walkable highway ways of an OSM file, and the counts of what was read.

    Raises
    ------
    InvalidInput
        For a file of another type, a missing file or one libosmium cannot read.
    """
    import osmium

    path = Path(path)
    _check_path(path)
    report = OsmNetwork(path=path, edges=[])
    ways: list[Way] = []
    try:
        processor = (osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
                     .with_locations()
                     .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
                     .with_filter(osmium.filter.KeyFilter("highway")))
        for obj in processor:
            if not isinstance(obj, osmium.osm.Way):
                continue
            report.highway_ways += 1
            tags = {k: str(obj.tags[k]) for k in KEPT_TAGS if k in obj.tags}
            if not walkable(tags):
                kind = str(tags.get("highway"))
                report.skipped[kind] = report.skipped.get(kind, 0) + 1
                continue
            report.walkable_ways += 1
            refs = [n.ref for n in obj.nodes]
            coords = [(n.location.lon, n.location.lat) if n.location.valid() else None
                      for n in obj.nodes]
            runs = _runs(refs, coords)
            if len(runs) != 1 or runs[0] != (0, len(refs)):
                report.ways_cut_at_extract_edge += 1
            for a, b in runs:
                located = [c for c in coords[a:b] if c is not None]
                ways.append(Way(way_id=int(obj.id), nodes=tuple(refs[a:b]),
                                coords=np.array(located, dtype=float), tags=tags))
    except RuntimeError as exc:
        raise InvalidInput(f"cannot read {path.name!r}: {exc}", field="file", value=path.name,
                           valid="a readable OpenStreetMap extract (.osm.pbf)") from exc
    return ways, report


def read_osm_network(path: str | Path) -> OsmNetwork:
    """The walkable street network of an OSM extract, cut at junctions into edges."""
    ways, report = read_ways(path)
    report.edges = split_ways(ways)
    return report
