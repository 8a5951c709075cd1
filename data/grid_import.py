"""Importing and exporting grid boundaries with validation against the file and the database.

:func:`import_grids` reads a file (:mod:`data.grid_io`), checks it with
:mod:`geo.topology` and against the current grids, and returns an
:class:`ImportReport`. Without ``commit`` it is a dry run: the write is
rehearsed inside a savepoint that is rolled back, so the report says what would
be created, updated or left unchanged, and nothing is written. With ``commit``
it writes every grid in the caller's transaction, or raises
:class:`~geo.errors.ImportRefused` (carrying the report) when a blocking problem
remains: invalid geometries not repaired, overlaps not resolved, unknown parents.
Gaps and parts outside a parent are reported but do not block.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from data.grid_io import ReadOptions, merge_features, read_grid_file, write_grid_file
from geo import topology
from geo.errors import ImportRefused, InvalidInput
from geo.incidents.regrid import place_again
from geo.settings import TOLERANCE_MAX_M2, Settings, get_settings
from geo.store.grid_lock import lock_exclusive
from geo.store.grids import GridRecord, write_versions


@dataclass
class ImportReport:
    """Everything an import found and did; :meth:`to_dict` is the JSON report."""

    source: str
    crs: str
    tolerance_m2: float
    features: int = 0
    codes: int = 0
    levels: list[str] = field(default_factory=list)
    invalid_geometries: list[topology.InvalidGeometry] = field(default_factory=list)
    repaired: list[topology.Repair] = field(default_factory=list)
    overlaps: list[topology.Overlap] = field(default_factory=list)
    resolved: list[topology.Transfer] = field(default_factory=list)
    gaps: list[topology.Gap] = field(default_factory=list)
    outside_parent: list[topology.Spill] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    committed: bool = False
    plan: dict[str, list[str]] | None = None
    written: dict[str, list[str]] | None = None
    #: Open incidents placed again (:func:`geo.incidents.regrid.place_again`): done with a
    #: commit, what a commit would do in a dry run.
    incidents: dict[str, Any] | None = None

    @property
    def blocked(self) -> bool:
        """Whether a commit would be refused."""
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (see the README for the format)."""
        return {
            "source": self.source, "crs": self.crs, "tolerance_m2": self.tolerance_m2,
            "levels": self.levels,
            "counts": {"features": self.features, "codes": self.codes,
                       "invalid_geometries": len(self.invalid_geometries),
                       "repaired": len(self.repaired), "overlaps": len(self.overlaps),
                       "resolved": len(self.resolved), "gaps": len(self.gaps),
                       "outside_parent": len(self.outside_parent)},
            "invalid_geometries": [topology.as_dict(x) for x in self.invalid_geometries],
            "repaired": [topology.as_dict(x) for x in self.repaired],
            "overlaps": [topology.as_dict(x) for x in self.overlaps],
            "resolved": [topology.as_dict(x) for x in self.resolved],
            "area_moved_m2": round(sum(x.area_m2 for x in self.resolved), 2),
            "gaps": [topology.as_dict(x) for x in self.gaps],
            "outside_parent": [topology.as_dict(x) for x in self.outside_parent],
            "problems": self.problems,
            "blocked": self.blocked,
            "committed": self.committed,
            "plan": _counted(self.plan),
            "written": _counted(self.written),
            "incidents": self.incidents,
        }


def _counted(codes: dict[str, list[str]] | None) -> dict[str, Any] | None:
    if codes is None:
        return None
    return {**{k: len(v) for k, v in codes.items()}, "codes": codes}


@dataclass
class CheckOptions:
    """What to repair and how strictly to check."""

    make_valid: bool = False
    resolve_overlaps: bool = False
    tolerance_m2: float = 1.0


