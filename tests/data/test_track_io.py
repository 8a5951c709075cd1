"""Track files on the real GeoLife trajectories: every format, cleaning of their noise, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gpxpy
import gpxpy.gpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import Result

from data.track_io import read_raw, read_tracks
from geo.errors import InvalidInput
from geo.store.roster import create_worker
from geo.store.tracks import save_track
from geo.tracks.clean import Limits, clean_track, haversine_m
from geo.tracks.points import TrackInput, from_us

Cli = Callable[..., Result]
LIMITS = Limits()


@pytest.fixture
def geolife(shared_data: Path) -> Path:
    return shared_data / "gps" / "geolife"


@pytest.fixture
def plt_files(geolife: Path) -> list[Path]:
    files = sorted(geolife.glob("*/Trajectory/*.plt"))
    assert len(files) == 4
    return files


def _plt_rows(path: Path) -> list[list[str]]:
    """The data rows of a PLT file, read here with the csv module (independently of track_io)."""
    with path.open(newline="") as handle:
        return [row for row in list(csv.reader(handle))[6:] if row]


def test_plt_is_read_lat_first_with_gmt_times(plt_files: list[Path]) -> None:
    for path in plt_files:
        rows = _plt_rows(path)
        raw = read_raw(path)
        assert len(raw.t_us) == len(rows)
        assert [float(x) for x in raw.x] == [float(r[1]) for r in rows]  # lon is field 2
        assert [float(y) for y in raw.y] == [float(r[0]) for r in rows]
        first = from_us(raw.t_us[0])
        assert first == dt.datetime.fromisoformat(f"{rows[0][5]}T{rows[0][6]}+00:00")
        # the day count (days since 1899-12-30) agrees with the GMT date and time
        days = dt.datetime(1899, 12, 30, tzinfo=dt.UTC) + dt.timedelta(days=float(rows[0][4]))
        assert abs((days - first).total_seconds()) < 1
    track, sources = read_tracks(plt_files)
    assert len(track) == sum(s["points"] for s in sources)
    assert track.lon.min() > 116 and track.lon.max() < 117  # Beijing
    assert track.lat.min() > 39.9 and track.lat.max() < 40.1


def _write_formats(path: Path, tmp: Path) -> dict[str, Path]:
    """The same real track as GPX (via gpxpy; also in GB2312 as it declares), CSV (ISO and
    epoch; also in GB18030 with Chinese headers, as Chinese Excel saves it) and GeoJSON
    (two ways)."""
    raw = read_raw(path)
    times = [from_us(t) for t in raw.t_us]
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    for x, y, t in zip(raw.x, raw.y, times, strict=True):
        segment.points.append(gpxpy.gpx.GPXTrackPoint(float(y), float(x), time=t))
    track.segments.append(segment)
    gpx.tracks.append(track)
    out = {"gpx": tmp / "walk.gpx", "csv": tmp / "walk.csv", "epoch": tmp / "epoch.csv",
           "points": tmp / "points.geojson", "line": tmp / "line.geojson"}
    out["gpx"].write_text(gpx.to_xml(), encoding="utf-8")
    track.name = "鼓楼巡逻"
    out["gb2312_gpx"] = tmp / "gb2312.gpx"
    out["gb2312_gpx"].write_bytes(gpx.to_xml().replace('encoding="UTF-8"', 'encoding="GB2312"')
                                  .encode("gb2312"))
    assert b'encoding="GB2312"' in out["gb2312_gpx"].read_bytes()
    local = dt.timezone(dt.timedelta(hours=8))
    out["gbk_csv"] = tmp / "gbk.csv"
    out["gbk_csv"].write_bytes(("定位时间,纬度,经度,备注\n" + "".join(
        f"{t.astimezone(local).isoformat()},{y},{x},巡逻\n"
        for x, y, t in zip(raw.x, raw.y, times, strict=True))).encode("gb18030"))
    out["csv"].write_text("time,latitude,longitude\n" + "".join(
        f"{t.astimezone(local).isoformat()},{y},{x}\n"
        for x, y, t in zip(raw.x, raw.y, times, strict=True)), encoding="utf-8")
    out["epoch"].write_text("lng,lat,timestamp\n" + "".join(
        f"{x},{y},{t.timestamp():.0f}\n" for x, y, t in zip(raw.x, raw.y, times, strict=True)))
    out["points"].write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
         "properties": {"time": t.isoformat()}}
        for x, y, t in zip(raw.x, raw.y, times, strict=True)]}))
    half = len(times) // 2
    coords = [[float(x), float(y), 50.0] for x, y in zip(raw.x, raw.y, strict=True)]
    out["line"].write_text(json.dumps({"type": "Feature", "properties": {
        "coordTimes": [[t.isoformat() for t in times[:half]],
                       [t.isoformat() for t in times[half:]]]},
        "geometry": {"type": "MultiLineString", "coordinates": [coords[:half], coords[half:]]}}))
    return out


def test_every_format_reads_the_same_points(plt_files: list[Path], tmp_path: Path) -> None:
    reference, _ = read_tracks([plt_files[1]])
    for kind, path in _write_formats(plt_files[1], tmp_path).items():
        track, sources = read_tracks([path])
        assert sources[0]["points"] == len(reference), kind
        assert np.array_equal(track.t_us, reference.t_us), kind
        assert np.allclose(track.lon, reference.lon, atol=1e-9), kind
        assert np.allclose(track.lat, reference.lat, atol=1e-9), kind


def test_gcj02_files_are_converted_to_wgs84(plt_files: list[Path], tmp_path: Path) -> None:
    path = _write_formats(plt_files[1], tmp_path)["csv"]
    wgs, _ = read_tracks([path])
    gcj, _ = read_tracks([path], crs="gcj02")
    shift = haversine_m(wgs.lon, wgs.lat, gcj.lon, gcj.lat)
    assert shift.min() > 100 and shift.max() < 700  # the GCJ-02 offset in Beijing


def test_real_geolife_noise_is_cleaned(plt_files: list[Path]) -> None:
    totals = {"spikes": 0, "gaps": 0}
    for path in plt_files:
        track, _ = read_tracks([path])
        raw_dt = np.diff(track.t_us) / 1e6
        out = clean_track(track.lon, track.lat, track.t_us, limits=LIMITS)
        report = out.report
        assert report.kept + report.spikes + report.duplicates == report.received
        totals["spikes"] += report.spikes
        totals["gaps"] += report.gaps
        k = out.keep
        dist = haversine_m(track.lon[k][:-1], track.lat[k][:-1], track.lon[k][1:],
                           track.lat[k][1:])
        dt_s = np.diff(track.t_us[k]) / 1e6
        inside = ~out.seg_start[1:]
        assert np.all(dist[inside] <= LIMITS.max_speed_mps * dt_s[inside] + LIMITS.jitter_m)
        assert np.all(dt_s[inside] <= LIMITS.max_gap_s)
        assert report.gaps == int(np.count_nonzero(dt_s > LIMITS.max_gap_s))
        assert report.gaps >= int(np.count_nonzero(raw_dt > LIMITS.max_gap_s)) - report.spikes
        assert report.segments == int(out.seg_start.sum())
    assert totals["spikes"] > 0 and totals["gaps"] > 0


def test_geolife_sent_five_fixes_at_a_time_keeps_what_the_whole_file_keeps(
        plt_files: list[Path], session: Session) -> None:
    """A phone uploading every few fixes: fixes after a ride at a batch end are held, not lost."""
    for k, path in enumerate(plt_files):
        track, _ = read_tracks([path])
        whole = clean_track(track.lon, track.lat, track.t_us, limits=LIMITS)
        worker = create_worker(session, code=f"GL-B{k}", name=path.name, role="patrol").id
        for i in range(0, len(track.t_us), 5):
            part = slice(i, i + 5)
            save_track(session, worker_id=worker, limits=LIMITS, track=TrackInput(
                lon=track.lon[part], lat=track.lat[part], t_us=track.t_us[part]))
        stored = set(session.execute(text(
            "SELECT (extract(epoch FROM t) * 1000000)::bigint FROM track_point"
            " WHERE worker_id = :w"), {"w": worker}).scalars())
        expected = set(track.t_us[whole.keep].tolist())
        # only the first fixes of a ride that starts at a batch end may differ (stored before
        # the ride's next fixes could show them to be a glitch)
        assert len(expected - stored) <= 3 and len(stored - expected) <= 4, path.name
        assert session.execute(text("SELECT count(*) FROM track_held")).scalar() == 0


def test_the_first_fix_after_a_long_gap_jumping_away_is_dropped(plt_files: list[Path]) -> None:
    """In the real tracks, the fix after the longest pause is often the GPS's cold start."""
    dropped = 0
    for path in plt_files:
        track, _ = read_tracks([path])
        dt_s = np.diff(track.t_us) / 1e6
        after = int(np.argmax(dt_s)) + 1  # the first fix after the longest pause
        leg = haversine_m(track.lon[after:after + 1], track.lat[after:after + 1],
                          track.lon[after + 1:after + 2], track.lat[after + 1:after + 2])[0]
        pace = leg / (dt_s[after] or 1)
        out = clean_track(track.lon, track.lat, track.t_us, limits=LIMITS)
        reasons = {d["index"]: d["reason"] for d in out.report.dropped}
        if leg > LIMITS.max_speed_mps * dt_s[after] + LIMITS.jitter_m and pace > 10:
            assert reasons.get(after) == "spike", path
            dropped += 1
    assert dropped >= 1


