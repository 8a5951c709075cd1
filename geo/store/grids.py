"""Writing grid versions. A grid code has at most one current version (``valid_to`` NULL);
writing a changed grid closes the current version and opens a new one, so the
history of every boundary stays queryable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput
from geo.store.grid_lock import lock_exclusive

#: Depth of the well-known levels, coarsest first; other levels sit one below their parent.
LEVEL_DEPTH: dict[str, int] = {
    "district": 0, "street": 1, "community": 2, "grid": 3, "compound": 4, "building": 5,
}


@dataclass
class GridRecord:
    """One grid as an importer or the demo builder hands it to the store (WGS-84)."""

    code: str
    name: str
    level: str
    geom: BaseGeometry
    parent_code: str | None = None
    population: int | None = None
    households: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: Of ``population``, ``households`` and ``attrs``: those the source does not give, so
    #: that a new version keeps the current one's (an import of a file without the column).
    kept: tuple[str, ...] = ()


@dataclass
class WriteCounts:
    """What a write did: new codes, new versions of existing codes, and untouched codes."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """Counts only, for reports."""
        return {"created": len(self.created), "updated": len(self.updated),
                "unchanged": len(self.unchanged)}


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """The polygonal part of ``geom`` as a MultiPolygon (lines and points are dropped)."""
    if isinstance(geom, MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in shapely.get_parts(geom):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon | GeometryCollection):
            polys.extend(as_multipolygon(part).geoms)
    return MultiPolygon(polys)


def _current(session: Session, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not codes:
        return {}
    rows = session.execute(
        text("""SELECT id, code, version, name, level, depth, parent_code, population,
                       households, attrs, ST_AsBinary(geom) AS wkb
                  FROM grid WHERE valid_to IS NULL AND code IN :codes""")
        .bindparams(bindparam("codes", expanding=True)),
        {"codes": list(codes)},
    ).mappings()
    return {r["code"]: dict(r) for r in rows}


def last_versions(session: Session, codes: Sequence[str]) -> dict[str, int]:
    """The last version of each of ``codes`` that has only closed versions (a retired grid
    imported again continues its numbering)."""
    if not codes:
        return {}
    rows = session.execute(text("SELECT code, max(version) AS v FROM grid WHERE code IN :codes "
                                "GROUP BY code").bindparams(bindparam("codes", expanding=True)),
                           {"codes": list(codes)})
    return {r.code: int(r.v) for r in rows}


def _same(record: GridRecord, row: dict[str, Any]) -> bool:
    if (record.name, record.level, record.parent_code, record.population, record.households,
            record.attrs or {}) != (row["name"], row["level"], row["parent_code"],
                                    row["population"], row["households"], row["attrs"] or {}):
        return False
    old = shapely.from_wkb(bytes(row["wkb"]))
    return bool(shapely.equals_exact(shapely.normalize(old),
                                     shapely.normalize(as_multipolygon(record.geom)), 1e-9))


def _depths(session: Session, records: Sequence[GridRecord]) -> dict[str, int]:
    by_code = {r.code: r for r in records}
    parents = {r.parent_code for r in records if r.parent_code and r.parent_code not in by_code}
    known = {code: row["depth"] for code, row in _current(session, sorted(parents)).items()}
    missing = sorted(parents - known.keys())
    if missing:
        raise InvalidInput(
            f"parent code {missing[0]!r} is neither a current grid nor in this import",
            field="parent", value=missing[0], valid="the code of a current grid or of a grid "
            "in the same import", extra={"unknown_parents": missing})
    depths: dict[str, int] = {}

    def depth(code: str, seen: frozenset[str] = frozenset()) -> int:
        if code in depths:
            return depths[code]
        if code in known:
            return int(known[code])
        if code in seen:
            raise InvalidInput(f"grid {code!r} is its own ancestor", field="parent", value=code,
                               valid="a parent chain without cycles")
        rec = by_code[code]
        if rec.level in LEVEL_DEPTH:
            value = LEVEL_DEPTH[rec.level]
        elif rec.parent_code:
            value = depth(rec.parent_code, seen | {code}) + 1
        else:
            value = 0
        depths[code] = value
        return value

    for rec in records:
        depth(rec.code)
    for rec in records:
        if rec.parent_code and depths[rec.code] <= depth(rec.parent_code):
            raise InvalidInput(
                f"grid {rec.code!r} ({rec.level}, depth {depths[rec.code]}) is not finer than "
                f"its parent {rec.parent_code!r} (depth {depth(rec.parent_code)})",
                field="parent", value=rec.parent_code,
                valid="a parent of a coarser level (district > street > community > grid > "
                      "finer levels)")
    _check_children(session, depths)
    return depths


_CHILDREN = text("""SELECT code, parent_code, depth FROM grid
                     WHERE valid_to IS NULL AND parent_code IN :codes AND code NOT IN :codes
                     ORDER BY code""").bindparams(bindparam("codes", expanding=True))


def _check_children(session: Session, depths: dict[str, int]) -> None:
    """Current grids left out of the import must stay finer than their parent in it (a
    parent moved to a deeper level would otherwise be taken for the finest grid)."""
    if not depths:
        return
    for child in session.execute(_CHILDREN, {"codes": sorted(depths)}).mappings():
        if child["depth"] <= depths[child["parent_code"]]:
            raise InvalidInput(
                f"grid {child['parent_code']!r} would be at depth {depths[child['parent_code']]}"
                f", not coarser than its current child {child['code']!r} (depth "
                f"{child['depth']}), which is not in this import",
                field="parent", value=child["parent_code"],
                valid=f"the children too (such as {child['code']!r}), with their parent, so "
                      "that their levels follow, or a parent that keeps the grid coarser")


def write_versions(session: Session, records: Sequence[GridRecord], *,
                   at: dt.datetime | None = None) -> WriteCounts:
    """Write ``records`` as the current grids: new codes are created, changed codes get a
    new version (the old one closes at ``at``), identical ones are left alone.

    Runs inside the caller's transaction; nothing is committed here. Takes the grids'
    exclusive lock first (:mod:`geo.store.grid_lock`): the versions it reads are the
    committed ones, and no intake places an incident on the grids it closes unseen.
    """
    lock_exclusive(session)
    at = at or dt.datetime.now(dt.UTC)
    codes = [r.code for r in records]
    if len(set(codes)) != len(codes):
        dup = next(c for c in codes if codes.count(c) > 1)
        raise InvalidInput(f"grid code {dup!r} appears more than once", field="code", value=dup,
                           valid="one record per code (merge the parts into one MultiPolygon)")
    depths = _depths(session, records)
    current = _current(session, codes)
    retired = last_versions(session, [c for c in codes if c not in current])
    counts = WriteCounts()
    to_close: list[int] = []
    to_insert: list[dict[str, Any]] = []
    for rec in records:
        row = current.get(rec.code)
        if row is not None and rec.kept:
            rec = dataclasses.replace(rec, **{name: row[name] for name in rec.kept})
        if row is not None and _same(rec, row):
            counts.unchanged.append(rec.code)
            continue
        if row is None:
            counts.created.append(rec.code)
        else:
            counts.updated.append(rec.code)
            to_close.append(row["id"])
        to_insert.append({
            "code": rec.code, "name": rec.name,
            "version": (row["version"] if row else retired.get(rec.code, 0)) + 1,
            "level": rec.level, "depth": depths[rec.code], "parent_code": rec.parent_code,
            "population": rec.population, "households": rec.households,
            "attrs": _json(rec.attrs), "wkb": shapely.to_wkb(as_multipolygon(rec.geom)),
            "at": at,
        })
    if to_close:
        session.execute(text("UPDATE grid SET valid_to = :at WHERE id IN :ids")
                        .bindparams(bindparam("ids", expanding=True)),
                        {"at": at, "ids": to_close})
    if to_insert:
        session.execute(
            text("""INSERT INTO grid (code, version, name, level, depth, parent_code, population,
                                      households, attrs, geom, valid_from)
                    VALUES (:code, :version, :name, :level, :depth, :parent_code, :population,
                            :households, CAST(:attrs AS jsonb),
                            ST_Multi(ST_GeomFromWKB(:wkb, 4326)), :at)"""),
            to_insert,
        )
    return counts


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value or {}, ensure_ascii=False, sort_keys=True, default=str)