def import_grids(session: Session, path: str | Path, read: ReadOptions,
                 check: CheckOptions | None = None, *, commit: bool = False,
                 source: str | None = None, at: dt.datetime | None = None,
                 actor: str = "grid import", settings: Settings | None = None) -> ImportReport:
    """Validate the grids in ``path`` and write them when ``commit`` and nothing blocks.

    Parameters
    ----------
    session
        A session in the caller's transaction (the caller commits).
    path
        The file to read (see :func:`data.grid_io.read_grid_file`).
    read, check
        Field mapping and CRS; repair options and the tolerance in m².
    commit
        Write the grids; otherwise rehearse the write and roll it back.
    source
        The name reported as ``source`` (the file name by default).
    at
        Time the new versions start (now by default).
    actor, settings
        Who the events of the open incidents placed again name; the settings (time zone)
        their workers are chosen with (the environment's by default).

    Raises
    ------
    ImportRefused
        With ``commit`` when the report has problems; ``extra`` is the report.
    InvalidInput
        When the file cannot be read or its features disagree.
    """
    check = check or CheckOptions()
    if not 0 <= check.tolerance_m2 <= TOLERANCE_MAX_M2:  # NaN and infinity included
        raise InvalidInput(f"the tolerance {check.tolerance_m2} m² would hide real problems",
                           field="tolerance_m2", value=str(check.tolerance_m2),
                           valid=f"an area from 0 to {TOLERANCE_MAX_M2:,.0f} m² (a hectare)")
    grid_file = read_grid_file(path, read)
    merged = merge_features(grid_file.features)

    def validated() -> tuple[list[GridRecord], ImportReport]:
        out = ImportReport(source=source or Path(path).name, crs=grid_file.crs,
                           tolerance_m2=check.tolerance_m2, features=len(grid_file.features),
                           codes=len(merged), levels=sorted({r.level for r in merged}))
        return (_validate(session, merged, check, out) if merged else merged), out

    # The checks read the current grids without the grids' lock (intakes go on meanwhile);
    # a plan or import that commits grids before this one takes the lock moves the epoch,
    # and the checks run again under the lock, against the grids it wrote.
    epoch = session.scalar(_EPOCH)
    records, report = validated()
    if commit and not report.problems:
        lock_exclusive(session)
        if session.scalar(_EPOCH) != epoch:
            records, report = validated()
    if report.problems:
        if commit:
            raise ImportRefused(
                f"import refused: {len(report.problems)} blocking problem(s), nothing was "
                "written", field="commit", value=True,
                valid="a file without invalid geometries, unresolved overlaps or unknown "
                "parents (see --make-valid and --resolve-overlaps)", extra=report.to_dict())
        return report
    conf = settings or get_settings()
    when: dt.datetime = at or session.scalar(text("SELECT now()"))
    name = source or Path(path).name

    def write() -> dict[str, list[str]]:
        written = _codes(write_versions(session, records, at=when))
        report.incidents = place_again(
            session, sorted({*written["updated"], *written["created"]}),
            actor=actor, at=when, settings=conf, source=name)
        return written

    if commit:
        report.written = write()
        report.committed = True
        return report
    savepoint = session.begin_nested()
    try:
        report.plan = write()
    except InvalidInput as exc:
        report.problems.append({"kind": "store", "message": exc.message})
    finally:
        savepoint.rollback()
    return report


_EPOCH = text("SELECT epoch FROM grid_epoch")


def _codes(counts: Any) -> dict[str, list[str]]:
    return {"created": list(counts.created), "updated": list(counts.updated),
            "unchanged": list(counts.unchanged)}


def _validate(session: Session, records: list[GridRecord], check: CheckOptions,
              report: ImportReport) -> list[GridRecord]:
    tol = check.tolerance_m2
    items = [(r.code, r.geom) for r in records]
    meter = topology.AreaMeter.for_geometries(
        g for _, g in items if g is not None and not g.is_empty)
    report.invalid_geometries = topology.invalid_geometries(items)
    if check.make_valid and report.invalid_geometries:
        items, report.repaired = topology.repair(items, meter)
    still = topology.invalid_geometries(items)
    for bad in still:
        report.problems.append({"kind": "invalid_geometry", "code": bad.code,
                                "message": f"grid {bad.code!r}: {bad.reason}"
                                + ("" if check.make_valid else " (try --make-valid)")})
    broken = {b.code for b in still}
    geom_of = dict(items)
    codes = set(geom_of)
    by_level: dict[str, list[str]] = {}
    for rec in records:
        if rec.code not in broken:
            by_level.setdefault(rec.level, []).append(rec.code)
    for level, level_codes in sorted(by_level.items()):
        mine = [(c, geom_of[c]) for c in level_codes]
        fixed = _current_same_level(session, level, mine, codes)
        found = topology.find_overlaps(mine, meter, tol, fixed=fixed)
        report.overlaps.extend(found)
        if found and check.resolve_overlaps:
            mine, transfers = topology.resolve_overlaps(mine, meter, tol, fixed=fixed)
            report.resolved.extend(transfers)
            geom_of.update(mine)
            left = topology.find_overlaps(
                [(c, g) for c, g in mine if not g.is_empty], meter, tol, fixed=fixed)
            for ov in left:
                report.problems.append({"kind": "overlap", "a": ov.a, "b": ov.b,
                                        "message": f"{ov.a} and {ov.b} still overlap by "
                                        f"{ov.area_m2:.1f} m² after resolving"})
            for code, geom in mine:
                if geom.is_empty:
                    report.problems.append({"kind": "empty_after_resolve", "code": code,
                                            "message": f"grid {code!r} lies inside grids that "
                                            "keep their overlaps: nothing is left of it"})
        elif found:
            report.problems.append({"kind": "overlap", "message": f"{len(found)} overlapping "
                                    f"pair(s) at level {level!r} (try --resolve-overlaps)"})
        report.gaps.extend(topology.union_gaps(
            [(c, geom_of[c]) for c in level_codes], meter, tol, fixed=fixed))
    _check_parents(session, records, geom_of, broken, meter, tol, report)
    return [_with_geom(r, geom_of[r.code]) for r in records]


