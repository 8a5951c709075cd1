"""Street networks in PostGIS: ``street_network`` (one row each) and ``street_edge``.

A network is written whole: :func:`replace_network` deletes the old edges of that
name and inserts the new ones in the caller's transaction, so a failed import
leaves the previous network in place. Writing the same edges again changes
nothing (the network's fingerprint is compared first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, NotFound
from geo.routes.network import Edge, GraphEdge, fingerprint

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
NAME_VALID = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
#: Edges inserted per statement.
BATCH = 20_000

_INSERT = text("""
INSERT INTO street_edge (network, source, target, length_m, highway, name, osm_way_id, geom)
SELECT :network, u.s, u.t, u.l, u.h, u.n, u.w, ST_SetSRID(ST_GeomFromWKB(u.g), 4326)
  FROM unnest(CAST(:s AS bigint[]), CAST(:t AS bigint[]), CAST(:l AS float8[]),
              CAST(:h AS text[]), CAST(:n AS text[]), CAST(:w AS bigint[]),
              CAST(:g AS bytea[])) AS u(s, t, l, h, n, w, g)
""")


@dataclass
class NetworkInfo:
    """One stored network."""

    name: str
    source: str
    edge_count: int
    node_count: int
    length_m: float
    bbox: list[float] | None
    imported_at: Any
    changed: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "source": self.source, "edges": self.edge_count,
                "nodes": self.node_count, "length_m": round(self.length_m, 1),
                "bbox": self.bbox, "imported_at": str(self.imported_at),
                "changed": self.changed}


def check_name(name: Any) -> str:
    """A valid network name, or InvalidInput naming the field ``network``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidInput(f"network name {name!r} is not valid", field="network", value=name,
                           valid=NAME_VALID)
    return name


def replace_network(session: Session, name: str, edges: Sequence[Edge], *,
                    source: str) -> NetworkInfo:
    """Store ``edges`` as network ``name``, replacing any network of that name.

    Parameters
    ----------
    session : Session
        The caller's transaction (nothing is committed here).
    name : str
        Network name (:data:`NAME_VALID`).
    edges : sequence of Edge
        The network; must not be empty.
    source : str
        Where it came from (a file name, ``"demo grids"``).

    Returns
    -------
    NetworkInfo
        ``changed`` False when the stored network already had exactly these edges.
    """
    check_name(name)
    if not edges:
        raise InvalidInput(f"network {name!r} has no walkable edges", field="edges", value=0,
                           valid="a file or area with at least one walkable street")
    print_ = fingerprint(edges)
    old = session.execute(text("SELECT fingerprint FROM street_network WHERE name = :n"),
                          {"n": name}).scalar()
    if old == print_:
        info = get_network(session, name)
        info.changed = False
        return info
    session.execute(text("DELETE FROM street_network WHERE name = :n"), {"n": name})
    nodes = {e.source for e in edges} | {e.target for e in edges}
    allc = np.concatenate([e.coords for e in edges])
    lo, hi = allc.min(axis=0), allc.max(axis=0)
    extent = shapely.box(lo[0], lo[1], hi[0], hi[1]) if np.all(hi > lo) else None
    session.execute(text("""
        INSERT INTO street_network (name, source, fingerprint, edge_count, node_count, length_m,
                                    extent)
        VALUES (:name, :source, :fp, :edges, :nodes, :length,
                ST_SetSRID(ST_GeomFromText(:extent), 4326))"""),
                    {"name": name, "source": source, "fp": print_, "edges": len(edges),
                     "nodes": len(nodes), "length": float(sum(e.length_m for e in edges)),
                     "extent": extent.wkt if extent is not None else None})
    for at in range(0, len(edges), BATCH):
        chunk = edges[at:at + BATCH]
        wkb = shapely.to_wkb([LineString(e.coords) for e in chunk])
        session.execute(_INSERT, {
            "network": name, "s": [e.source for e in chunk], "t": [e.target for e in chunk],
            "l": [e.length_m for e in chunk], "h": [e.highway for e in chunk],
            "n": [e.name for e in chunk], "w": [e.way_id for e in chunk],
            "g": [bytes(b) for b in wkb]})
    return get_network(session, name)


