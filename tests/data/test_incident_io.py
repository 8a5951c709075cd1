"""Streaming readers of incident files and the reject report (no database needed)."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import pytest

from data.incident_io import format_of, open_rows
from data.incident_report import Reject, RejectWriter
from geo.errors import InvalidInput


def rows_of(path: Path, fmt: str | None = None) -> list:
    with open_rows(path, fmt) as reader:
        return list(reader)


def test_csv_rows_numbers_empty_cells_and_bad_widths(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('id,lon,lat,note\n1,119.3,26.08,"two\nlines"\n2,,26.1,\n\n3,1,2\n'
                    '4,1,2,x,extra\n', encoding="utf-8")
    with open_rows(path) as reader:
        assert reader.fields == ["id", "lon", "lat", "note"]  # known before the first row
        rows = list(reader)
    assert [r.row for r in rows] == [1, 2, 4, 5]  # the blank record counts as row 3
    assert rows[0].values == {"id": "1", "lon": "119.3", "lat": "26.08", "note": "two\nlines"}
    assert rows[1].values["lon"] is None and rows[1].values["note"] is None
    assert rows[0].problem is None and rows[1].problem is None
    assert rows[2].problem == "the row has 3 values but the header has 4 fields"
    assert rows[2].values["note"] is None
    assert "5 values" in str(rows[3].problem) and rows[3].original == ["4", "1", "2", "x",
                                                                        "extra"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "zh.csv"
    path.write_text("编号,经度,纬度,描述\nA1,119.3,26.08,井盖缺失\n", encoding=encoding)
    [row] = rows_of(path)
    assert row.values == {"编号": "A1", "经度": "119.3", "纬度": "26.08", "描述": "井盖缺失"}


def test_csv_header_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty") as exc:
        open_rows(empty)
    assert exc.value.field == "file"
    twice = tmp_path / "twice.csv"
    twice.write_text("lon,lat,lon\n1,2,3\n")
    with pytest.raises(InvalidInput, match="'lon' twice"):
        open_rows(twice)


def feature(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def test_geojson_features_points_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "in.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "name": "x", "features": [
        feature({"id": 1, "category": "E0101"}, {"type": "Point", "coordinates": [119.3, 26.1]}),
        feature({"id": 2}, None),
        feature({"id": 3}, {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}),
        feature({"id": 4}, {"type": "Point", "coordinates": []}),
        {"lon": 1, "lat": 2},
        [1, 2],
    ]}), encoding="utf-8")
    rows = rows_of(path)
    assert [r.row for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (rows[0].lon, rows[0].lat, rows[0].has_geometry) == (119.3, 26.1, True)
    assert isinstance(rows[0].lon, float)
    assert rows[0].values == {"id": 1, "category": "E0101"}
    assert rows[1].problem is None and not rows[1].has_geometry
    assert rows[2].problem == "the geometry is a LineString, not a Point"
    assert "no (lon, lat)" in str(rows[3].problem)
    assert rows[4].values == {"lon": 1, "lat": 2}  # a plain object: its keys are the fields
    assert "not a JSON object" in str(rows[5].problem)
    assert rows[2].original_values()["geometry"]["type"] == "LineString"


def test_geojson_array_bom_and_refusals(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_bytes(b"\xef\xbb\xbf  " + json.dumps([{"lon": 1, "lat": 2}]).encode())
    assert rows_of(array)[0].values == {"lon": 1, "lat": 2}
    empty = tmp_path / "e.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    assert rows_of(empty) == []
    single = tmp_path / "f.geojson"
    single.write_text(json.dumps(feature({}, {"type": "Point", "coordinates": [1, 2]})))
    with pytest.raises(InvalidInput, match="of type 'Feature', not a FeatureCollection"):
        rows_of(single)
    text = tmp_path / "t.geojson"
    text.write_text("lon,lat\n1,2\n")
    with pytest.raises(InvalidInput, match="not a GeoJSON FeatureCollection"):
        rows_of(text)
    broken = tmp_path / "b.geojson"
    good = [feature({"n": i}, {"type": "Point", "coordinates": [1, 2]}) for i in range(3)]
    broken.write_text(json.dumps({"type": "FeatureCollection", "features": good})[:-20])
    read: list = []
    with pytest.raises(InvalidInput, match="after row 2") as exc, open_rows(broken) as reader:
        read.extend(reader)
    assert len(read) == 2 and exc.value.field == "file"


def test_ndjson_lines_features_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.ndjson"
    path.write_text('{"lon": 1, "lat": 2}\n\n{oops\n'
                    + json.dumps(feature({"a": "b"}, {"type": "Point", "coordinates": [3, 4]}))
                    + '\n"text"\n', encoding="utf-8")
    rows = rows_of(path)
    assert [r.row for r in rows] == [1, 3, 4, 5]  # line numbers
    assert rows[0].values == {"lon": 1, "lat": 2}
    assert "not a JSON object" in str(rows[1].problem) and rows[1].original == "{oops"
    assert (rows[2].lon, rows[2].lat, rows[2].values) == (3, 4, {"a": "b"})
    assert "not a JSON object but str" in str(rows[3].problem)


def test_formats_from_names_and_options(tmp_path: Path) -> None:
    assert format_of("a.CSV") == "csv" and format_of("b.jsonl") == "ndjson"
    assert format_of("upload", "GeoJSON") == "geojson"
    with pytest.raises(InvalidInput) as exc:
        format_of("incidents.xlsx")
    assert exc.value.field == "file" and ".ndjson" in str(exc.value.valid)
    with pytest.raises(InvalidInput) as exc:
        format_of("x.csv", "xml")
    assert exc.value.field == "format" and exc.value.valid == "csv, geojson or ndjson"


def test_geojson_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """A FeatureCollection of 200,000 features (~30 MB) is read without holding it."""
    path = tmp_path / "big.geojson"
    n = 200_000
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type": "FeatureCollection", "features": [')
        for i in range(n):
            out.write(("," if i else "") + json.dumps(feature(
                {"external_id": f"X{i:07d}", "category": "E0101", "description": "x" * 60},
                {"type": "Point", "coordinates": [119.3 + i * 1e-7, 26.08]})))
        out.write("]}")
    size = path.stat().st_size
    assert size > 25_000_000
    tracemalloc.start()
    count = 0
    last = None
    with open_rows(path) as reader:
        for row in reader:
            count += 1
            last = row
            if count == n // 2:
                assert 0.3 * size < reader.position < 0.7 * size  # progress by bytes
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n and last is not None and last.values["external_id"] == f"X{n - 1:07d}"
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


def test_reject_report_keeps_csv_columns_or_json(tmp_path: Path) -> None:
    report = tmp_path / "rejects.csv"
    writer = RejectWriter(report)
    writer.open(["id", "lon", "lat", "reason"])
    writer.write(Reject(row=7, reason="no coordinates", kind="no coordinates", field="lon",
                        original={"id": "9", "lon": None, "lat": None, "reason": "mine"}))
    writer.write(Reject(row=8, reason="bad width", kind="unreadable record",
                        original=["1", "2"]))
    writer.close()
    with report.open(encoding="utf-8") as f:
        lines = list(csv.reader(f))
    # the source has its own 'reason' column: the report's own five are prefixed, and every
    # original column is kept, so the report imports again
    assert lines[0] == ["reject_row", "reject_reason", "reject_field", "reject_value",
                        "reject_valid", "id", "lon", "lat", "reason"]
    assert lines[1] == ["7", "no coordinates", "lon", "", "", "9", "", "", "mine"]
    assert lines[2][:2] == ["8", "bad width"] and lines[2][5:] == ["1", "2"]
    json_report = tmp_path / "rejects2.csv"
    writer = RejectWriter(json_report)
    writer.open(None)
    writer.write(Reject(row=1, reason="r", kind="k", field="lat", value=95.0,
                        valid="from -90 to 90", original={"lon": 1, "lat": 95.0, "名": "值"}))
    writer.close()
    with json_report.open(encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["row", "reason", "field", "value", "valid", "original"]
    assert lines[1][:5] == ["1", "r", "lat", "95.0", "from -90 to 90"]
    assert json.loads(lines[1][5]) == {"lon": 1, "lat": 95.0, "名": "值"}
    empty = tmp_path / "none.csv"
    writer = RejectWriter(empty)
    writer.close()
    assert empty.read_text(encoding="utf-8").splitlines() == ["row,reason,field,value,valid,"
                                                              "original"]
