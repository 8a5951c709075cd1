"""Route planning against the database: a grid (or a team's grid), its incident hotspots,
the street network around it, and a closed loop through as many hotspots as the budget
allows (``geo.routes.loop``).

Rules
-----
- Hotspots: the ``hotspot_top`` H3 cells (resolution ``hotspot_resolution``) with the
  most incidents inside the grid reported in the ``hotspot_lookback_days`` before
  ``now`` (duplicates and rejected reports excluded).
- Network: the stored network with the most edges near the grid (or the one named);
  the planner may walk streets up to ``margin_m`` (default ``plan_margin_m``) outside
  the grid, and uses the largest connected part of them.
- A hotspot is reached through the network node nearest its cell centre among the
  nodes within ``hotspot_reach_m`` of the cell; it counts as *visited* when the
  planned line passes within ``hotspot_reach_m`` of the cell (measured in metres in
  the local UTM zone).
- Start: the given point snapped to the nearest node (refused beyond ``plan_snap_m``);
  by default the node that reaches the top hotspot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString

from geo.errors import InvalidInput, NotFound
from geo.routes.hotspots import Hotspot, top_cells
from geo.routes.loop import Loop, Target, plan_loop
from geo.routes.network import MetricFrame, StreetGraph
from geo.settings import MARGIN_MAX_M, Settings
from geo.store import network as network_store
from geo.store import routes as route_store


@dataclass
class PlannedRoute:
    """A planned loop and what it visits."""

    grid: str
    network: str
    budget_m: float
    loop: Loop
    start: tuple[float, float]
    hotspots: list[Hotspot]
    visited: list[str]
    since: dt.datetime
    until: dt.datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def feature(self) -> dict[str, Any]:
        """The loop as a GeoJSON Feature (LineString, first vertex == last vertex)."""
        seen = set(self.visited)
        coords = [[round(float(x), 7), round(float(y), 7)] for x, y in self.loop.coords]
        return {"type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {
                    "grid": self.grid, "network": self.network,
                    "length_m": round(self.loop.length_m, 1), "budget_m": self.budget_m,
                    "closed": bool(coords and coords[0] == coords[-1]),
                    "start": [round(self.start[0], 7), round(self.start[1], 7)],
                    "hotspots_visited": len(self.visited),
                    "hotspots_total": len(self.hotspots),
                    "incidents_visited": sum(h.incidents for h in self.hotspots
                                             if h.cell in seen),
                    "hotspots": [{**h.as_dict(), "visited": h.cell in seen}
                                 for h in self.hotspots],
                    "lookback": {"from": self.since.isoformat(), "to": self.until.isoformat()},
                    **self.extra}}


def check_budget(length_m: Any, settings: Settings) -> float:
    """The length budget as a float, or InvalidInput naming ``length_m``."""
    valid = f"a length in metres above 0 and at most {settings.plan_max_length_m:g}"
    if (isinstance(length_m, bool) or not isinstance(length_m, int | float)
            or not 0 < float(length_m) <= settings.plan_max_length_m):
        raise InvalidInput(f"length_m {length_m!r} is not a usable budget", field="length_m",
                           value=length_m, valid=valid)
    return float(length_m)


def target_nodes(graph: StreetGraph, frame: MetricFrame, cells: Sequence[tuple[str, Any]],
                 reach_m: float) -> dict[str, int]:
    """For each (key, lon/lat polygon): the node nearest its centre within ``reach_m``."""
    ids, lonlat = graph.nodes_array()
    if not len(ids) or not cells:
        return {}
    x, y = frame.xy(lonlat[:, 0], lonlat[:, 1])
    points = np.asarray(shapely.points(x, y), dtype=object)
    tree = shapely.STRtree(points)
    out: dict[str, int] = {}
    for key, polygon in cells:
        metric = frame.to_metric(polygon)
        near = tree.query(metric, predicate="dwithin", distance=reach_m)
        if len(near):
            centre = metric.centroid
            d = shapely.distance(points[near], centre)
            order = np.lexsort((ids[near], d))
            out[key] = int(ids[near][order[0]])
    return out


def nearest_node(graph: StreetGraph, frame: MetricFrame, lon: float,
                 lat: float) -> tuple[int, float]:
    """The node nearest (lon, lat) and its distance in metres."""
    ids, lonlat = graph.nodes_array()
    x, y = frame.xy(lonlat[:, 0], lonlat[:, 1])
    px, py = frame.xy([lon], [lat])
    d = np.hypot(x - px[0], y - py[0])
    k = int(np.lexsort((ids, d))[0])
    return int(ids[k]), float(d[k])


def visited_cells(coords: np.ndarray, frame: MetricFrame, hotspots: Sequence[Hotspot],
                  reach_m: float) -> list[str]:
    """The hotspot cells the line passes within ``reach_m`` of."""
    if len(coords) < 2:
        return []
    line = frame.to_metric(LineString(coords))
    return sorted(h.cell for h in hotspots
                  if shapely.distance(line, frame.to_metric(h.polygon())) <= reach_m + 1e-6)


def load_graph(session: Any, area_wkb: bytes, *, network: str | None, margin_m: float,
               grid: str) -> tuple[str, StreetGraph, StreetGraph, MetricFrame]:
    """The network near the area as a graph, its largest connected part (where loops are
    planned) and a metric frame."""
    area = shapely.from_wkb(area_wkb)
    rep = area.representative_point()
    frame = MetricFrame(rep.x, rep.y)
    if network is None:
        network = network_store.network_near(session, area_wkb, margin_m, lat=rep.y)
        if network is None:
            raise InvalidInput(f"no street network within {margin_m:g} m of grid {grid!r}",
                               field="grid", value=grid,
                               valid="a grid with streets: load them with `patrolgrid network "
                                     "import PATH.osm.pbf` (or `network derive`)")
    else:
        try:
            network_store.get_network(session, network_store.check_name(network))
        except NotFound as exc:
            raise InvalidInput(exc.message, field="network", value=network,
                               valid=str(exc.valid)) from exc
    edges = network_store.edges_near(session, network, area_wkb, margin_m, lat=rep.y)
    whole = StreetGraph(edges)
    graph = whole.largest_component()
    if len(graph) < 2:
        raise InvalidInput(f"network {network!r} has no streets within {margin_m:g} m of grid "
                           f"{grid!r}", field="network", value=network,
                           valid="a network that covers the grid")
    return network, whole, graph, frame


def plan_route(session: Any, settings: Settings, *, length_m: Any, grid: str | None = None,
               team: str | int | None = None, start: tuple[float, float] | None = None,
               network: str | None = None, margin_m: float | None = None,
               now: dt.datetime | None = None) -> PlannedRoute:
    """Plan a closed walking loop for a grid (or a team's grid) through its hotspots.

    Parameters
    ----------
    session : Session
        Read-only use of the database.
    settings : Settings
        Hotspot, reach, margin, snap and budget settings.
    length_m : float
        Length budget of the loop (m).
    grid, team : str, optional
        Exactly one: a current grid code, or a team (code or id) whose grid is used.
    start : (lon, lat), optional
        WGS-84 start point; default: the node that reaches the top hotspot.
    network : str, optional
        The network to plan on (default: the one with most edges near the grid).
    margin_m : float, optional
        How far outside the grid streets may be used (default ``plan_margin_m``).
    now : datetime, optional
        End of the hotspot look-back window (default: now).

    Raises
    ------
    InvalidInput
        Unknown grid/team/network, a bad budget, a start too far from the streets, no
        hotspot in the window, or a budget too short to reach any hotspot (with the
        budget that would).
    """
    budget = check_budget(length_m, settings)
    margin = settings.plan_margin_m if margin_m is None else float(margin_m)
    if not 0 <= margin <= MARGIN_MAX_M:  # NaN included
        raise InvalidInput(f"margin_m {margin_m!r} is not a distance the planner can use",
                           field="margin_m", value=margin_m,
                           valid=f"metres from 0 to {MARGIN_MAX_M:g}")
    code, area_wkb = route_store.area_of(session, grid=grid, team=team)
    until = now or dt.datetime.now(dt.UTC)
    since = until - dt.timedelta(days=settings.hotspot_lookback_days)
    lon, lat = route_store.incident_points(session, area_wkb, since=since, until=until)
    hotspots = top_cells(lon, lat, resolution=settings.hotspot_resolution,
                         top=settings.hotspot_top)
    if not hotspots:
        raise InvalidInput(
            f"grid {code!r} had no incidents from {since:%Y-%m-%d} to {until:%Y-%m-%d}: "
            "no hotspot to plan for", field="grid", value=code,
            valid=f"a grid with incidents in the last {settings.hotspot_lookback_days:g} days "
                  "(PATROLGRID_HOTSPOT_LOOKBACK_DAYS)")
    name, whole, graph, frame = load_graph(session, area_wkb, network=network,
                                           margin_m=margin, grid=code)
    cells = [(h.cell, h.polygon()) for h in hotspots]
    nodes = target_nodes(graph, frame, cells, settings.hotspot_reach_m)
    targets = [Target(key=h.cell, node=nodes[h.cell], weight=h.incidents)
               for h in hotspots if h.cell in nodes]
    if not targets and target_nodes(whole, frame, cells, settings.hotspot_reach_m):
        raise InvalidInput(
            f"the streets of network {name!r} near the hotspots of grid {code!r} are not "
            f"connected to its largest part near the grid ({graph.graph.number_of_edges()} "
            f"of {whole.graph.number_of_edges()} streets), where loops are planned",
            field="network", value=name,
            valid="a network whose streets near the grid are connected (import the missing "
                  "streets, or a wider margin_m to reach the links between them)")
    if not targets:
        raise InvalidInput(f"no street of network {name!r} passes within "
                           f"{settings.hotspot_reach_m:g} m of the hotspots of grid {code!r}",
                           field="grid", value=code,
                           valid="a grid whose hotspots are near streets of the network")
    off = 0.0
    if start is not None:
        start_node, off = nearest_node(graph, frame, *start)
        if off > settings.plan_snap_m:
            swapped = abs(start[0]) <= 90 and nearest_node(
                graph, frame, start[1], start[0])[1] <= settings.plan_snap_m
            hint = " (lon and lat look swapped: send (lon, lat))" if swapped else ""
            raise InvalidInput(f"start is {off:.0f} m from the nearest street usable for grid "
                               f"{code!r}{hint}", field="start", value=list(start),
                               valid=f"a point within {settings.plan_snap_m:g} m of a street "
                                     f"within {margin:g} m of the grid")
    else:
        start_node = targets[0].node
    loop = plan_loop(graph, start_node, targets, budget)
    if len(loop.nodes) < 2:
        need = loop.cheapest_missed_m
        raise InvalidInput(
            f"a budget of {budget:g} m makes no loop through a hotspot of grid {code!r} "
            "from the start",
            field="length_m", value=length_m,
            valid=f"length_m >= {np.ceil(need or 0):.0f} (the shortest round trip to a "
                  "hotspot)" if need else "a start nearer the hotspots")
    visited = visited_cells(loop.coords, frame, hotspots, settings.hotspot_reach_m)
    start_xy = graph.node_lonlat[start_node]
    return PlannedRoute(grid=code, network=name, budget_m=budget, loop=loop, start=start_xy,
                        hotspots=hotspots, visited=visited, since=since, until=until,
                        extra={"reach_m": settings.hotspot_reach_m, "margin_m": margin,
                               "start_snapped_m": round(off, 1)})

