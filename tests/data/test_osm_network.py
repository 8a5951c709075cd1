"""The Monaco OpenStreetMap extract as a walkable network: reading, cutting, storing, CLI."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import osmium
import pytest
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from api.cli import app as cli_app
from data.osm_io import OsmNetwork, read_osm_network
from geo.errors import InvalidInput
from geo.routes.network import Edge, Way, edges_from_lines, split_ways, walkable
from geo.settings import get_settings
from geo.store import db
from geo.store.network import get_network, replace_network

GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def monaco_pbf(shared_data: Path) -> Path:
    return shared_data / "osm" / "monaco.osm.pbf"


@pytest.fixture(scope="module")
def monaco(monaco_pbf: Path) -> OsmNetwork:
    return read_osm_network(monaco_pbf)


@pytest.fixture(scope="module")
def raw_ways(monaco_pbf: Path) -> list[dict[str, Any]]:
    """Every highway way of the file, read here independently of data.osm_io."""
    out = []
    fp = (osmium.FileProcessor(str(monaco_pbf), osmium.osm.NODE | osmium.osm.WAY)
          .with_locations().with_filter(osmium.filter.EntityFilter(osmium.osm.WAY)))
    for w in fp:
        if not isinstance(w, osmium.osm.Way) or "highway" not in w.tags:
            continue
        out.append({"id": w.id, "tags": dict(w.tags), "refs": [n.ref for n in w.nodes],
                    "lonlat": [(n.location.lon, n.location.lat) if n.location.valid() else None
                               for n in w.nodes]})
    return out


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("PATROLGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


# --------------------------------------------------------------------------- reading

def test_walkable_filter_follows_the_documented_rules() -> None:
    assert walkable({"highway": "footway"}) and walkable({"highway": "steps"})
    assert walkable({"highway": "primary", "name": "Boulevard"})
    assert not walkable({"highway": "motorway"}) and not walkable({"highway": "construction"})
    assert not walkable({"highway": "pedestrian", "area": "yes"})
    assert not walkable({"highway": "residential", "foot": "no"})
    assert not walkable({"highway": "service", "access": "private"})
    assert walkable({"highway": "service", "access": "private", "foot": "yes"})
    assert not walkable({"building": "yes"})


def test_monaco_edges_keep_the_whole_length_of_the_walkable_ways(
        monaco: OsmNetwork, raw_ways: list[dict[str, Any]]) -> None:
    walk = [w for w in raw_ways if walkable(w["tags"])]
    assert monaco.highway_ways == len(raw_ways) > 2_500
    assert monaco.walkable_ways == len(walk)
    assert sum(monaco.skipped.values()) == len(raw_ways) - len(walk)
    assert monaco.skipped.get("motorway", 0) == sum(
        1 for w in raw_ways if w["tags"]["highway"] == "motorway")
    # The length of each way (geodesic, computed here) is split exactly among its edges.
    expected = 0.0
    for w in walk:
        pts = [p for p in w["lonlat"] if p is not None]
        lon, lat = zip(*pts, strict=True)
        expected += GEOD.line_length(lon, lat)
    got = sum(e.length_m for e in monaco.edges)
    assert got == pytest.approx(expected, rel=1e-9)
    assert all(e.highway not in ("motorway", "motorway_link") for e in monaco.edges)
    assert {"footway", "steps", "residential"} <= {e.highway for e in monaco.edges}


def test_monaco_edges_end_at_every_junction_and_nowhere_else(
        monaco: OsmNetwork, raw_ways: list[dict[str, Any]]) -> None:
    walk = [w for w in raw_ways if walkable(w["tags"])]
    uses = Counter(n for w in walk for n in w["refs"])
    junctions = {n for n, c in uses.items() if c > 1}
    ends = {w["refs"][0] for w in walk} | {w["refs"][-1] for w in walk}
    nodes = {e.source for e in monaco.edges} | {e.target for e in monaco.edges}
    # located junctions of walkable ways are all nodes; every node is a junction or an end
    located = {r for w in walk for r, p in zip(w["refs"], w["lonlat"], strict=True)
               if p is not None}
    assert (junctions & located) <= nodes
    assert nodes <= junctions | ends | _extract_edge_ends(walk) | _ring_middles(walk, junctions)
    # one position per node, whichever edge it is read from
    where: dict[int, tuple[float, float]] = {}
    for e in monaco.edges:
        for node, xy in ((e.source, tuple(e.coords[0])), (e.target, tuple(e.coords[-1]))):
            assert where.setdefault(node, xy) == xy
    assert all(e.source != e.target for e in monaco.edges)


def _ring_middles(walk: list[dict[str, Any]], junctions: set[int]) -> set[int]:
    """The documented cut of a loop between two cuts at the same node: its middle vertex."""
    out: set[int] = set()
    for w in walk:
        refs = w["refs"]
        cuts = [i for i, n in enumerate(refs) if i in (0, len(refs) - 1) or n in junctions]
        out.update(refs[(a + b) // 2] for a, b in itertools.pairwise(cuts)
                   if refs[a] == refs[b])
    return out


def _extract_edge_ends(walk: list[dict[str, Any]]) -> set[int]:
    """Nodes next to a missing location (ways cut at the edge of the extract)."""
    out: set[int] = set()
    for w in walk:
        for i, p in enumerate(w["lonlat"]):
            if p is None:
                out.update(w["refs"][j] for j in (i - 1, i + 1) if 0 <= j < len(w["refs"]))
    return out


def test_closed_way_is_cut_in_two_and_shared_nodes_split_ways() -> None:
    ring = Way(way_id=1, nodes=(1, 2, 3, 4, 1), tags={"highway": "footway"},
               coords=np.array([[0, 0], [0, 1e-3], [1e-3, 1e-3], [1e-3, 0], [0, 0]], float))
    spur = Way(way_id=2, nodes=(3, 5), tags={"highway": "path"},
               coords=np.array([[1e-3, 1e-3], [2e-3, 2e-3]], float))
    edges = split_ways([ring, spur])
    pairs = sorted((e.source, e.target) for e in edges)
    assert pairs == [(1, 3), (3, 1), (3, 5)]
    assert sum(e.length_m for e in edges if e.way_id == 1) == pytest.approx(
        GEOD.line_length([0, 0, 1e-3, 1e-3, 0], [0, 1e-3, 1e-3, 0, 0]))


def test_lines_are_noded_where_they_cross() -> None:
    from shapely.geometry import LineString, box
    a, b = box(0, 0, 0.001, 0.001).boundary, box(0.001, 0, 0.002, 0.001).boundary
    edges = edges_from_lines([a, b, LineString([(0, 0), (0, 0.001)])])
    nodes = {e.source for e in edges} | {e.target for e in edges}
    # the left side given twice counts once; the shared side's ends are the only junctions
    assert len(nodes) == 2 and len(edges) == 3
    assert sum(e.length_m for e in edges) == pytest.approx(
        GEOD.line_length([0, 0.002, 0.002, 0, 0], [0, 0, 0.001, 0.001, 0])
        + GEOD.line_length([0.001, 0.001], [0, 0.001]), rel=1e-9)


def test_unreadable_and_unknown_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.osm.pbf"
    bad.write_bytes(b"not a pbf at all")
    with pytest.raises(InvalidInput) as err:
        read_osm_network(bad)
    assert err.value.field == "file" and err.value.value == "broken.osm.pbf"
    with pytest.raises(InvalidInput) as err:
        read_osm_network(tmp_path / "streets.shp")
    assert err.value.field == "file" and ".osm.pbf" in str(err.value.valid)


# --------------------------------------------------------------------------- storing

def test_store_replace_and_unchanged(session: Session, monaco: OsmNetwork) -> None:
    info = replace_network(session, "monaco", monaco.edges, source="monaco.osm.pbf")
    assert info.changed and info.edge_count == len(monaco.edges)
    row = session.execute(text("""SELECT count(*), sum(length_m),
                                         sum(ST_Length(geom::geography)) FROM street_edge
                                   WHERE network = 'monaco'""")).one()
    assert row[0] == len(monaco.edges)
    assert row[1] == pytest.approx(sum(e.length_m for e in monaco.edges), rel=1e-9)
    assert row[2] == pytest.approx(row[1], rel=1e-4)  # PostGIS agrees on the lengths
    again = replace_network(session, "monaco", monaco.edges, source="monaco.osm.pbf")
    assert not again.changed
    fewer = replace_network(session, "monaco", monaco.edges[:100], source="part")
    assert fewer.changed and fewer.edge_count == 100
    assert session.execute(text("SELECT count(*) FROM street_edge")).scalar() == 100


def test_failed_replace_keeps_the_old_network(db_url: str, monaco: OsmNetwork) -> None:
    with db.session_scope(db_url) as s:
        replace_network(s, "monaco", monaco.edges[:50], source="first")
    broken = [*monaco.edges[:10],
              Edge(source=1, target=2, coords=np.array([[7.4, 43.7], [7.41, 43.7]]),
                   length_m=-1.0)]  # violates the length check of the table
    with pytest.raises(Exception, match="length"), db.session_scope(db_url) as s:
        replace_network(s, "monaco", broken, source="second")
    with db.session_scope(db_url) as s:
        assert get_network(s, "monaco").edge_count == 50
        assert s.execute(text("SELECT count(*) FROM street_edge")).scalar() == 50


def test_cli_imports_monaco_then_finds_it_unchanged(
        cli: Callable[..., Result], db_url: str, monaco_pbf: Path, monaco: OsmNetwork) -> None:
    first = cli("network", "import", monaco_pbf)
    assert first.exit_code == 0, first.output
    assert "stored" in first.output and f"{len(monaco.edges)} edges" in first.output
    second = cli("network", "import", monaco_pbf)
    assert second.exit_code == 0 and "unchanged" in second.output
    listed = cli("network", "list")
    assert "monaco" in listed.output
    with db.session_scope(db_url) as s:
        assert get_network(s, "monaco").edge_count == len(monaco.edges)
    bad = cli("network", "import", monaco_pbf, "--name", "bad name!")
    assert bad.exit_code == 2 and "network name" in bad.output