def _with_geom(record: GridRecord, geom: BaseGeometry) -> GridRecord:
    if geom is record.geom:
        return record
    return GridRecord(code=record.code, name=record.name, level=record.level, geom=geom,
                      parent_code=record.parent_code, population=record.population,
                      households=record.households, attrs=record.attrs)


def _check_parents(session: Session, records: Sequence[GridRecord],
                   geom_of: dict[str, BaseGeometry], broken: set[str],
                   meter: topology.AreaMeter, tol: float, report: ImportReport) -> None:
    codes = set(geom_of)
    self_parents = sorted(r.code for r in records if r.parent_code == r.code)
    for code in self_parents:
        report.problems.append({"kind": "self_parent", "code": code,
                                "message": f"grid {code!r} names itself as its parent"})
    for cycle in _parent_cycles(session, records):
        report.problems.append({"kind": "parent_cycle", "codes": cycle,
                                "message": "grids are each other's ancestors: "
                                + " → ".join([*cycle, cycle[0]])})
    wanted = {r.parent_code for r in records if r.parent_code and r.parent_code != r.code}
    outside = sorted(wanted - codes)
    found = _current_geoms(session, outside)
    unknown = sorted(set(outside) - found.keys())
    if unknown:
        known = _current_codes(session)
        report.problems.append({
            "kind": "unknown_parent", "codes": unknown,
            "message": f"{len(unknown)} parent code(s) are neither current grids nor in this "
            f"file: {', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}"
            + _padding_hint(unknown, known | codes)})
    parents: dict[str, BaseGeometry] = {c: g for c, g in found.items()}
    parents.update({c: geom_of[c] for c in codes if c not in broken})
    checked = (wanted | (codes & _codes_with_children(session, sorted(codes)))) & parents.keys()
    children = [(r.code, r.parent_code, geom_of[r.code]) for r in records
                if r.parent_code in checked and r.code not in broken and r.code != r.parent_code]
    for code, parent, geom in _current_children(session, sorted(checked), sorted(codes)):
        children.append((code, parent, geom))
    gaps, spills = topology.parent_coverage(children, parents, meter, tol)
    report.gaps.extend(gaps)
    report.outside_parent = spills


def _parent_cycles(session: Session, records: Sequence[GridRecord]) -> list[list[str]]:
    """Cycles of parents once the file is written over the current grids (a grid naming
    itself is reported on its own), each from its smallest code, once."""
    parent: dict[str, str | None] = {code: up for code, up in session.execute(
        text("SELECT code, parent_code FROM grid WHERE valid_to IS NULL"))}
    parent.update({r.code: r.parent_code for r in records})
    cycles: dict[tuple[str, ...], list[str]] = {}
    for start in sorted({r.code for r in records}):
        path: list[str] = []
        code: str | None = start
        while code is not None and code not in path and code in parent:
            path.append(code)
            code = parent[code]
        if code is not None and code in path and parent.get(code) != code:
            loop = path[path.index(code):]
            k = loop.index(min(loop))
            ordered = loop[k:] + loop[:k]
            cycles[tuple(ordered)] = ordered
    return list(cycles.values())


def _padding_hint(unknown: Sequence[str], known: set[str]) -> str:
    by_stripped = {c.lstrip("0"): c for c in known}
    pairs = [(u, by_stripped[u.lstrip("0")]) for u in unknown if u.lstrip("0") in by_stripped]
    if not pairs:
        return ""
    u, k = pairs[0]
    return (f"; {len(pairs)} of them differ from existing codes only in leading zeros "
            f"(e.g. {u!r} and {k!r}): make the codes agree")


