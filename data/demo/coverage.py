"""Turn the finest cells of a hierarchy into an exact, rounded coverage.

The leaf cells (grids), built in floating point, are rounded together: their
boundaries are noded and snap-rounded onto a grid of ``grid_size`` degrees
(``shapely.union_all(..., grid_size=...)``) and polygonized into *faces*. Each
face belongs to the leaf that overlaps it most. Every leaf, and every ancestor
(community, street), is then the union of its faces, so neighbours share their
edges vertex for vertex, children add up exactly to their parent, and nothing
overlaps. Stray faces (a piece of a leaf cut off from the rest, at any level)
are handed to the neighbour, under the same parent, that shares the longest
border with them, so that every street, community and grid is one polygon.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

#: Rounding of the final coordinates, in degrees (about 1 cm).
GRID_SIZE = 1e-7


def _faces(leaves: Sequence[BaseGeometry], grid_size: float) -> list[Polygon]:
    lines = shapely.union_all([shapely.boundary(g) for g in leaves], grid_size=grid_size)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    return [f for f in faces if isinstance(f, Polygon) and f.area > 0]


def _owners(faces: Sequence[Polygon], leaves: Sequence[BaseGeometry]) -> list[int]:
    tree = shapely.STRtree(leaves)
    owners = []
    for face in faces:
        candidates = tree.query(face)
        overlap = [(float(shapely.intersection(face, leaves[i]).area), -int(i)) for i in candidates]
        best = max(overlap, default=(0.0, 0))
        if best[0] > 0:
            owners.append(-best[1])
        else:
            owners.append(int(tree.nearest(face.representative_point())))
    return owners


def _adjacency(faces: Sequence[Polygon]) -> list[dict[int, float]]:
    tree = shapely.STRtree(faces)
    left, right = tree.query(faces, predicate="intersects")
    adj: list[dict[int, float]] = [{} for _ in faces]
    boundaries = shapely.boundary(np.asarray(faces, dtype=object))
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        length = float(shapely.intersection(boundaries[i], boundaries[j]).length)
        if length > 0:
            adj[i][j] = length
            adj[j][i] = length
    return adj


def _components(members: list[int], adj: list[dict[int, float]]) -> list[list[int]]:
    inside = set(members)
    seen: set[int] = set()
    out = []
    for start in members:
        if start in seen:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            i = stack.pop()
            comp.append(i)
            for j in adj[i]:
                if j in inside and j not in seen:
                    seen.add(j)
                    stack.append(j)
        out.append(sorted(comp))
    return out


def _repair_level(owner: list[str], areas: np.ndarray, adj: list[dict[int, float]],
                  label: Callable[[str], str], group: Callable[[str], str | None]) -> int:
    """Give the stray face components of each ``label`` to a leaf of the same ``group``."""
    moves = 0
    for _ in range(len(owner) + 1):
        by_label: dict[str, list[int]] = defaultdict(list)
        for i, leaf in enumerate(owner):
            by_label[label(leaf)].append(i)
        moved = False
        for name in sorted(by_label):
            comps = _components(by_label[name], adj)
            if len(comps) <= 1:
                continue
            comps.sort(key=lambda c: (-float(areas[c].sum()), c[0]))
            for comp in comps[1:]:
                border: dict[str, float] = defaultdict(float)
                for i in comp:
                    for j, length in adj[i].items():
                        other = owner[j]
                        if label(other) != name and group(other) == group(owner[i]):
                            border[other] += length
                if not border:
                    continue
                target = min(border, key=lambda leaf: (-border[leaf], leaf))
                for i in comp:
                    owner[i] = target
                moves += 1
                moved = True
            if moved:
                break
        if not moved:
            return moves
    return moves


def exact_coverage(leaves: Mapping[str, BaseGeometry], parent_of: Mapping[str, str | None], *,
                   grid_size: float = GRID_SIZE) -> tuple[dict[str, BaseGeometry], int]:
    """Round a hierarchy of cells into an exact coverage.

    Parameters
    ----------
    leaves : mapping of code to geometry
        The finest cells (in degrees), which together tile the whole area.
    parent_of : mapping of code to parent code
        For every leaf and every ancestor; the top level maps to ``None``.
    grid_size : float
        Coordinates are snap-rounded to multiples of this (degrees).

    Returns
    -------
    (dict of code to Polygon, int)
        The geometry of every leaf and ancestor, and how many stray pieces moved.
    """
    codes = sorted(leaves)
    geoms = [leaves[c] for c in codes]
    faces = _faces(geoms, grid_size)
    owner = [codes[i] for i in _owners(faces, geoms)]
    areas = np.array([f.area for f in faces])
    adj = _adjacency(faces)

    def chain(code: str) -> list[str]:
        out = [code]
        while parent_of.get(out[-1]) is not None:
            out.append(str(parent_of[out[-1]]))
        return out[::-1]  # coarsest first

    depth = max(len(chain(c)) for c in codes)
    moves = 0
    for level in range(depth):
        def label(leaf: str, level: int = level) -> str:
            path = chain(leaf)
            return path[min(level, len(path) - 1)]

        def group(leaf: str, level: int = level) -> str | None:
            path = chain(leaf)
            return path[level - 1] if 0 < level < len(path) else None

        moves += _repair_level(owner, areas, adj, label, group)

    members: dict[str, list[int]] = defaultdict(list)
    for i, leaf in enumerate(owner):
        for code in chain(leaf):
            members[code].append(i)
    out = {code: shapely.union_all([faces[i] for i in idx], grid_size=grid_size)
           for code, idx in members.items()}
    return out, moves
