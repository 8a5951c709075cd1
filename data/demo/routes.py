"""Demo street network and patrol routes.

There is no OpenStreetMap extract of Fuzhou in the project, so the demo city's
*network* (``demo``) is made of its own grid boundaries taken as streets (every
community and street boundary is a grid boundary too). A real extract replaces it
for planning with ``patrolgrid network import fuzhou.osm.pbf`` (the planner picks the
network with the most streets near the grid, or the one named).

Each patrol team (``T<street>-PATROL``) gets one route, ``R<team code>``, claimed on
its street: a closed loop of at most :data:`BUDGET_M` metres on the demo network,
inside the street, planned by ``geo.routes.loop`` through

- the street's incident hotspots (top H3 cells over the 90 days before the street's
  latest incident) when the database has incidents there, and
- the network nodes nearest to the street's communities (a loop along community
  boundaries),

starting at the top hotspot (or the first community). Routes are scheduled for the
morning and evening patrols (:data:`SCHEDULE`) and written through the same checks as
an import, so a second load with the same data changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.city import City
from geo.routes.hotspots import top_cells
from geo.routes.loop import Target, plan_loop
from geo.routes.network import Edge, GraphEdge, MetricFrame, StreetGraph, edges_from_lines
from geo.routes.plan import target_nodes
from geo.routes.validate import RouteIn
from geo.settings import Settings
from geo.store.network import replace_network
from geo.store.routes import UpsertCounts, incident_points, upsert_routes

NETWORK = "demo"
#: Length budget of a demo route (m).
BUDGET_M = 5_000.0
SCHEDULE = [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "12:00"},
            {"days": [0, 1, 2, 3, 4, 5, 6], "start": "19:00", "end": "22:00"}]
#: Defaults of the hotspot rules (the demo does not read the environment).
DEFAULTS = Settings.model_construct()


@dataclass
class DemoRoutes:
    """What :func:`load_demo_routes` wrote."""

    network_changed: bool = False
    edges: int = 0
    routes: UpsertCounts = field(default_factory=lambda: UpsertCounts([], [], []))
    skipped: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Counts for the CLI."""
        return {"network_changed": self.network_changed, "edges": self.edges,
                "routes": self.routes.as_dict(), "skipped": self.skipped}

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return self.network_changed or bool(self.routes.created or self.routes.updated)


def demo_edges(city: City) -> list[Edge]:
    """The demo network: the grid boundaries of the city, noded at every junction."""
    return edges_from_lines([g.geom.boundary for g in city.grids], highway="grid_boundary")


def _street_graph(edges: list[Edge], street: Any) -> StreetGraph:
    area = street.buffer(1e-6)
    lines = [shapely.LineString(e.coords) for e in edges]
    inside = shapely.covers(area, lines)
    return StreetGraph(GraphEdge(edge_id=i, source=e.source, target=e.target,
                                 length_m=e.length_m, coords=e.coords)
                       for i, (e, ok) in enumerate(zip(edges, inside, strict=True)) if ok
                       ).largest_component()


def _hotspot_targets(session: Session, street: Any, graph: StreetGraph,
                     frame: MetricFrame) -> list[Target]:
    wkb = shapely.to_wkb(street)
    latest = session.execute(text("""
        SELECT max(reported_at) FROM incident
         WHERE status NOT IN ('duplicate', 'rejected')
           AND ST_Covers(ST_GeomFromWKB(:area, 4326), geom)"""), {"area": wkb}).scalar()
    if latest is None:
        return []
    until = latest + dt.timedelta(seconds=1)
    lon, lat = incident_points(session, wkb, since=until - dt.timedelta(
        days=DEFAULTS.hotspot_lookback_days), until=until)
    hotspots = top_cells(lon, lat, resolution=DEFAULTS.hotspot_resolution,
                         top=DEFAULTS.hotspot_top)
    nodes = target_nodes(graph, frame, [(h.cell, h.polygon()) for h in hotspots],
                         DEFAULTS.hotspot_reach_m)
    return [Target(key=h.cell, node=nodes[h.cell], weight=h.incidents)
            for h in hotspots if h.cell in nodes]


def _community_targets(city: City, street_code: str, graph: StreetGraph,
                       frame: MetricFrame) -> list[Target]:
    ids, lonlat = graph.nodes_array()
    x, y = frame.xy(lonlat[:, 0], lonlat[:, 1])
    out = []
    for community in city.communities:
        if community.parent_code != street_code:
            continue
        rep = community.geom.representative_point()
        px, py = frame.xy([rep.x], [rep.y])
        k = int(((x - px[0]) ** 2 + (y - py[0]) ** 2).argmin())
        out.append(Target(key=community.code, node=int(ids[k])))
    return out


def demo_route(session: Session, city: City, edges: list[Edge], team_code: str,
               street_code: str) -> tuple[RouteIn | None, str]:
    """The planned route of one patrol team (None when no loop fits), and its target kind."""
    street = next(s for s in city.streets if s.code == street_code)
    graph = _street_graph(edges, street.geom)
    if len(graph) < 2:
        return None, "none"
    rep = street.geom.representative_point()
    frame = MetricFrame(rep.x, rep.y)
    hotspots = _hotspot_targets(session, street.geom, graph, frame)
    targets = hotspots + _community_targets(city, street_code, graph, frame)
    kind = "hotspots+communities" if hotspots else "communities"
    if not targets:
        return None, kind
    loop = plan_loop(graph, targets[0].node, targets, BUDGET_M)
    if len(loop.nodes) < 3:
        return None, kind
    geom = shapely.MultiLineString([loop.coords])
    return RouteIn(name=f"{street.name}巡防路线", geom=geom, grid_codes=[street_code],
                   code=f"R{team_code}", team=team_code, schedule=SCHEDULE,
                   attrs={"source": "demo", "targets": kind,
                          "targets_visited": len(loop.targeted)}), kind


def load_demo_routes(session: Session, city: City) -> DemoRoutes:
    """Store the demo network and a planned route for every demo patrol team."""
    report = DemoRoutes()
    edges = demo_edges(city)
    report.edges = len(edges)
    info = replace_network(session, NETWORK, edges, source="demo grid boundaries")
    report.network_changed = info.changed
    teams = session.execute(text("""
        SELECT code, grid_code FROM team
         WHERE kind = 'patrol' AND code LIKE 'T%-PATROL' AND grid_code = ANY(:streets)
         ORDER BY code"""), {"streets": [s.code for s in city.streets]}).all()
    routes = []
    for team_code, street_code in teams:
        route, kind = demo_route(session, city, edges, team_code, street_code)
        report.targets[team_code] = kind
        if route is None:
            report.skipped.append(team_code)
        else:
            routes.append(route)
    report.routes = upsert_routes(session, routes, tolerance_m=DEFAULTS.route_tolerance_m)
    return report
