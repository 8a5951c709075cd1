"""Roster CSV import and export: good files, refused files (nothing written), round trips."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli import app as cli_app
from data.demo.load import load_demo
from data.roster_io import COLUMNS, export_roster, import_roster
from data.roster_shifts import format_shifts, parse_shift_text
from geo.assign import on_duty
from geo.errors import ImportRefused, InvalidInput
from geo.settings import get_settings
from geo.store import db

HEADER = ",".join(COLUMNS)
ANTAI_GRID = "350102006003001"
ANTAI_GRID_2 = "350102006003002"


@pytest.fixture
def demo_db(db_url: str) -> str:
    """This test's database with the demo city (grids, categories, roster) loaded."""
    with db.session_scope(db_url) as s:
        load_demo(s)
    return db_url


def _write(tmp_path: Path, body: str, name: str = "roster.csv",
           encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode(encoding))
    return path


def _counts(url: str) -> dict[str, int]:
    with db.session_scope(url) as s:
        return {t: int(s.execute(text(sql)).scalar_one()) for t, sql in (
            ("team", "SELECT count(*) FROM team"), ("worker", "SELECT count(*) FROM worker"),
            ("duty", "SELECT count(*) FROM duty"),
            ("hash", "SELECT hashtext(string_agg(d.grid_code || d.kind || d.shifts::text || "
                     "w.code || w.name || coalesce(w.phone, ''), ',' ORDER BY d.id)) "
                     "FROM duty d JOIN worker w ON w.id = d.worker_id"))}


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    with db.session_scope(url) as s:
        return list(s.execute(text(sql), params).mappings())


GOOD = "\n".join([
    HEADER,
    f"X-001,林晓,139-0000-9001,grid_worker,,TX-1,测试巡防队,patrol,350102006000,{ANTAI_GRID},"
    'primary,"mon-fri 08:00-18:00; sat 09:00-12:00",',
    f"X-001,林晓,139-0000-9001,grid_worker,,TX-1,,,,{ANTAI_GRID_2},backup,daily 18:00-08:00,"
    "E0101|E0501",
    "X-002,陈平,,patrol,false,TX-1,,,,,,,",
    ""])


