"""Planning a closed patrol loop through as many target nodes as a length budget allows.

An orienteering heuristic, deterministic and pure:

1. Shortest-path distances (Dijkstra on edge lengths) between the start and every
   target node whose round trip from the start fits the budget.
2. Cheapest insertion: repeatedly insert the target whose insertion into the tour
   adds the least length per hotspot gained (ties: more incidents, then the key),
   while the tour stays within the budget.
3. 2-opt: reverse tour segments while that shortens the tour, then go back to 2
   (the length saved may let more targets in); stop when nothing changes.
4. The tour is expanded into the walk along the streets; it starts and ends at
   the start node. A street may be walked twice when the network forces it
   (a dead end). When only the start's own targets fit, the walk is the shortest
   round from the start within the budget (round the block, else out and back
   along its shortest street), so a hotspot at the start still gets a patrol.

Cheapest insertion keeps every partial tour within twice the optimal tour of the
targets it holds, so a budget of twice the optimal tour through every target
visits them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from geo.routes.network import Coords, StreetGraph

_EPS = 1e-9


@dataclass(frozen=True)
class Target:
    """A place to visit: ``key`` (e.g. an H3 cell), the node that reaches it, its weight."""

    key: str
    node: int
    weight: float = 1.0


@dataclass
class Loop:
    """A planned closed walk: ``nodes[0] == nodes[-1]`` is the start."""

    nodes: list[int]
    coords: Coords
    length_m: float
    targeted: list[str] = field(default_factory=list)
    #: The shortest round trip (m) from the start to a target that did not fit, if any.
    cheapest_missed_m: float | None = None


@dataclass
class _Stop:
    node: int
    keys: list[str]
    weight: float


def _stops(targets: Sequence[Target]) -> dict[int, _Stop]:
    out: dict[int, _Stop] = {}
    for t in sorted(targets, key=lambda t: (t.node, t.key)):
        stop = out.setdefault(t.node, _Stop(node=t.node, keys=[], weight=0.0))
        stop.keys.append(t.key)
        stop.weight += t.weight
    return out


def _tour_length(tour: Sequence[int], dist: NDArray[np.float64]) -> float:
    return float(sum(dist[tour[i], tour[(i + 1) % len(tour)]] for i in range(len(tour))))


def _two_opt(tour: list[int], dist: NDArray[np.float64]) -> bool:
    """Improve ``tour`` (index 0 fixed) in place; True when it changed."""
    changed, improved = False, True
    n = len(tour)
    while improved and n >= 4:
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b = tour[i - 1], tour[i]
                c, d = tour[j], tour[(j + 1) % n]
                delta = dist[a, c] + dist[b, d] - dist[a, b] - dist[c, d]
                if delta < -1e-6:
                    tour[i:j + 1] = tour[i:j + 1][::-1]
                    improved = changed = True
    return changed


def _insert_all(tour: list[int], left: list[int], dist: NDArray[np.float64],
                stops: Sequence[_Stop], budget: float) -> bool:
    """Cheapest insertion of the ``left`` stop indices into ``tour`` while within budget."""
    inserted = False
    length = _tour_length(tour, dist)
    while left:
        a = np.array(tour)
        b = np.roll(a, -1)
        cand = np.array(left)
        added = dist[np.ix_(a, cand)] + dist[np.ix_(cand, b)].T - dist[a, b][:, None]
        pos = np.argmin(added, axis=0)  # best position per candidate (first on ties)
        cost = added[pos, np.arange(len(cand))]
        gain = np.array([len(stops[c].keys) for c in left], dtype=float)
        order = sorted(range(len(cand)), key=lambda k: (
            cost[k] / gain[k], -stops[left[k]].weight, stops[left[k]].keys[0]))
        best = order[0]
        if not np.isfinite(cost[best]) or length + cost[best] > budget + _EPS:
            break
        tour.insert(int(pos[best]) + 1, int(cand[best]))
        length += float(cost[best])
        left.remove(int(cand[best]))
        inserted = True
    return inserted


def plan_loop(graph: StreetGraph, start: int, targets: Sequence[Target],
              budget_m: float) -> Loop:
    """A closed walk from ``start`` through as many ``targets`` as ``budget_m`` allows.

    Parameters
    ----------
    graph : StreetGraph
        The walkable network (edge attribute ``length`` in metres).
    start : int
        Start and end node.
    targets : sequence of Target
        Nodes to visit; several targets on one node are visited together. Targets
        not in ``graph`` are ignored.
    budget_m : float
        Largest length of the walk (m).

    Returns
    -------
    Loop
        ``nodes == [start]`` and length 0 when no target fits and no round from the
        start does either (a target on the start node is always visited).
    """
    g = graph.graph
    stops_by_node = _stops([t for t in targets if t.node in g])
    from_start = nx.single_source_dijkstra_path_length(g, start, weight="length")
    reachable = [n for n in sorted(stops_by_node)
                 if n != start and n in from_start and 2 * from_start[n] <= budget_m + _EPS]
    missed = [2 * from_start[n] for n in sorted(stops_by_node)
              if n in from_start and 2 * from_start[n] > budget_m + _EPS]
    nodes = [start, *reachable]
    stops = [stops_by_node.get(start, _Stop(start, [], 0.0))] + [stops_by_node[n]
                                                                for n in reachable]
    dist = np.full((len(nodes), len(nodes)), np.inf)
    preds: list[dict[int, list[int]]] = []
    for i, src in enumerate(nodes):
        cutoff = budget_m - (from_start[src] if i else 0.0)
        pred, d = nx.dijkstra_predecessor_and_distance(g, src, cutoff=cutoff, weight="length")
        preds.append(pred)
        dist[i] = [d.get(n, np.inf) for n in nodes]
    dist = np.minimum(dist, dist.T)
    tour = [0]
    left = list(range(1, len(nodes)))
    while _insert_all(tour, left, dist, stops, budget_m) and _two_opt(tour, dist):
        pass
    walk = [start]
    for i in range(len(tour)):
        a, b = tour[i], tour[(i + 1) % len(tour)]
        walk += _path(preds, nodes, a, b)[1:]
    cheapest = [2 * from_start[nodes[i]] for i in left]
    cheapest_missed = min([*cheapest, *missed], default=None)
    if len(walk) == 1 and stops[0].keys:  # only the start's own hotspots: walk round them
        walk, need = _round(g, start, budget_m)
        if len(walk) == 1:
            cheapest_missed = min(need, cheapest_missed or np.inf)
    length = graph.walk_length(walk)
    targeted = sorted(k for i in tour for k in stops[i].keys)
    return Loop(nodes=walk, coords=graph.walk_coords(walk), length_m=length, targeted=targeted,
                cheapest_missed_m=cheapest_missed)


def _round(g: nx.Graph, start: int, budget_m: float) -> tuple[list[int], float]:
    """A closed walk leaving ``start`` within ``budget_m`` and its length: the shortest cycle
    through it (round the block), else out and back along its shortest street; ``[start]``
    and the length the shorter of the two would need when neither fits."""
    cycle: tuple[float, list[int]] = (np.inf, [start])
    back: tuple[float, list[int]] = (np.inf, [start])
    for n in sorted(g.neighbors(start)):
        w = float(g.edges[start, n]["length"])
        back = min(back, (2 * w, [start, n, start]))
        view = nx.restricted_view(g, [], [(start, n)])
        try:
            rest, path = nx.single_source_dijkstra(view, n, start, cutoff=budget_m - w,
                                                   weight="length")
        except nx.NetworkXNoPath:
            continue
        cycle = min(cycle, (w + float(rest), [start, *path]))
    for length, walk in (cycle, back):
        if length <= budget_m + _EPS:
            return walk, length
    return [start], min(cycle[0], back[0])


def _path(preds: list[dict[int, list[int]]], nodes: list[int], a: int, b: int) -> list[int]:
    """Nodes of the shortest path from ``nodes[a]`` to ``nodes[b]`` (both ends included)."""
    if a == b:
        return [nodes[a]]
    src, dst = (a, b) if nodes[b] in preds[a] else (b, a)
    pred = preds[src]
    path = [nodes[dst]]
    while path[-1] != nodes[src]:
        path.append(pred[path[-1]][0])
    path.reverse()
    return path if src == a else path[::-1]