def _info(row: Any) -> NetworkInfo:
    bbox = None
    if row.xmin is not None:
        bbox = [round(float(v), 7) for v in (row.xmin, row.ymin, row.xmax, row.ymax)]
    return NetworkInfo(name=row.name, source=row.source, edge_count=row.edge_count,
                       node_count=row.node_count, length_m=float(row.length_m), bbox=bbox,
                       imported_at=row.imported_at)


_SELECT_INFO = """SELECT name, source, edge_count, node_count, length_m, imported_at,
                         ST_XMin(extent) AS xmin, ST_YMin(extent) AS ymin,
                         ST_XMax(extent) AS xmax, ST_YMax(extent) AS ymax
                    FROM street_network"""


def get_network(session: Session, name: str) -> NetworkInfo:
    """One network's summary; NotFound when there is none of that name."""
    row = session.execute(text(_SELECT_INFO + " WHERE name = :n"), {"n": name}).first()
    if row is None:
        raise NotFound(f"no street network named {name!r}", field="network", value=name,
                       valid=", ".join(n.name for n in list_networks(session)) or
                       "none yet: `patrolgrid network import PATH.osm.pbf`")
    return _info(row)


def list_networks(session: Session) -> list[NetworkInfo]:
    """Every stored network, by name."""
    return [_info(r) for r in session.execute(text(_SELECT_INFO + " ORDER BY name"))]


def delete_network(session: Session, name: str) -> None:
    """Remove a network and its edges (NotFound when missing)."""
    get_network(session, name)
    session.execute(text("DELETE FROM street_network WHERE name = :n"), {"n": name})


def _degrees(margin_m: float, lat: float) -> float:
    """A margin in degrees at least ``margin_m`` metres in every direction at ``lat``."""
    return margin_m / (111_000.0 * max(math.cos(math.radians(min(abs(lat), 89.0))), 0.01)) + 1e-6


def network_near(session: Session, area_wkb: bytes, margin_m: float, *, lat: float) -> str | None:
    """The network with the most edges within ``margin_m`` of the area (ties: by name)."""
    row = session.execute(text("""
        SELECT network FROM street_edge
         WHERE geom && ST_Expand(ST_GeomFromWKB(:area, 4326), :deg)
           AND ST_DWithin(geom::geography, ST_GeomFromWKB(:area, 4326)::geography, :margin)
         GROUP BY network ORDER BY count(*) DESC, network LIMIT 1"""),
                          {"area": area_wkb, "deg": _degrees(margin_m, lat), "margin": margin_m})
    first = row.first()
    return None if first is None else str(first[0])


def edges_near(session: Session, network: str, area_wkb: bytes, margin_m: float, *,
               lat: float) -> list[GraphEdge]:
    """The edges of ``network`` within ``margin_m`` metres of the area, for a graph."""
    rows = session.execute(text("""
        SELECT id, source, target, length_m, ST_AsBinary(geom) AS wkb FROM street_edge
         WHERE network = :network
           AND geom && ST_Expand(ST_GeomFromWKB(:area, 4326), :deg)
           AND ST_DWithin(geom::geography, ST_GeomFromWKB(:area, 4326)::geography, :margin)
         ORDER BY id"""), {"network": network, "area": area_wkb,
                           "deg": _degrees(margin_m, lat), "margin": margin_m}).all()
    if not rows:
        return []
    lines = shapely.from_wkb([bytes(r.wkb) for r in rows])
    return [GraphEdge(edge_id=int(r.id), source=int(r.source), target=int(r.target),
                      length_m=float(r.length_m),
                      coords=np.asarray(shapely.get_coordinates(line), dtype=float))
            for r, line in zip(rows, lines, strict=True)]


def grid_boundaries(session: Session, *, level: str) -> list[Any]:
    """The boundaries (shapely lines, WGS-84) of the current grids of ``level``, by code."""
    rows = session.execute(text("""
        SELECT ST_AsBinary(ST_Boundary(geom)) FROM grid
         WHERE valid_to IS NULL AND level = :level ORDER BY code"""), {"level": level}).all()
    if not rows:
        raise InvalidInput(f"there are no current grids of level {level!r}", field="level",
                           value=level, valid="a level that has current grids (street, "
                                              "community, grid, ...)")
    return list(shapely.from_wkb([bytes(r[0]) for r in rows]))