def test_good_file_is_imported_and_a_second_import_changes_nothing(demo_db: str,
                                                                   tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    with db.session_scope(demo_db) as s:
        report = import_roster(s, path)
    assert report.rows == 3
    assert report.teams.as_dict() == {"created": 1, "updated": 0, "unchanged": 0}
    assert report.workers.as_dict() == {"created": 2, "updated": 0, "unchanged": 0}
    assert report.duties.as_dict()["created"] == 2
    duties = _rows(demo_db, """SELECT d.grid_code, d.kind, d.shifts, d.categories, w.phone,
                                      w.active, t.name AS team, t.kind AS team_kind,
                                      t.grid_code AS team_grid
                                 FROM duty d JOIN worker w ON w.id = d.worker_id
                                 JOIN team t ON t.id = w.team_id
                                WHERE w.code = 'X-001' ORDER BY d.kind DESC""")
    assert [d["grid_code"] for d in duties] == [ANTAI_GRID, ANTAI_GRID_2]
    assert duties[0]["shifts"] == [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"},
                                   {"days": [5], "start": "09:00", "end": "12:00"}]
    assert duties[0]["categories"] is None and duties[1]["categories"] == ["E0101", "E0501"]
    assert duties[1]["shifts"] == [{"days": list(range(7)), "start": "18:00", "end": "08:00"}]
    assert (duties[0]["team"], duties[0]["team_kind"], duties[0]["team_grid"]) == \
        ("测试巡防队", "patrol", "350102006000")
    assert duties[0]["phone"] == "139-0000-9001" and duties[0]["active"] is True
    x2 = _rows(demo_db, "SELECT active, phone FROM worker WHERE code = 'X-002'")
    assert x2 == [{"active": False, "phone": None}]

    before = _counts(demo_db)
    with db.session_scope(demo_db) as s:
        again = import_roster(s, path)
    assert not again.workers.created and not again.workers.updated
    assert not again.duties.created and not again.duties.updated and not again.duties.deleted
    assert _counts(demo_db) == before


BAD = f"""{HEADER}
OK-1,好人,139-0000-9101,grid_worker,,,,,,{ANTAI_GRID},primary,,
BAD-1,坏格,,grid_worker,,,,,,350102999999001,primary,,
BAD-2,坏角,,chief,,,,,,,,,
BAD-3,坏班,,grid_worker,,,,,,{ANTAI_GRID},backup,mon-fry 08:00-18:00,
BAD-4,坏类,,grid_worker,,,,,,{ANTAI_GRID},primary,,E0101|Z9999
BAD-5,坏岗,,grid_worker,,,,,,{ANTAI_GRID},,,
OK-1,别名,139-0000-9101,grid_worker,,,,,,{ANTAI_GRID_2},backup,,
BAD-6,无队,,patrol,,NO-SUCH-TEAM,,,,,,,
BAD-7,坏电话,call me,patrol,maybe,,,,,,,,
"""


def test_bad_rows_refuse_the_whole_file_with_lines_and_nothing_is_written(
        demo_db: str, tmp_path: Path) -> None:
    before = _counts(demo_db)
    with pytest.raises(ImportRefused) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, BAD))
    problems = caught.value.extra["problems"]
    found = {(p["row"], p["field"]) for p in problems}
    assert found == {
        (3, "grid_code"), (4, "role"), (5, "shifts"), (6, "categories"), (7, "duty"),
        (8, "name"), (9, "team_name"), (10, "phone"), (10, "active")}
    by_field = {p["field"]: p for p in problems}
    assert by_field["grid_code"]["value"] == "350102999999001"
    assert "current grid" in by_field["grid_code"]["valid"]
    assert by_field["role"]["value"] == "chief" and "grid_worker" in by_field["role"]["valid"]
    assert "fry" in by_field["shifts"]["message"] and "mon-fri" in by_field["shifts"]["valid"]
    assert by_field["categories"]["value"] == "Z9999"
    assert "line 2" in by_field["name"]["message"]
    assert all(p["valid"] for p in problems)
    assert "nothing was written" in caught.value.message
    assert _counts(demo_db) == before
    assert _rows(demo_db, "SELECT code FROM worker WHERE code LIKE 'OK-%'") == []


@pytest.mark.parametrize(("body", "field", "value"), [
    ("worker_code,name\nA,b\n", "header", "role"),
    ("worker_code,name,role,colour\nA,b,patrol,red\n", "header", "colour"),
    ("worker_code,name,role,grid_code\nA,b,patrol,\n", "header", "grid_code/duty"),
    ("worker_code,name,role\n", "rows", 0),
    ("worker_code,name,role\nA,b,patrol,extra\n", "row", "extra"),
    ("worker_code,name,role\nA B,b,patrol\n", "worker_code", "A B"),
    ("worker_code,worker_code,name,role\nA,B,x,patrol\n", "header", "worker_code"),
    ("worker_code,name,role,\nA,b,patrol,\n", "header", ""),  # a trailing comma: named
    # longer than the API takes: imported, then no PATCH could keep it
    ("worker_code,name,role\nA," + "长" * 201 + ",patrol\n", "name", "长" * 80),
    ("worker_code,name,phone,role\nA,b,+" + "1" * 32 + ",patrol\n", "phone", "+" + "1" * 32),
])
def test_header_and_shape_problems(demo_db: str, tmp_path: Path, body: str, field: str,
                                   value: Any) -> None:
    with pytest.raises(ImportRefused) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, body))
    assert (caught.value.field, caught.value.value) == (field, value)


def test_a_quote_left_open_refuses_the_file_naming_its_line(demo_db: str,
                                                            tmp_path: Path) -> None:
    """It swallowed the rows after it into one name: QA-8 and QA-9 were never created."""
    body = 'worker_code,role,name\nQA-7,patrol,"七\nQA-8,patrol,八\nQA-9,patrol,九\n'
    before = _counts(demo_db)
    with pytest.raises(InvalidInput) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, body))
    assert caught.value.field == "file" and "opened on line 2" in caught.value.message
    assert _counts(demo_db) == before
    quoted = 'worker_code,role,name\nQA-7,patrol,"七\n号"\nQA-8,patrol,八\n'  # closed: fine
    with db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, quoted))
        s.rollback()


