"""Files that used to lose rows, create duplicates or refuse what they should not.

Each case was found by feeding the CLI odd files (see CHANGES.md, Fixed) and fails
without its fix. The city and helpers are those of ``test_incident_import_rules``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import Result

from data.incident_export import export_incidents
from geo.errors import InvalidInput
from geo.store.db import session_scope
from tests.data.test_incident_import_rules import MID, S, W, build_city, run, write_csv

IN_G1 = (W + 0.001, S + 0.005)
HEADER = ["external_id", "lon", "lat", "category", "reported_at", "description"]


@pytest.fixture
def db(db_url: str) -> str:
    return build_city(db_url)


def _count(url: str) -> tuple[int, int]:
    with session_scope(url) as s:
        return (int(s.execute(text("SELECT count(*) FROM incident")).scalar_one()),
                int(s.execute(text("SELECT count(*) FROM incident_event")).scalar_one()))


def _row(ext: str, description: str = "x") -> str:
    return f"{ext},{IN_G1[0]},{IN_G1[1]},E0101,2025-06-01T10:00:00+08:00,{description}\n"


def test_an_unclosed_quote_refuses_the_file_instead_of_swallowing_rows(
        db: str, tmp_path: Path) -> None:
    path = tmp_path / "stray.csv"
    path.write_text(",".join(HEADER) + "\n" + _row("S-1", '"stray quote')
                    + "".join(_row(f"S-{i}") for i in range(2, 6)), encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        run(db, path)
    assert caught.value.field == "file" and "never closed" in caught.value.message
    assert "row 1" in caught.value.message
    assert _count(db) == (0, 0)


def test_a_quoted_cell_followed_by_text_names_its_row(db: str, tmp_path: Path) -> None:
    path = tmp_path / "tail.csv"
    path.write_text(",".join(HEADER) + "\n" + _row("T-1") + _row("T-2", '"quoted"tail'),
                    encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        run(db, path)
    assert "row 2" in caught.value.message and '""' in caught.value.message
    assert _count(db) == (0, 0)


def test_a_cell_beyond_the_read_limit_names_its_row(db: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text(",".join(HEADER) + "\n" + _row("H-1") + _row("H-2", "x" * (17 << 20)),
                    encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        run(db, path)
    assert "row 2 has a cell longer than 16 MiB" in caught.value.message
    assert _count(db) == (0, 0)


def test_a_gb18030_file_whose_chinese_text_starts_late(db: str, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    lines = [",".join(HEADER)] + [_row(f"L-{i}").rstrip("\n") for i in range(3000)]
    lines.append(_row("L-last", "暴露垃圾").rstrip("\n"))
    path.write_bytes(("\n".join(lines) + "\n").encode("gb18030"))
    assert path.stat().st_size > 1 << 17  # far beyond the first read
    summary = run(db, path)
    assert summary.accepted == 3001
    with session_scope(db) as s:
        assert s.execute(text("SELECT description FROM incident WHERE external_id = 'L-last'")
                         ).scalar_one() == "暴露垃圾"


def test_a_long_description_is_a_rejected_row_not_an_unreadable_file(
        db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "long.csv", HEADER, [
        ["X-1", *IN_G1, "E0101", "", "y" * 200_000], ["X-2", *IN_G1, "E0101", "", "ok"]])
    report = tmp_path / "rejects.csv"
    summary = run(db, path, report)
    assert (summary.accepted, summary.rejected) == (1, 1)
    with report.open(encoding="utf-8") as f:
        [reject] = list(csv.DictReader(f))
    assert reject["field"] == "description" and len(reject["description"]) == 200_000


def test_ndjson_records_with_keys_the_first_lacks(db: str, tmp_path: Path) -> None:
    lines = [{"lon": IN_G1[0], "lat": IN_G1[1], "category": "E0101"},
             {"lon": IN_G1[0], "lat": IN_G1[1], "category": "E0101", "external_id": "N-2",
              "reported_at": "2025-06-01T10:00:00+08:00"},
             {"lon": IN_G1[0], "lat": IN_G1[1], "category": "E0101", "external_id": "N-6"},
             {"lon": IN_G1[0], "lat": IN_G1[1], "category": "E0101", "external_id": "N-6"}]
    path = tmp_path / "n.ndjson"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    summary = run(db, path)
    assert (summary.accepted, summary.duplicates) == (3, 1)
    again = run(db, path)
    assert (again.accepted, again.duplicates) == (1, 3)  # only the id-less one is new
    with session_scope(db) as s:
        year = s.execute(text("SELECT extract(year FROM reported_at) FROM incident "
                              "WHERE external_id = 'N-2'")).scalar_one()
    assert year == 2025
    named = run(db, path, external_id_field="external_id")
    assert named.duplicates == 3
    with pytest.raises(InvalidInput) as caught:
        run(db, path, external_id_field="ext")
    assert caught.value.field == "external_id_field" and "external_id" in str(caught.value.valid)


def test_geojson_whose_first_feature_has_no_geometry(db: str, tmp_path: Path) -> None:
    point = {"type": "Point", "coordinates": list(IN_G1)}
    features = [{"type": "Feature", "geometry": None, "properties": {"category": "E0101"}},
                {"type": "Feature", "geometry": point,
                 "properties": {"category": "E0101", "external_id": "K-2"}},
                {"type": "Feature", "geometry": point,
                 "properties": {"category": "E0101", "external_id": "K-2"}}]
    path = tmp_path / "k.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    summary = run(db, path)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (1, 1, 1)
    assert summary.rejects[0].row == 1


def test_the_report_keeps_columns_named_like_its_own(db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cols.csv", ["row", "external_id", "lon", "lat", "category",
                                             "value", "reason"],
                     [["8", "R-1", "east", IN_G1[1], "E0101", "v", "mine"]])
    report = tmp_path / "rejects.csv"
    run(db, path, report)
    with report.open(encoding="utf-8") as f:
        [line] = list(csv.DictReader(f))
    assert line["reject_row"] == "1" and line["reject_field"] == "lon"
    assert (line["row"], line["value"], line["reason"], line["lon"]) == ("8", "v", "mine",
                                                                        "east")


@pytest.mark.parametrize("lon", ["3_0.001", "３０.００１"])
def test_coordinates_in_odd_digits_are_rejected(db: str, tmp_path: Path, lon: str) -> None:
    path = write_csv(tmp_path / "d.csv", ["lon", "lat", "category"], [[lon, S + 0.005, "E0101"]])
    summary = run(db, path)
    assert summary.rejected == 1 and summary.rejects[0].field == "lon"


def test_whole_file_options_are_checked_even_without_rows(db: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", ["lon", "lat", "category"], [])
    with pytest.raises(InvalidInput) as caught:
        run(db, path, category_field="kind")
    assert caught.value.field == "category_field"
    rows = write_csv(tmp_path / "s.csv", ["lon", "lat", "category"],
                     [[MID - 0.001, S + 0.005, "E0101"]])
    with pytest.raises(InvalidInput) as bad:
        run(db, rows, source="bogus")
    assert bad.value.field == "source" and "hotline" in str(bad.value.valid)
    assert _count(db) == (0, 0)


def test_a_failed_export_leaves_the_file_as_it_was(db: str, tmp_path: Path) -> None:
    run(db, write_csv(tmp_path / "e.csv", HEADER, [["E-1", *IN_G1, "E0101", "", "x"]]))
    target = tmp_path / "keep.geojson"
    with session_scope(db) as s:
        assert export_incidents(s, target) == 1
        before = target.read_bytes()
        with pytest.raises(InvalidInput):
            export_incidents(s, target, status="Closed")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_a_report_path_that_cannot_be_written_refuses_first(
        db: str, tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = write_csv(tmp_path / "r.csv", HEADER, [["R-1", *IN_G1, "E0101", "", "x"]])
    result = cli("incidents", "import", str(path), "--report",
                 str(tmp_path / "missing" / "rejects.csv"), "--quiet")
    assert result.exit_code == 2, result.output
    assert "missing" in result.output
    assert _count(db) == (0, 0)


def test_an_unreadable_row_names_the_record_and_what_is_readable(db: str,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(HEADER) + "\n" + _row("U-1") + _row("U-2").rstrip("\n")
                    + ",one,too,many\n", encoding="utf-8")
    summary = run(db, path)
    [reject] = summary.rejects
    assert (reject.row, reject.kind, reject.field) == (2, "unreadable record", "record")
    assert reject.valid and "one value per header field" in reject.valid


def test_a_refused_import_leaves_the_report_file_as_it_was(
        db: str, tmp_path: Path, cli: Callable[..., Result]) -> None:
    """The report was opened at the start: a refused import emptied an earlier report."""
    path = write_csv(tmp_path / "r.csv", HEADER, [["R-1", *IN_G1, "E0101", "", "x"],
                                                  ["R-2", "east", IN_G1[1], "E0101", "", "x"]])
    report = tmp_path / "rejects.csv"
    report.write_text("an earlier report\n", encoding="utf-8")
    refused = cli("incidents", "import", path, "--report", report, "--category-field", "kind",
                  "--quiet")
    assert refused.exit_code == 2, refused.output
    assert report.read_text(encoding="utf-8") == "an earlier report\n"
    assert _count(db) == (0, 0)
    done = cli("incidents", "import", path, "--report", report, "--quiet")
    assert done.exit_code == 0, done.output
    with report.open(encoding="utf-8") as f:
        [reject] = list(csv.DictReader(f))
    assert reject["row"] == "2" and reject["field"] == "lon"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "rejects.csv"]


def test_bytes_of_no_encoding_name_their_line(db: str, tmp_path: Path) -> None:
    """Neither UTF-8 nor GB18030: the codec's error named a position in its read buffer."""
    path = tmp_path / "bytes.csv"
    path.write_bytes((",".join(HEADER) + "\n" + _row("B-1")).encode() + _row("B-2").encode()
                     .replace(b"x\n", b"\xff\xfe\n"))
    with pytest.raises(InvalidInput) as caught:
        run(db, path)
    assert caught.value.field == "file" and "line 3" in caught.value.message
    assert "ff" in caught.value.message and "GB18030" in str(caught.value.valid)
    json_path = tmp_path / "bytes.geojson"
    json_path.write_bytes(b'{"type": "FeatureCollection", "features": [{"type": "Feature", '
                          b'"geometry": null, "properties": {"a": "\xff"}}]}')
    with pytest.raises(InvalidInput) as bad_json:
        run(db, json_path)
    assert "row 1" in bad_json.value.message and "UTF-8" in str(bad_json.value.valid)
    assert _count(db) == (0, 0)
