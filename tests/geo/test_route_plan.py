"""Route planning: the loop heuristic on small graphs, and real plans on the Monaco network."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import h3
import networkx as nx
import numpy as np
import pytest
from shapely.geometry import LineString, MultiPolygon, box
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.osm_io import OsmNetwork, read_osm_network
from geo.errors import InvalidInput
from geo.routes.hotspots import top_cells
from geo.routes.loop import Target, plan_loop
from geo.routes.network import GraphEdge, StreetGraph, edges_from_lines
from geo.routes.plan import plan_route
from geo.settings import Settings
from geo.store.grids import GridRecord, write_versions
from geo.store.network import replace_network
from geo.store.routes import area_of

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
#: Settings for code that never connects (a valid URL all the same).
NO_DB = "postgresql+psycopg://unused@127.0.0.1/unused"
MONACO = box(7.409, 43.725, 7.440, 43.752)
#: Real places of Monaco and how many incidents each gets in the look-back window.
PLACES = {"casino": (7.4276, 43.7396, 9), "port": (7.4240, 43.7350, 7),
          "palace": (7.4200, 43.7310, 6), "fontvieille": (7.4165, 43.7285, 5),
          "larvotto": (7.4350, 43.7460, 4), "exotic_garden": (7.4130, 43.7315, 3),
          "station": (7.4197, 43.7389, 2), "moneghetti": (7.4152, 43.7345, 2)}


# --------------------------------------------------------------------------- pure heuristic

def _lattice(seed: int, n: int = 7) -> StreetGraph:
    """An n x n street lattice ~100 m apart with random detours (lengths >= straight line)."""
    rng = np.random.default_rng(seed)
    g = nx.grid_2d_graph(n, n)
    edges = []
    for eid, (u, v) in enumerate(sorted(g.edges())):
        coords = np.array([[7.0 + u[0] * 1e-3, 43.0 + u[1] * 1e-3],
                           [7.0 + v[0] * 1e-3, 43.0 + v[1] * 1e-3]])
        edges.append(GraphEdge(edge_id=eid, source=u[0] * n + u[1], target=v[0] * n + v[1],
                               length_m=float(rng.uniform(80, 160)), coords=coords))
    return StreetGraph(edges)


def _optimal_tour(graph: StreetGraph, start: int, nodes: Sequence[int]) -> float:
    dist = {a: nx.single_source_dijkstra_path_length(graph.graph, a, weight="length")
            for a in [start, *nodes]}
    best = np.inf
    for perm in itertools.permutations(nodes):
        walk = [start, *perm, start]
        best = min(best, sum(dist[a][b] for a, b in itertools.pairwise(walk)))
    return float(best)


def _check_walk(graph: StreetGraph, start: int, nodes: list[int], length: float) -> None:
    assert nodes[0] == nodes[-1] == start
    assert all(graph.graph.has_edge(a, b) for a, b in itertools.pairwise(nodes))
    assert length == pytest.approx(sum(graph.graph.edges[a, b]["length"]
                                       for a, b in itertools.pairwise(nodes)))


@pytest.mark.parametrize("seed", range(12))
def test_twice_the_optimal_tour_visits_every_target(seed: int) -> None:
    graph = _lattice(seed)
    rng = np.random.default_rng(100 + seed)
    picks = rng.choice(49, size=6, replace=False)
    start, nodes = int(picks[0]), [int(p) for p in picks[1:]]
    targets = [Target(key=f"t{n}", node=n, weight=float(rng.integers(1, 9))) for n in nodes]
    budget = 2 * _optimal_tour(graph, start, nodes)
    loop = plan_loop(graph, start, targets, budget)
    assert sorted(loop.targeted) == sorted(t.key for t in targets)
    assert set(nodes) <= set(loop.nodes)
    assert loop.length_m <= budget
    _check_walk(graph, start, loop.nodes, loop.length_m)


@pytest.mark.parametrize("seed", range(12))
def test_any_budget_is_respected_and_claims_are_true(seed: int) -> None:
    graph = _lattice(seed, n=8)
    rng = np.random.default_rng(200 + seed)
    picks = rng.choice(64, size=12, replace=False)
    start = int(picks[0])
    targets = [Target(key=f"t{n}", node=int(n)) for n in picks[1:]]
    budget = float(rng.uniform(300, 3000))
    loop = plan_loop(graph, start, targets, budget)
    assert loop.length_m <= budget + 1e-6
    claimed = {int(k[1:]) for k in loop.targeted}
    assert claimed <= set(loop.nodes)
    if len(loop.nodes) > 1:
        _check_walk(graph, start, loop.nodes, loop.length_m)
    else:  # nothing fits: the reported cheapest round trip really is over budget
        assert loop.cheapest_missed_m is not None and loop.cheapest_missed_m > budget


def test_same_plan_whatever_the_order_edges_come_in() -> None:
    graph = _lattice(3)
    edges = [GraphEdge(edge_id=d["eid"], source=d["src"], target=v if d["src"] == u else u,
                       length_m=d["length"], coords=graph.coords[d["eid"]])
             for u, v, d in graph.graph.edges(data=True)]
    shuffled = StreetGraph(list(reversed(edges)))
    targets = [Target(key=f"t{n}", node=n) for n in (5, 17, 30, 44, 12)]
    a = plan_loop(graph, 0, targets, 2500)
    b = plan_loop(shuffled, 0, targets, 2500)
    assert a.nodes == b.nodes and a.length_m == b.length_m
    assert np.array_equal(a.coords, b.coords)


def test_a_budget_below_every_round_trip_plans_nothing() -> None:
    graph = _lattice(1)
    d = nx.single_source_dijkstra_path_length(graph.graph, 0, weight="length")
    loop = plan_loop(graph, 0, [Target("far", 48), Target("near", 8)], 2 * d[8] - 1)
    assert loop.nodes == [0] and loop.targeted == []
    assert loop.cheapest_missed_m == pytest.approx(2 * d[8])


def test_a_hotspot_on_the_start_alone_gets_the_shortest_round_from_it() -> None:
    graph = _lattice(2)
    g = graph.graph
    corner_block = (g.edges[0, 1]["length"] + g.edges[1, 8]["length"]
                    + g.edges[8, 7]["length"] + g.edges[7, 0]["length"])
    shortest_street = min(g.edges[0, 1]["length"], g.edges[0, 7]["length"])
    loop = plan_loop(graph, 0, [Target("here", 0)], 5000.0)
    _check_walk(graph, 0, loop.nodes, loop.length_m)
    assert loop.targeted == ["here"] and len(loop.nodes) == 5  # round the corner block
    assert loop.length_m == pytest.approx(corner_block)
    back = plan_loop(graph, 0, [Target("here", 0)], 2 * shortest_street)
    assert back.nodes in ([0, 1, 0], [0, 7, 0]) and back.targeted == ["here"]
    none = plan_loop(graph, 0, [Target("here", 0)], 2 * shortest_street - 1)
    assert none.nodes == [0] and none.cheapest_missed_m == pytest.approx(2 * shortest_street)


# --------------------------------------------------------------------------- Monaco

@pytest.fixture(scope="module")
def monaco(shared_data: Path) -> OsmNetwork:
    return read_osm_network(shared_data / "osm" / "monaco.osm.pbf")


def _incident(session: Session, lon: float, lat: float, at: dt.datetime,
              status: str = "registered") -> None:
    session.execute(text("""INSERT INTO incident (source, category_code, geom, reported_at, status)
                            VALUES ('app', 'C01', ST_SetSRID(ST_MakePoint(:x, :y), 4326), :t,
                                    :status)"""),
                    {"x": lon, "y": lat, "t": at, "status": status})


@pytest.fixture
def city(session: Session, monaco: OsmNetwork) -> Session:
    """Monaco as one grid with its streets and incidents around real places."""
    replace_network(session, "monaco", monaco.edges, source="monaco.osm.pbf")
    write_versions(session, [GridRecord(code="MC", name="Monaco", level="grid",
                                        geom=MultiPolygon([MONACO]))])
    session.execute(text("""INSERT INTO category (code, name_zh, name_en, kind, department,
                                                  sla_hours)
                            VALUES ('C01', '测试', 'test', 'event', 'test', 24)"""))
    session.execute(text("""INSERT INTO team (code, name, kind, grid_code)
                            VALUES ('MC-PATROL', 'Monaco patrol', 'patrol', 'MC')"""))
    for k, (lon, lat, n) in enumerate(PLACES.values()):
        for i in range(n):
            _incident(session, lon, lat, NOW - dt.timedelta(days=1 + i * 3 + k % 3))
    # not counted: too old, merged as duplicates, rejected, outside the grid
    _incident(session, 7.4276, 43.7396, NOW - dt.timedelta(days=200))
    _incident(session, 7.4130, 43.7315, NOW - dt.timedelta(days=2), status="duplicate")
    _incident(session, 7.4130, 43.7315, NOW - dt.timedelta(days=2), status="rejected")
    _incident(session, 7.3800, 43.7300, NOW - dt.timedelta(days=2))
    session.flush()
    return session


def _on_network(session: Session, geometry: dict[str, object]) -> float:
    """Metres of the line's segments whose midpoint is more than 5 cm from every edge."""
    return float(session.execute(text("""
        WITH s AS (SELECT geom, ST_LineInterpolatePoint(geom, 0.5) AS mid
                     FROM ST_DumpSegments(ST_GeomFromGeoJSON(:g)))
        SELECT coalesce(sum(ST_Length(s.geom::geography)), 0) FROM s
         WHERE NOT EXISTS (SELECT 1 FROM street_edge e
                            WHERE e.geom && ST_Expand(s.mid, 1e-5)
                              AND ST_DWithin(e.geom::geography, s.mid::geography, 0.05))"""),
                                 {"g": json.dumps(geometry)}).scalar_one())