def test_duties_of_named_workers_are_replaced_and_others_untouched(demo_db: str,
                                                                   tmp_path: Path) -> None:
    worker = f"W{ANTAI_GRID}"
    other = f"W{ANTAI_GRID_2}"
    other_before = _rows(demo_db, """SELECT d.grid_code, d.kind FROM duty d JOIN worker w
                                       ON w.id = d.worker_id WHERE w.code = :c""", c=other)
    body = (f"{HEADER}\n{worker},新名,139-0000-9201,grid_worker,,,,,,{ANTAI_GRID_2},primary,"
            "daily 00:00-00:00,\n")
    with db.session_scope(demo_db) as s:
        report = import_roster(s, _write(tmp_path, body))
    assert report.workers.as_dict()["updated"] == 1
    assert report.duties.as_dict() == {"created": 1, "updated": 0, "unchanged": 0, "deleted": 2}
    mine = _rows(demo_db, """SELECT d.grid_code, d.kind, d.shifts, w.name, w.team_id
                               FROM duty d JOIN worker w ON w.id = d.worker_id
                              WHERE w.code = :c""", c=worker)
    assert [(d["grid_code"], d["kind"], d["name"]) for d in mine] == \
        [(ANTAI_GRID_2, "primary", "新名")]
    assert mine[0]["team_id"] is None  # the team_code column is there and empty
    assert on_duty(mine[0]["shifts"], dt.datetime(2025, 6, 8, 3, 0), "Asia/Shanghai")
    assert _rows(demo_db, """SELECT d.grid_code, d.kind FROM duty d JOIN worker w
                               ON w.id = d.worker_id WHERE w.code = :c""", c=other) == other_before

    # Without duty columns, duties stay; without a phone column, phones stay.
    with db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, f"worker_code,name,role\n{worker},再改,grid_worker\n"))
    after = _rows(demo_db, """SELECT w.name, w.phone, count(d.id) AS n FROM worker w
                                LEFT JOIN duty d ON d.worker_id = w.id WHERE w.code = :c
                               GROUP BY w.name, w.phone""", c=worker)
    assert after == [{"name": "再改", "phone": "139-0000-9201", "n": 1}]


def test_export_then_import_is_a_round_trip(demo_db: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    with db.session_scope(demo_db) as s:
        rows = export_roster(s, first)
        duties = int(s.execute(text("SELECT count(*) FROM duty")).scalar_one())
        no_duty = int(s.execute(text("SELECT count(*) FROM worker w WHERE NOT EXISTS "
                                     "(SELECT 1 FROM duty d WHERE d.worker_id = w.id)"))
                      .scalar_one())
    assert rows == duties + no_duty
    before = _counts(demo_db)
    with db.session_scope(demo_db) as s:
        report = import_roster(s, first)
    assert report.workers.as_dict()["unchanged"] == before["worker"] > 400
    assert not (report.workers.created or report.workers.updated or report.duties.created
                or report.duties.updated or report.duties.deleted or report.teams.updated)
    assert _counts(demo_db) == before
    with db.session_scope(demo_db) as s:
        export_roster(s, second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
    header = next(csv.reader(io.StringIO(first.read_text(encoding="utf-8-sig"))))
    assert tuple(header) == COLUMNS


def test_categories_are_stored_sorted_once_each(demo_db: str, tmp_path: Path) -> None:
    """As the API stores them; the import kept "E0501|E0101|E0501" as written."""
    body = GOOD.replace("E0101|E0501", "E0501|E0101|E0501")
    with db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, body))
    assert _rows(demo_db, "SELECT d.categories FROM duty d JOIN worker w ON w.id = d.worker_id "
                          "WHERE w.code = 'X-001' AND d.kind = 'backup'") == [
        {"categories": ["E0101", "E0501"]}]


def test_rows_of_one_worker_may_spell_active_differently(demo_db: str, tmp_path: Path) -> None:
    """``true`` on one row and an empty cell (also true) on another were refused as
    disagreeing; ``true`` and ``false`` still are."""
    body = "worker_code,name,role,active\nY-1,甲,patrol,true\nY-1,甲,patrol,\nY-1,甲,patrol,是\n"
    with db.session_scope(demo_db) as s:
        assert import_roster(s, _write(tmp_path, body), dry_run=True).dry_run
    with pytest.raises(ImportRefused) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, body + "Y-1,甲,patrol,no\n"), dry_run=True)
    assert caught.value.field == "active"