def _geom(wkb: Any) -> BaseGeometry:
    """A stored geometry, made valid if an older writer left it invalid (GEOS needs valid)."""
    geom = shapely.from_wkb(bytes(wkb))
    return geom if geom.is_valid else topology.polygonal(shapely.make_valid(geom))


def _geoms(rows: Any) -> dict[str, BaseGeometry]:
    return {r.code: _geom(r.wkb) for r in rows}


def _current_geoms(session: Session, codes: Sequence[str]) -> dict[str, BaseGeometry]:
    if not codes:
        return {}
    rows = session.execute(
        text("SELECT code, ST_AsBinary(geom) AS wkb FROM grid "
             "WHERE valid_to IS NULL AND code IN :codes")
        .bindparams(bindparam("codes", expanding=True)), {"codes": list(codes)})
    return _geoms(rows)


def _current_codes(session: Session) -> set[str]:
    return set(session.execute(text("SELECT code FROM grid WHERE valid_to IS NULL")).scalars())


def _codes_with_children(session: Session, codes: Sequence[str]) -> set[str]:
    if not codes:
        return set()
    rows = session.execute(
        text("SELECT DISTINCT parent_code FROM grid "
             "WHERE valid_to IS NULL AND parent_code IN :codes")
        .bindparams(bindparam("codes", expanding=True)), {"codes": list(codes)}).scalars()
    return set(rows)


def _current_children(session: Session, parents: Sequence[str],
                      replaced: Sequence[str]) -> list[tuple[str, str, BaseGeometry]]:
    """Current grids under ``parents`` that this import does not replace."""
    if not parents:
        return []
    rows = session.execute(
        text("SELECT code, parent_code, ST_AsBinary(geom) AS wkb FROM grid "
             "WHERE valid_to IS NULL AND parent_code IN :parents AND NOT code = ANY(:replaced)")
        .bindparams(bindparam("parents", expanding=True)),
        {"parents": list(parents), "replaced": list(replaced)})
    return [(r.code, r.parent_code, _geom(r.wkb)) for r in rows]


def _current_same_level(session: Session, level: str, items: Sequence[topology.Item],
                        replaced: set[str]) -> list[topology.Item]:
    """Current grids of ``level`` near ``items`` that this import does not replace."""
    geoms = [g for _, g in items if g is not None and not g.is_empty]
    if not geoms:
        return []
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
    rows = session.execute(
        text("SELECT code, ST_AsBinary(geom) AS wkb FROM grid "
             "WHERE valid_to IS NULL AND level = :level AND NOT code = ANY(:replaced) "
             "AND geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326) ORDER BY code"),
        {"level": level, "replaced": sorted(replaced), "minx": minx, "miny": miny,
         "maxx": maxx, "maxy": maxy})
    return sorted(_geoms(rows).items())


def current_grid_rows(session: Session, level: str | None = None) -> list[dict[str, Any]]:
    """The current grids (all, or of one ``level``) as rows for :func:`write_grid_file`."""
    rows = session.execute(
        text("SELECT code, name, level, parent_code, population, households, attrs, version, "
             "valid_from, ST_AsBinary(geom) AS wkb FROM grid WHERE valid_to IS NULL "
             "AND (CAST(:level AS text) IS NULL OR level = CAST(:level AS text)) "
             "ORDER BY depth, code"), {"level": level}).mappings()
    return [{"code": r["code"], "name": r["name"], "level": r["level"],
             "parent": r["parent_code"], "population": r["population"],
             "households": r["households"], "attrs": r["attrs"], "version": r["version"],
             "valid_from": r["valid_from"].isoformat(),
             "geom": shapely.from_wkb(bytes(r["wkb"]))} for r in rows]


def export_grids(session: Session, path: str | Path, *, level: str | None = None) -> int:
    """Write the current grids (of ``level``, or all) to ``path``; returns the count.

    The file imports back with ``--code-field code --name-field name
    --parent-field parent --level-field level`` and leaves every grid unchanged.
    """
    rows = current_grid_rows(session, level)
    if level is not None and not rows:
        levels = sorted(set(session.execute(
            text("SELECT DISTINCT level FROM grid WHERE valid_to IS NULL")).scalars()))
        raise InvalidInput(f"there are no current grids of level {level!r}", field="level",
                           value=level, valid=", ".join(levels) or "(no grids yet)")
    return write_grid_file(path, rows)