def test_plan_on_monaco_is_a_closed_loop_on_the_streets(city: Session) -> None:
    settings = Settings(database_url=NO_DB)
    planned = plan_route(city, settings, length_m=6000, grid="MC", now=NOW)
    feature = planned.feature()
    props, geometry = feature["properties"], feature["geometry"]
    coords = geometry["coordinates"]
    assert geometry["type"] == "LineString" and coords[0] == coords[-1] and props["closed"]
    assert props["network"] == "monaco" and props["length_m"] <= 6000
    postgis_m = city.execute(text("SELECT ST_Length(ST_GeomFromGeoJSON(:g)::geography)"),
                             {"g": json.dumps(geometry)}).scalar_one()
    assert props["length_m"] == pytest.approx(postgis_m, rel=1e-3)
    assert _on_network(city, geometry) == 0.0
    # hotspots: the places, counted here with h3 directly (old/duplicate/rejected/outside left out)
    counts = {h3.latlng_to_cell(lat, lon, settings.hotspot_resolution): n
              for lon, lat, n in PLACES.values()}
    assert {h["cell"]: h["incidents"] for h in props["hotspots"]} == counts
    # a hotspot is "visited" exactly when PostGIS finds the line within reach of its cell
    for h in props["hotspots"]:
        ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(h["cell"])]
        near = city.execute(text("""
            SELECT ST_DWithin(ST_GeomFromGeoJSON(:line)::geography,
                              ST_GeomFromGeoJSON(:cell)::geography, :reach)"""),
                            {"line": json.dumps(geometry), "reach": settings.hotspot_reach_m + 0.5,
                             "cell": json.dumps({"type": "Polygon",
                                                 "coordinates": [[*ring, ring[0]]]})}).scalar()
        assert h["visited"] == near, h
    assert props["hotspots_visited"] == sum(h["visited"] for h in props["hotspots"]) >= 2
    assert props["incidents_visited"] == sum(h["incidents"] for h in props["hotspots"]
                                             if h["visited"])
    again = plan_route(city, settings, length_m=6000, grid="MC", now=NOW).feature()
    assert again == feature