def test_dry_run_writes_nothing(demo_db: str, tmp_path: Path) -> None:
    before = _counts(demo_db)
    with db.session_scope(demo_db) as s:
        report = import_roster(s, _write(tmp_path, GOOD), dry_run=True)
    assert report.dry_run and report.workers.as_dict()["created"] == 2
    assert _counts(demo_db) == before


def test_gb18030_file_from_excel_is_read(demo_db: str, tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD, encoding="gb18030")
    with db.session_scope(demo_db) as s:
        import_roster(s, path)
    assert _rows(demo_db, "SELECT name FROM worker WHERE code = 'X-001'") == [{"name": "林晓"}]
    marked = tmp_path / "bom.csv"  # GB18030's own byte-order mark: "unknown column '\ufeff…'"
    marked.write_bytes(b"\x84\x31\x95\x33" + GOOD.encode("gb18030"))
    with db.session_scope(demo_db) as s:
        import_roster(s, marked, dry_run=True)


# --------------------------------------------------------------------------- shift text

@pytest.mark.parametrize(("text_form", "parsed", "canonical"), [
    ("", [], ""),
    ("always", [], ""),
    ("mon-fri 08:00-18:00", [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}],
     "mon-fri 08:00-18:00"),
    ("Sat,SUN 8:00-12:30; daily 22:00-06:00",
     [{"days": [5, 6], "start": "08:00", "end": "12:30"},
      {"days": list(range(7)), "start": "22:00", "end": "06:00"}],
     "sat-sun 08:00-12:30; daily 22:00-06:00"),
    ("fri-mon 20:00-24:00", [{"days": [0, 4, 5, 6], "start": "20:00", "end": "24:00"}],
     "mon,fri-sun 20:00-24:00"),
    ("monday,wed 09:00-10:00", [{"days": [0, 2], "start": "09:00", "end": "10:00"}],
     "mon,wed 09:00-10:00"),
    # full-width digits were stored as written: "08:００"
    ("sat ０８:００-１８:３０", [{"days": [5], "start": "08:00", "end": "18:30"}],
     "sat 08:00-18:30"),
])
def test_shift_text_parses_and_formats(text_form: str, parsed: list[dict[str, Any]],
                                       canonical: str) -> None:
    assert parse_shift_text(text_form) == parsed
    assert format_shifts(parsed) == canonical
    assert parse_shift_text(canonical) == parsed


@pytest.mark.parametrize("bad", ["mon 8-18", "mon-fri", "funday 08:00-09:00",
                                 "mon 25:00-26:00", "mon 08:00-18:00;; 09:00-10:00",
                                 "mon 08:60-09:00", "mon,,tue 08:00-09:00"])
