"""Roster CSV import and export: workers, their teams and their duties on grids.

One row per duty (a worker with no duty has one row with empty duty cells). The
header names the columns, in any order; ``worker_code``, ``name`` and ``role``
are required, the others (:data:`COLUMNS`) optional. The whole file is checked
first; any bad row refuses the whole file (``ImportRefused`` listing every
problem with its line, field, value and what is valid) and nothing is written.
A good file is written in the caller's transaction.

Rules: workers and teams are matched by code (created or updated). A column
missing from the header leaves that attribute alone on existing workers. When
the header has ``grid_code`` and ``duty`` columns, the file's duty rows *replace*
the duties of every worker it names (a worker whose rows have no duty loses
his duties); without them, duties are not touched. Team cells may be left empty
on all but one row of a team; the non-empty ones must agree. The open incidents
of workers the file makes inactive are handed over in the same transaction
(:mod:`geo.incidents.handover`) and counted in the report.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.roster_shifts import SHIFTS_VALID, format_shifts, parse_shift_text
from geo.errors import TEXT_VALID, ImportRefused, InvalidInput, shown_text, unstorable
from geo.incidents.handover import hand_over
from geo.settings import Settings, get_settings
from geo.store.grid_lock import lock_exclusive
from geo.store.grids import WriteCounts
from geo.store.models import DUTY_KINDS, WORKER_ROLES, Duty, Team, Worker
from geo.store.roster import CODE_FORMAT, FORMAT_VALID, KIND_FORMAT, PHONE_FORMAT
from geo.store.roster_write import (
    DutyCounts,
    DutyRecord,
    TeamRecord,
    WorkerRecord,
    category_codes,
    current_grid_codes,
    team_ids,
    upsert_teams,
    upsert_workers,
)

COLUMNS = ("worker_code", "name", "phone", "role", "active", "team_code", "team_name",
           "team_kind", "team_grid_code", "grid_code", "duty", "shifts", "categories")
REQUIRED = ("worker_code", "name", "role")
_CODE, _PHONE, _KIND = CODE_FORMAT, PHONE_FORMAT, KIND_FORMAT  # the API's formats too
_TRUE, _FALSE = {"", "true", "yes", "y", "1", "是"}, {"false", "no", "n", "0", "否"}
VALID = {
    "worker_code": FORMAT_VALID["code"],
    "name": "a non-empty name of at most 200 characters",
    "phone": FORMAT_VALID["phone"],
    "role": " | ".join(WORKER_ROLES),
    "active": "true or false (empty = true)",
    "team_code": FORMAT_VALID["code"],
    "team_name": "the team's name, given on at least one row of a new team",
    "team_kind": FORMAT_VALID["kind"],
    "team_grid_code": "the code of a current grid (the area the team serves)",
    "grid_code": "the code of a current grid",
    "duty": " | ".join(DUTY_KINDS) + " (empty for a worker without a duty)",
    "shifts": SHIFTS_VALID,
    "categories": "category codes separated by '|', e.g. E0101|E0501 (empty = all)",
    "row": "no more cells than header columns",
}


@dataclass
class RosterReport:
    """What an import did (or would do, in a dry run)."""

    rows: int
    teams: WriteCounts = field(default_factory=WriteCounts)
    workers: WriteCounts = field(default_factory=WriteCounts)
    duties: DutyCounts = field(default_factory=DutyCounts)
    dry_run: bool = False
    incidents: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Counts, and the open incidents handed over from workers made inactive."""
        return {"rows": self.rows, "dry_run": self.dry_run, "teams": self.teams.as_dict(),
                "workers": self.workers.as_dict(), "duties": self.duties.as_dict(),
                "incidents": self.incidents}