def test_more_budget_visits_more_and_enough_visits_all(city: Session) -> None:
    settings = Settings(database_url=NO_DB)
    visited = []
    for budget in (2500, 5000, 10_000, 30_000):
        props = plan_route(city, settings, length_m=budget, grid="MC", now=NOW
                           ).feature()["properties"]
        assert props["length_m"] <= budget
        visited.append(props["hotspots_visited"])
    assert visited == sorted(visited) and visited[0] < visited[-1]
    assert visited[-1] == len(PLACES)


def test_team_plan_with_a_start_point_snaps_and_returns_there(city: Session) -> None:
    settings = Settings(database_url=NO_DB)
    start = (7.4230, 43.7370)
    props = plan_route(city, settings, length_m=4000, team="MC-PATROL", start=start,
                       now=NOW).feature()
    first = props["geometry"]["coordinates"][0]
    assert props["properties"]["start"] == first
    assert props["properties"]["start_snapped_m"] < 60
    assert props["properties"]["grid"] == "MC"


def test_plan_errors_name_field_value_and_what_is_valid(city: Session) -> None:
    settings = Settings(database_url=NO_DB)
    cases = [
        (dict(length_m=1, grid="MC"), "length_m"),  # not even round the top hotspot
        (dict(length_m=-5, grid="MC"), "length_m"),
        (dict(length_m=1e9, grid="MC"), "length_m"),
        (dict(length_m=3000, grid="NOPE"), "grid"),
        (dict(length_m=3000), "grid"),
        (dict(length_m=3000, grid="MC", team="MC-PATROL"), "grid"),
        (dict(length_m=3000, team="NOPE"), "team"),
        (dict(length_m=3000, grid="MC", start=(7.30, 43.60)), "start"),
        (dict(length_m=3000, grid="MC", network="paris"), "network"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as err:
            plan_route(city, settings, now=NOW, **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field, (kwargs, err.value.to_dict())
        assert err.value.valid
    with pytest.raises(InvalidInput) as err:
        plan_route(city, settings, length_m=1, grid="MC", now=NOW)
    needed = float(str(err.value.valid).split(">=")[1].split()[0])
    ok = plan_route(city, settings, length_m=needed + 1, grid="MC", now=NOW)
    assert ok.feature()["properties"]["hotspots_visited"] >= 1
    assert 0 < ok.loop.length_m <= needed + 1
    with pytest.raises(InvalidInput) as err:  # nothing reported in the window
        plan_route(city, settings, length_m=3000, grid="MC", now=NOW + dt.timedelta(days=400))
    assert err.value.field == "grid" and "lookback" in str(err.value.valid).lower()


def test_hotspot_streets_cut_off_from_the_rest_are_named_so(city: Session) -> None:
    lattice = ([LineString([(7.436, 43.748 + k * 6e-4), (7.439, 43.748 + k * 6e-4)])
                for k in range(6)]
               + [LineString([(7.436 + k * 6e-4, 43.748), (7.436 + k * 6e-4, 43.751)])
                  for k in range(6)])
    lon, lat, _ = PLACES["casino"]
    d = 2e-4
    island = LineString([(lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d),
                         (lon - d, lat + d), (lon - d, lat - d)])
    replace_network(city, "island", edges_from_lines([*lattice, island]), source="test")
    with pytest.raises(InvalidInput) as err:
        plan_route(city, Settings(database_url=NO_DB), length_m=5000, grid="MC",
                   network="island", now=NOW)
    # it said "no street passes within 25 m of the hotspots": one does, on the island
    assert err.value.field == "network" and "not connected" in err.value.message


def test_top_cells_ranks_by_count_then_cell() -> None:
    lon = [7.4276] * 3 + [7.4240] * 3 + [7.4200]
    lat = [43.7396] * 3 + [43.7350] * 3 + [43.7310]
    top = top_cells(lon, lat, resolution=10, top=2)
    cells = sorted([h3.latlng_to_cell(43.7396, 7.4276, 10), h3.latlng_to_cell(43.7350, 7.4240, 10)])
    assert [h.cell for h in top] == cells and [h.incidents for h in top] == [3, 3]


def test_a_team_code_that_looks_like_another_teams_id_names_its_own_team(
        session: Session) -> None:
    write_versions(session, [GridRecord(c, c, "grid", MultiPolygon([box(x, 26.08, x + 0.01,
                                                                        26.09)]))
                             for c, x in (("GA", 119.30), ("GB", 119.31))])
    first = session.execute(text("INSERT INTO team (code, name, kind, grid_code) VALUES "
                                 "('ALPHA', 'a', 'patrol', 'GA') RETURNING id")).scalar_one()
    session.execute(text("INSERT INTO team (code, name, kind, grid_code) VALUES "
                         "(:c, 'b', 'patrol', 'GB')"), {"c": str(first)})
    assert area_of(session, team=str(first))[0] == "GB"  # the team whose code it is
    assert area_of(session, team="ALPHA")[0] == "GA"