def test_bad_shift_text_names_the_format(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_shift_text(bad)
    assert caught.value.field == "shifts" and caught.value.value == bad
    assert caught.value.valid and "mon-fri 08:00-18:00" in caught.value.valid


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def cli(demo_db: str) -> Iterator[Callable[..., Any]]:
    """Run ``patrolgrid`` on this test's database."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        get_settings.cache_clear()
        return runner.invoke(cli_app, list(args), env={"DATABASE_URL": demo_db,
                                                       "PATROLGRID_DATABASE_URL": demo_db})

    yield run
    get_settings.cache_clear()


def test_cli_import_refuses_with_lines_and_exit_1(cli: Callable[..., Any], demo_db: str,
                                                  tmp_path: Path) -> None:
    before = _counts(demo_db)
    result = cli("roster", "import", str(_write(tmp_path, BAD)))
    assert result.exit_code == 1, result.output
    assert "350102999999001" in result.output and "refused" in result.output
    assert _counts(demo_db) == before


def test_cli_import_export_and_demo_load(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("roster", "import", str(_write(tmp_path, GOOD)))
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
    out = tmp_path / "export.csv"
    result = cli("roster", "export", str(out))
    assert result.exit_code == 0, result.output
    assert "X-001" in out.read_text(encoding="utf-8-sig")
    again = cli("demo", "load", "--no-incidents", "--track-days", "0")
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output and "users create" in again.output


def test_excel_unicode_text_imports(demo_db: str, tmp_path: Path) -> None:
    """Excel's "Unicode Text": UTF-16 with a byte order mark, tab-separated."""
    body = "worker_code\tname\trole\r\nU16-1\t统一文本\tpatrol\r\n"
    path = _write(tmp_path, body, encoding="utf-16")
    with db.session_scope(demo_db) as s:
        report = import_roster(s, path)
    assert report.workers.as_dict()["created"] == 1
    assert [r["name"] for r in _rows(demo_db, "SELECT name FROM worker WHERE code = 'U16-1'")] == [
        "统一文本"]


def test_a_file_without_shifts_or_categories_keeps_those_of_existing_duties(
        demo_db: str, tmp_path: Path) -> None:
    """A missing column leaves that attribute unchanged, duties' shifts and categories too
    (they were set to always and every category); a new duty gets those defaults."""
    full = (f"worker_code,name,role,grid_code,duty,shifts,categories\n"
            f"N-1,夜班,grid_worker,{ANTAI_GRID},primary,fri 22:00-06:00,E0101\n")
    with db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, full))
    short = (f"worker_code,name,role,grid_code,duty\n"
             f"N-1,夜班,grid_worker,{ANTAI_GRID},primary\n"
             f"N-1,夜班,grid_worker,{ANTAI_GRID_2},backup\n")
    with db.session_scope(demo_db) as s:
        report = import_roster(s, _write(tmp_path, short))
    assert report.duties.as_dict() == {"created": 1, "updated": 0, "unchanged": 1, "deleted": 0}
    duties = _rows(demo_db, """SELECT d.grid_code, d.shifts, d.categories FROM duty d
                                 JOIN worker w ON w.id = d.worker_id WHERE w.code = 'N-1'
                                ORDER BY d.grid_code""")
    assert [(d["grid_code"], format_shifts(d["shifts"]), d["categories"]) for d in duties] == [
        (ANTAI_GRID, "fri 22:00-06:00", ["E0101"]), (ANTAI_GRID_2, "", None)]


def test_a_cell_that_is_not_storable_text_is_named(demo_db: str, tmp_path: Path) -> None:
    """A NUL in a cell was a traceback from the database."""
    before = _counts(demo_db)
    with pytest.raises(ImportRefused) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, "worker_code,name,role\nQX1,a\x00b,grid_worker\n"))
    (problem,) = caught.value.extra["problems"]
    assert (problem["row"], problem["field"], problem["value"]) == (2, "name", "a\\x00b")
    assert _counts(demo_db) == before


def test_a_team_without_members_survives_export_and_import(demo_db: str,
                                                           tmp_path: Path) -> None:
    """Export went through workers only, so a team without members was lost on a round trip;
    it is a row of team cells now, which import reads back."""
    body = (f"{HEADER}\n,,,,,QT-EMPTY,空队,volunteer,350102006000,,,,\n")
    with db.session_scope(demo_db) as s:
        report = import_roster(s, _write(tmp_path, body))
    assert report.teams.as_dict()["created"] == 1 and report.workers.as_dict()["created"] == 0
    out = tmp_path / "out.csv"
    with db.session_scope(demo_db) as s:
        export_roster(s, out)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    (empty,) = [r for r in rows if r["team_code"] == "QT-EMPTY"]
    assert (empty["worker_code"], empty["team_name"], empty["team_kind"],
            empty["team_grid_code"]) == ("", "空队", "volunteer", "350102006000")
    before = _counts(demo_db)
    with db.session_scope(demo_db) as s:
        again = import_roster(s, out)
    assert again.teams.as_dict()["created"] == 0 and _counts(demo_db) == before
    with pytest.raises(ImportRefused) as caught, db.session_scope(demo_db) as s:
        import_roster(s, _write(tmp_path, f"{HEADER}\n,,,,,QT-2,队,patrol,,{ANTAI_GRID},"
                                          "primary,,\n"))
    assert {p["field"] for p in caught.value.extra["problems"]} == {"grid_code", "duty"}