@dataclass
class _Checked:
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: int, column: str, value: Any, message: str) -> None:
        self.problems.append({"row": line, "field": column, "value": value,
                              "message": message, "valid": VALID.get(column, "")})


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the ``(line, row)`` pairs of a roster CSV (UTF-8, or GB18030 as saved
    by Chinese Excel, or Excel's tab-separated UTF-16 "Unicode Text"). ``line`` is the file
    line where the row starts (header = line 1).
    """
    raw = path.read_bytes()
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text"
            content = raw.decode("utf-16")
        else:
            try:
                content = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                content = raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not text in UTF-8, GB18030 or UTF-16: {exc.reason} "
                           f"at byte {exc.start}", field="file", value=path.name,
                           valid="a CSV file saved as UTF-8 (or GB18030, or Excel's Unicode "
                                 "Text)") from None
    content = content.removeprefix("\ufeff")  # GB18030's own byte-order mark decodes to it
    first = content.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","  # Unicode Text is tabbed
    # strict: a quote left open would swallow the rows after it into one cell
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, dict[str, str]]] = []
    start = 1
    try:
        header = [h.strip() for h in next(reader, [])]
        start = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):
                cells = record + [""] * (len(header) - len(record))
                row = {h: c.strip() for h, c in zip(header, cells, strict=False)}
                if len(record) > len(header):
                    row["__extra__"] = ",".join(record[len(header):])
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        why = (f'a quote (") opened on line {start} is never closed, so every line after '
               "it would be one cell" if "unexpected end of data" in str(exc) else
               f"line {start}: {exc}")
        raise InvalidInput(f"cannot read {path.name} as CSV: {why}", field="file",
                           value=path.name, valid='a well-formed CSV file: close the quote, '
                           'and double the quotes inside a quoted cell ("")') from None
    return header, rows


def _check_header(header: Sequence[str], checked: _Checked) -> None:
    for name in sorted({h for h in header if h and header.count(h) > 1}):
        checked.add(1, "header", name, f"column {name!r} appears {header.count(name)} times "
                    "(which one holds the value?)")
    for k, name in enumerate(header, start=1):
        if not name:
            checked.add(1, "header", name, f"column {k} of the header has no name "
                        "(a trailing comma?)")
            checked.problems[-1]["valid"] = "a name for every column: " + ", ".join(COLUMNS)
        elif name not in COLUMNS:
            checked.add(1, "header", name, f"unknown column {name!r}")
            checked.problems[-1]["valid"] = ", ".join(COLUMNS)
    for name in REQUIRED:
        if name not in header:
            checked.add(1, "header", name, f"required column {name!r} is missing")
            checked.problems[-1]["valid"] = "the header must name " + ", ".join(REQUIRED)
    if ("grid_code" in header) != ("duty" in header):
        checked.add(1, "header", "grid_code/duty", "grid_code and duty come together")
        checked.problems[-1]["valid"] = "both columns or neither"


def team_only(row: Mapping[str, str]) -> bool:
    """A row that describes a team without members: team cells only (no worker)."""
    return bool(row.get("team_code")) and not any(
        row.get(c) for c in ("worker_code", "name", "role"))


#: The longest worker or team name, as the API takes it.
NAME_MAX = 200


def _check_row(line: int, row: Mapping[str, str], checked: _Checked) -> dict[str, Any]:
    """Field checks that need no database; returns the parsed values."""
    out: dict[str, Any] = {}
    if team_only(row):
        row = {**row, "worker_code": "team", "name": "-", "role": WORKER_ROLES[0]}  # no worker
        for column in ("phone", "active", "grid_code", "duty", "shifts", "categories"):
            if row.get(column):
                checked.add(line, column, row[column], f"{column} on a row without a worker "
                            "(a team without members has team cells only)")
    if "__extra__" in row:
        checked.add(line, "row", row["__extra__"], "more cells than header columns")
    for column, cell in row.items():
        why = unstorable(cell) if isinstance(cell, str) else None
        if why is not None:
            checked.add(line, column, shown_text(cell), f"{column} {why} ({TEXT_VALID})")
    for column in ("worker_code", "team_code"):
        value = row.get(column, "")
        if (value or column == "worker_code") and not _CODE.match(value):
            checked.add(line, column, value, f"{column} {value!r} is not a valid code")
    if not row.get("name", ""):
        checked.add(line, "name", "", "name is empty")
    for column in ("name", "team_name"):  # as the API's: a longer one could not be edited
        if len(row.get(column, "")) > NAME_MAX:
            checked.add(line, column, row[column][:80], f"{column} is longer than {NAME_MAX} "
                        "characters")
    if row.get("role", "") not in WORKER_ROLES:
        checked.add(line, "role", row.get("role", ""), f"role {row.get('role', '')!r} is unknown")
    if row.get("phone") and not _PHONE.match(row["phone"]):
        checked.add(line, "phone", row["phone"], f"phone {row['phone']!r} is not a phone number")
    active = row.get("active", "").lower()
    if active not in _TRUE | _FALSE:
        checked.add(line, "active", row["active"], f"active {row['active']!r} is not true/false")
    out["active"] = active not in _FALSE
    if row.get("team_kind") and not _KIND.match(row["team_kind"]):
        checked.add(line, "team_kind", row["team_kind"], "team_kind is not a lower-case word")
    team_cells = [c for c in ("team_name", "team_kind", "team_grid_code") if row.get(c)]
    if team_cells and not row.get("team_code"):
        checked.add(line, team_cells[0], row[team_cells[0]], f"{team_cells[0]} without team_code")
    duty, grid = row.get("duty", ""), row.get("grid_code", "")
    if duty and duty not in DUTY_KINDS:
        checked.add(line, "duty", duty, f"duty {duty!r} is unknown")
    if grid and not duty:
        checked.add(line, "duty", duty, f"grid_code {grid!r} is given but duty is empty")
    if duty and not grid:
        checked.add(line, "grid_code", grid, "duty is given but grid_code is empty")
    for column in ("shifts", "categories"):
        if row.get(column) and not duty:
            checked.add(line, column, row[column], f"{column} given on a row without a duty")
    try:
        out["shifts"] = parse_shift_text(row.get("shifts", ""))
    except InvalidInput as exc:
        checked.add(line, "shifts", row.get("shifts", ""), exc.message)
    cats = sorted({c.strip() for c in row.get("categories", "").split("|") if c.strip()})
    out["categories"] = tuple(cats) if cats else None  # sorted, once each, as the API stores
    return out


def _meaning(column: str, value: str) -> str:
    """What a cell means where two spellings mean the same (``active``: empty, ``true``,
    ``yes``, ``是`` are all true)."""
    if column == "active" and value.lower() in _TRUE | _FALSE:
        return str(value.lower() not in _FALSE)
    return value


def _check_agreement(lines: Sequence[tuple[int, Mapping[str, str]]], key: str,
                     columns: Sequence[str], checked: _Checked, *, skip_empty: bool) -> None:
    first: dict[tuple[str, str], tuple[int, str]] = {}
    for line, row in lines:
        if not row.get(key):
            continue
        for column in columns:
            value = row.get(column, "")
            if skip_empty and not value:
                continue
            seen = first.setdefault((row[key], column), (line, value))
            if seen[1] != value and _meaning(column, seen[1]) != _meaning(column, value):
                checked.add(line, column, value,
                            f"{key} {row[key]!r} has {column} {seen[1]!r} on line {seen[0]}")


def _check_database(session: Session, rows: Sequence[tuple[int, Mapping[str, str]]],
                    checked: _Checked) -> None:
    grids = current_grid_codes(session, {r.get(c, "") for _, r in rows
                                         for c in ("grid_code", "team_grid_code")} - {""})
    cats = category_codes(session)
    defined = {r["team_code"] for _, r in rows if r.get("team_code") and r.get("team_name")}
    existing = team_ids(session, {r["team_code"] for _, r in rows if r.get("team_code")})
    for line, row in rows:
        for column in ("grid_code", "team_grid_code"):
            if row.get(column) and row[column] not in grids:
                checked.add(line, column, row[column], f"{column} {row[column]!r} is not a "
                            "current grid (load or import the grids first)")
        team = row.get("team_code", "")
        if team and team not in defined and team not in existing:
            checked.add(line, "team_name", "", f"team {team!r} does not exist and no row "
                        "gives its team_name")
        for cat in (c.strip() for c in row.get("categories", "").split("|")):
            if cat and cat not in cats:
                checked.add(line, "categories", cat, f"category {cat!r} does not exist")
                checked.problems[-1]["valid"] += f"; known: {', '.join(sorted(cats)[:40])}"


def _records(header: Sequence[str], rows: Sequence[tuple[int, Mapping[str, str]]],
             parsed: Sequence[Mapping[str, Any]]) -> tuple[list[TeamRecord], list[WorkerRecord]]:
    teams: dict[str, dict[str, str]] = defaultdict(dict)
    for _, row in rows:
        if row.get("team_code"):
            for column in ("team_name", "team_kind", "team_grid_code"):
                if row.get(column):
                    teams[row["team_code"]].setdefault(column, row[column])
    team_records = [TeamRecord(code=code, name=v.get("team_name", ""),
                               kind=v.get("team_kind", "patrol"),
                               grid_code=v.get("team_grid_code"),
                               keep=frozenset(k for c, k in (("team_name", "name"),
                                                             ("team_kind", "kind"),
                                                             ("team_grid_code", "grid_code"))
                                              if c not in v))
                    for code, v in sorted(teams.items()) if "team_name" in v or len(v)]
    with_duties = "duty" in header
    keep = frozenset(c for c in ("phone", "team_code", "active", "shifts", "categories")
                     if c not in header)
    workers: dict[str, dict[str, Any]] = {}
    for (_, row), values in zip(rows, parsed, strict=True):
        if team_only(row):
            continue
        worker = workers.setdefault(row["worker_code"], {
            "row": row, "active": values["active"], "duties": []})
        if row.get("duty"):
            worker["duties"].append(DutyRecord(
                grid_code=row["grid_code"], kind=row["duty"], shifts=tuple(values["shifts"]),
                categories=values["categories"]))
    worker_records = [WorkerRecord(
        code=code, name=w["row"]["name"], role=w["row"]["role"],
        phone=w["row"].get("phone") or None, team_code=w["row"].get("team_code") or None,
        active=w["active"], duties=tuple(w["duties"]) if with_duties else None, keep=keep)
        for code, w in sorted(workers.items())]
    return team_records, worker_records


def apply_rows(session: Session, header: Sequence[str],
               rows: Sequence[tuple[int, Mapping[str, str]]], *, source: str = "roster",
               dry_run: bool = False, settings: Settings | None = None,
               actor: str = "roster") -> RosterReport:
    """Check roster rows and write them in ``session`` (all or nothing).

    Parameters
    ----------
    session : Session
        The transaction to write in; the caller commits (or rolls back a dry run).
    header : sequence of str
        The columns of the file.
    rows : sequence of (line, dict)
        Each row with the file line it starts on.
    source : str
        Named in the refusal message (the file name).
    dry_run : bool
        Check and count, then roll back what was written.
    settings : Settings, optional
        For the shifts' time zone when the open incidents of workers the file makes
        inactive are handed over (:func:`geo.incidents.handover.hand_over`); the
        environment's settings when None.
    actor : str
        Stored on the hand-over events.

    Raises
    ------
    ImportRefused
        With ``extra["problems"]``: every problem as row, field, value, message, valid.
    """
    checked = _Checked()
    _check_header(header, checked)
    if not rows:
        checked.add(1, "rows", 0, "the file has no data rows")
        checked.problems[-1]["valid"] = "a header line and at least one data row"
    if checked.problems:
        _refuse(source, checked)
    parsed = [_check_row(line, row, checked) for line, row in rows]
    _check_agreement(rows, "worker_code", ("name", "phone", "role", "active", "team_code"),
                     checked, skip_empty=False)
    _check_agreement(rows, "team_code", ("team_name", "team_kind", "team_grid_code"),
                     checked, skip_empty=True)
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        if row.get("duty"):
            key = (row["worker_code"], row["grid_code"], row["duty"])
            if key in seen:
                checked.add(line, "duty", row["duty"], f"worker {key[0]!r} already has duty "
                            f"{key[2]!r} on grid {key[1]!r} on line {seen[key]}")
            seen.setdefault(key, line)
    _check_database(session, rows, checked)
    if checked.problems:
        _refuse(source, checked)
    teams, workers = _records(header, rows, parsed)
    report = RosterReport(rows=len(rows), dry_run=dry_run)
    codes = [w.code for w in workers]
    was_active = set(session.execute(select(Worker.id).where(Worker.code.in_(codes),
                                                             Worker.active)).scalars())
    nested = session.begin_nested()
    report.teams = upsert_teams(session, teams)
    report.workers, report.duties = upsert_workers(session, workers)  # rows locked
    deactivated = sorted(was_active - set(session.execute(
        select(Worker.id).where(Worker.code.in_(codes), Worker.active)).scalars()))
    if deactivated:  # intakes in flight commit first (geo.incidents.handover)
        lock_exclusive(session)
    report.incidents = hand_over(session, deactivated, at=dt.datetime.now(dt.UTC),
                                 settings=settings or get_settings(), actor=actor,
                                 source=f"roster import {source}")
    if dry_run:
        nested.rollback()
    else:
        nested.commit()
    return report


def _refuse(source: str, checked: _Checked) -> None:
    problems = sorted(checked.problems, key=lambda p: (p["row"], p["field"]))
    first = problems[0]
    raise ImportRefused(
        f"{source}: {len(problems)} problem(s), nothing was written; first on line "
        f"{first['row']}: {first['message']}", field=first["field"], value=first["value"],
        valid=first["valid"], extra={"problems": problems})


def import_roster(session: Session, path: Path, *, dry_run: bool = False,
                  settings: Settings | None = None, actor: str = "roster") -> RosterReport:
    """Import a roster CSV file (see the module docstring for the rules)."""
    header, rows = read_csv_rows(path)
    return apply_rows(session, header, rows, source=path.name, dry_run=dry_run,
                      settings=settings, actor=actor)


def export_rows(session: Session) -> list[dict[str, str]]:
    """Every worker and duty as roster CSV rows (sorted by worker code, then duty), then a
    row of team cells for each team without members."""
    teams = {t.id: t for t in session.execute(select(Team)).scalars()}
    duties: dict[int, list[Duty]] = defaultdict(list)
    for duty in session.execute(select(Duty).order_by(Duty.kind.desc(), Duty.grid_code)).scalars():
        duties[duty.worker_id].append(duty)
    out: list[dict[str, str]] = []
    members: set[int] = set()
    for worker in session.execute(select(Worker).order_by(Worker.code)).scalars():
        if worker.team_id is not None:
            members.add(worker.team_id)
        team = teams.get(worker.team_id) if worker.team_id is not None else None
        base = {"worker_code": worker.code, "name": worker.name, "phone": worker.phone or "",
                "role": worker.role, "active": "true" if worker.active else "false",
                "team_code": team.code if team else "", "team_name": team.name if team else "",
                "team_kind": team.kind if team else "",
                "team_grid_code": (team.grid_code or "") if team else ""}
        mine = duties.get(worker.id, [])
        if not mine:
            out.append({**base, "grid_code": "", "duty": "", "shifts": "", "categories": ""})
        for duty in mine:
            out.append({**base, "grid_code": duty.grid_code, "duty": duty.kind,
                        "shifts": format_shifts(duty.shifts),
                        "categories": "|".join(duty.categories or [])})
    for team in sorted(teams.values(), key=lambda t: t.code):  # a team without members
        if team.id not in members:
            out.append({c: "" for c in COLUMNS} | {
                "team_code": team.code, "team_name": team.name, "team_kind": team.kind,
                "team_grid_code": team.grid_code or ""})
    return out


def write_csv(rows: Iterable[Mapping[str, str]], path: Path) -> int:
    """Write roster rows with the full header (UTF-8 with BOM, which Excel reads)."""
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
            count += 1
    return count


def export_roster(session: Session, path: Path) -> int:
    """Write the whole roster to ``path``; returns the number of rows."""
    return write_csv(export_rows(session), path)