@pytest.mark.parametrize(("name", "content", "field"), [
    ("walk.txt", "x", "file"),
    ("walk.csv", "lon,lat\n1,2\n", "file"),
    ("walk.csv", "lon,lat,t\n119.3,26.1,2024-05-01T08:00:00\n", "walk.csv[0].t"),
    ("walk.csv", "lon,lat,t\n119.3,26.1,2024-05-01T08:00:00Z\n119.3,126.1,"
                 "2024-05-01T08:00:05Z\n", "walk.csv[1].lat"),
    ("walk.csv", "lon,lat,t\n26.1,119.3,2024-05-01T08:00:00Z\n", "walk.csv[0].lat"),
    ("walk.csv", "lon,lat,t\n119.3,26.1,2099-05-01T08:00:00Z\n", "walk.csv[0].t"),
    ("walk.csv", "lon,lat,t\nabc,26.1,2024-05-01T08:00:00Z\n", "walk.csv[0].lon"),
    ("walk.plt", "h\nh\nh\nh\nh\nh\n39.9,116.3,0,492\n", "walk.plt[0]"),
    ("walk.gpx", "<gpx version='1.1' creator='t'><trk><trkseg><trkpt lat='26.1' lon='119.3'>"
                 "</trkpt></trkseg></trk></gpx>", "walk.gpx[0].t"),
    ("walk.gpx", "<gpx version='1.1' creator='t'><wpt lat='26.1' lon='119.3'/></gpx>", "file"),
    ("walk.gpx", "not xml", "file"),
    ("walk.gpx", "<?xml version='1.0' encoding='klingon'?><gpx/>", "file"),
    ("walk.geojson", '{"type": "Feature", "properties": {}, "geometry": '
                     '{"type": "LineString", "coordinates": [[119.3, 26.1], [119.3, 26.2]]}}',
     "walk.geojson: features[0].properties.coordTimes"),
    ("walk.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                     '"properties": {}, "geometry": {"type": "Point", "coordinates": '
                     '[119.3, 26.1]}}]}', "walk.geojson[0].t"),
    # lists where numbers belong, and JSON nested too deep for the parser, were 500s
    ("walk.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                     '"properties": {"t": "2024-05-01T08:00:00Z"}, "geometry": {"type": '
                     '"Point", "coordinates": [[119.3, 26.1], [119.4, 26.2]]}}]}',
     "walk.geojson[0].lon"),
    ("walk.geojson", "[" * 100_000 + "]" * 100_000, "file"),
])
def test_bad_files_are_refused_naming_the_point(tmp_path: Path, name: str, content: str,
                                                field: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        read_tracks([path])
    assert caught.value.field == field
    assert caught.value.valid
    if content.startswith("lon,lat,t\n26.1,119.3"):
        assert "swapped" in caught.value.message


def test_bytes_of_no_encoding_are_named(tmp_path: Path) -> None:
    """A CSV neither UTF-8 nor GB18030, and a GPX not in the encoding it declares, name
    the line and the byte."""
    path = tmp_path / "walk.csv"
    path.write_bytes(b"lon,lat,t\n119.3,26.1,2024-05-01T08:00:00Z\n\x81\x30\xff,26.1,x\n")
    with pytest.raises(InvalidInput) as caught:
        read_tracks([path])
    assert caught.value.field == "file" and "at line 3" in caught.value.message
    path = tmp_path / "walk.gpx"
    path.write_bytes("<?xml version='1.0' encoding='UTF-8'?>\n<gpx version='1.1'>\n<trk><name>"
                     "巡逻</name></trk></gpx>".encode("gb18030"))
    with pytest.raises(InvalidInput) as caught:
        read_tracks([path])
    assert caught.value.field == "file" and "not UTF-8 text" in caught.value.message
    # 巡 in GB18030 (d1 b2) happens to be UTF-8 too; 逻 (c2 df) is not
    assert "bytes c2 at line 3 (byte 73)" in caught.value.message, caught.value.message
    assert "UTF-8" in (caught.value.valid or "")


def test_byte_order_marks_and_encoding_names(plt_files: list[Path], tmp_path: Path) -> None:
    """A GB18030 CSV with its own byte-order mark lost its first column ("\\ufeff定位时间");
    ``gb2312-80`` was read as strict GB2312; a UTF-8 BOM put the named byte 3 too early."""
    files = _write_formats(plt_files[1], tmp_path)
    reference, _ = read_tracks([files["gbk_csv"]])
    marked = tmp_path / "bom.csv"
    marked.write_bytes(b"\x84\x31\x95\x33" + files["gbk_csv"].read_bytes())
    assert np.array_equal(read_tracks([marked])[0].t_us, reference.t_us)
    gpx = files["gb2312_gpx"].read_bytes().replace(b'encoding="GB2312"', b'encoding="gb2312-80"')
    gbk_only = tmp_path / "gbk.gpx"  # 镕 is in GBK, not in GB2312
    gbk_only.write_bytes(gpx.replace("鼓楼巡逻".encode("gb18030"), "镕".encode("gb18030")))
    assert len(read_tracks([gbk_only])[0].t_us) == len(reference.t_us)
    bad = tmp_path / "bad.gpx"
    bad.write_bytes(b"\xef\xbb\xbf<gpx version='1.1'>\xff</gpx>")
    with pytest.raises(InvalidInput) as caught:
        read_tracks([bad])
    assert "(byte 23)" in caught.value.message, caught.value.message


def test_an_unreadable_gpx_time_is_named_not_called_missing(tmp_path: Path) -> None:
    path = tmp_path / "walk.gpx"
    point = "<trkpt lat='26.1' lon='119.3'><time>{}</time></trkpt>"
    path.write_text("<gpx version='1.1' creator='t' xmlns='http://www.topografix.com/GPX/1/1'>"
                    "<trk><trkseg>" + point.format("2024-05-01T08:00:00Z") + "</trkseg>"
                    "<trkseg>" + point.format("2024-05-01T08:00:05Z") + point.format(" gestern ")
                    + "</trkseg></trk></gpx>", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        read_tracks([path])
    assert (caught.value.field, caught.value.value) == ("walk.gpx[2].t", "gestern")
    assert "unreadable <time> 'gestern'" in caught.value.message
    assert "ISO 8601" in (caught.value.valid or "")


# --------------------------------------------------------------------------- the CLI

def _count(session: Session, sql: str, **params: Any) -> Any:
    session.rollback()  # see the CLI's commits
    return session.execute(text(sql), params).scalar()


def test_cli_imports_a_geolife_folder_once(cli: Cli, session: Session, geolife: Path,
                                           tmp_path: Path) -> None:
    worker = create_worker(session, code="GL-001", name="geolife 001", role="patrol")
    session.commit()
    folder = geolife / "001" / "Trajectory"
    report = tmp_path / "report.json"
    dry = cli("tracks", "import", folder, "--worker", "GL-001", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert _count(session, "SELECT count(*) FROM track_point") == 0
    done = cli("tracks", "import", folder, "--worker", worker.id, "--report", report)
    assert done.exit_code == 0, done.output
    data = json.loads(report.read_text())
    expected = sum(len(_plt_rows(p)) for p in folder.glob("*.plt"))
    assert data["received"] == expected
    stored = _count(session, "SELECT count(*) FROM track_point WHERE worker_id = :w",
                    w=worker.id)
    assert stored == data["stored"] == expected - data["cleaning"]["spikes"]
    assert data["partitions"] == ["track_point_y2008m10"]
    newest = _count(session, "SELECT max(t) FROM track_point WHERE worker_id = :w", w=worker.id)
    seen = _count(session, "SELECT last_seen_at FROM worker WHERE id = :w", w=worker.id)
    assert seen == newest
    again = cli("tracks", "import", folder, "--worker", "GL-001", "--report", report)
    assert again.exit_code == 0, again.output
    data = json.loads(report.read_text())
    assert data["stored"] == 0
    assert data["cleaning"]["already_stored"] == stored
    assert _count(session, "SELECT count(*) FROM track_point") == stored
    listed = cli("tracks", "partitions")
    assert listed.exit_code == 0 and "track_point_y2008m10" in listed.output


def test_cli_refuses_bad_input_and_writes_nothing(cli: Cli, session: Session, geolife: Path,
                                                  tmp_path: Path) -> None:
    create_worker(session, code="GL-000", name="geolife 000", role="patrol")
    session.commit()
    bad = tmp_path / "bad.csv"
    bad.write_text("lon,lat,t\n116.3,39.9,2008-10-23T02:53:04\n", encoding="utf-8")
    files = sorted((geolife / "000" / "Trajectory").glob("*.plt"))
    result = cli("tracks", "import", *files, bad, "--worker", "GL-000")
    assert result.exit_code == 2
    assert "bad.csv[0].t" in result.output or "time zone" in result.output
    assert _count(session, "SELECT count(*) FROM track_point") == 0
    unknown = cli("tracks", "import", files[0], "--worker", "nobody")
    assert unknown.exit_code == 2 and "nobody" in unknown.output
