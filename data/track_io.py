"""Reading GPS track files: GPX, GeoLife PLT, CSV and GeoJSON.

Each reader returns the raw coordinates of the file's points (in the file's
order, in the CRS the caller names, WGS-84 by default) and their times;
:func:`read_tracks` checks them with :func:`geo.tracks.points.track_input` and
joins several files into one upload. Errors name the file and the point
(``walk.csv[12].t``: the 13th point of the file) or the line, the value and what
is valid.

Times:

- GPX: ``<time>`` of each ``<trkpt>`` (gpxpy); GPX times are UTC by the
  standard, so a time without a zone is read as UTC. The file is read in the
  encoding its XML declaration names (UTF-8 without one; GB2312 and GBK as GB18030,
  their superset, as Chinese devices write them).
- PLT (Microsoft GeoLife): ``lat,lon,0,altitude_ft,days,date,time`` after six
  header lines; date and time are GMT (GeoLife user guide). Note: lat first.
- CSV (UTF-8, else GB18030 as Chinese Excel saves it): a header row with a
  longitude column (``lon``, ``lng``, ``longitude``, ``x`` or ``经度``), a latitude
  column (``lat``, ``latitude``, ``y`` or ``纬度``) and a time column (``t``,
  ``time``, ``timestamp``, ``datetime``, ``recorded_at``, ``时间`` or ``定位时间``)
  holding ISO 8601 with a time zone or seconds since 1970-01-01 UTC.
- GeoJSON: Point features with a ``t``/``time``/``timestamp`` property, or
  LineString/MultiLineString features with per-vertex ``coordTimes`` (or
  ``times``) as written by togeojson and many trackers.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.text_encoding import csv_encoding
from geo.errors import InvalidInput
from geo.jsonkeys import loads_unique
from geo.tracks.points import TrackInput, check_count, parse_time, track_input

#: File endings and the format each means.
FORMATS: dict[str, str] = {".gpx": "gpx", ".plt": "plt", ".csv": "csv", ".geojson": "geojson",
                           ".json": "geojson"}
FORMATS_VALID = "gpx, plt (GeoLife), csv or geojson (files ending in " + ", ".join(FORMATS) + ")"
LON_COLUMNS = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_COLUMNS = ("lat", "latitude", "y", "纬度")
TIME_COLUMNS = ("t", "time", "timestamp", "datetime", "recorded_at", "时间", "定位时间")
TIME_PROPERTIES = ("t", "time", "timestamp")
PLT_HEADER_LINES = 6


@dataclass
class RawPoints:
    """Points as read from a file, before checks: x, y in the file's CRS, times in µs."""

    x: list[Any] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    t_us: list[int] = field(default_factory=list)

    def add(self, x: Any, y: Any, t_us: int) -> None:
        """Append one point."""
        self.x.append(x)
        self.y.append(y)
        self.t_us.append(t_us)


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The format of ``path``: ``fmt`` when given, else from the file ending."""
    if fmt is not None:
        key = fmt.strip().lower().lstrip(".")
        if key == "json":
            key = "geojson"
        if key not in set(FORMATS.values()):
            raise InvalidInput(f"unknown track format {fmt!r}", field="format", value=fmt,
                               valid=FORMATS_VALID)
        return key
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"cannot tell the track format of {Path(path).name!r}", field="file",
                           value=Path(path).name, valid=FORMATS_VALID + ", or give the format")
    return FORMATS[suffix]


def read_raw(path: str | Path, fmt: str | None = None, *, name: str | None = None) -> RawPoints:
    """Read a track file's points (coordinates unchecked, times parsed).

    Parameters
    ----------
    path : path
        The file.
    fmt : str, optional
        ``gpx``, ``plt``, ``csv`` or ``geojson``; from the ending when omitted.
    name : str, optional
        The name used in errors (the uploaded file name); the file name by default.
    """
    path = Path(path)
    label = name or path.name
    reader = {"gpx": _read_gpx, "plt": _read_plt, "csv": _read_csv,
              "geojson": _read_geojson}[format_of(name or path, fmt)]
    try:
        return reader(path, label)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{label} is not UTF-8 text: {exc.reason}", field="file",
                           value=label, valid="a UTF-8 text file") from None


def read_tracks(paths: Sequence[str | Path], *, fmt: str | None = None, crs: str | None = None,
                names: Sequence[str] | None = None, now: dt.datetime | None = None,
                clock_skew_s: float = 600.0,
                max_points: int | None = None) -> tuple[TrackInput, list[dict[str, Any]]]:
    """Read and check one or more files of one worker as one upload.

    Returns
    -------
    tuple
        The joined :class:`~geo.tracks.points.TrackInput` and, per file,
        ``{"file", "format", "points"}``.
    """
    inputs: list[TrackInput] = []
    sources: list[dict[str, Any]] = []
    total = 0
    for i, path in enumerate(paths):
        label = names[i] if names is not None else Path(path).name
        kind = format_of(label, fmt)
        raw = read_raw(path, kind, name=label)
        check_count(len(raw.t_us), field=label)  # an empty file is named first
        total += len(raw.t_us)
        check_count(total, field="points", max_points=max_points)
        inputs.append(track_input(raw.x, raw.y, raw.t_us, crs=crs, field=label, now=now,
                                  clock_skew_s=clock_skew_s))
        sources.append({"file": label, "format": kind, "points": len(raw.t_us)})
    if not inputs:
        raise InvalidInput("no track file given", field="file", value=None, valid=FORMATS_VALID)
    joined = TrackInput(lon=np.concatenate([t.lon for t in inputs]),
                        lat=np.concatenate([t.lat for t in inputs]),
                        t_us=np.concatenate([t.t_us for t in inputs]), crs=inputs[0].crs)
    return joined, sources


# --------------------------------------------------------------------------- GPX

#: An XML declaration naming an encoding (ASCII in every encoding the declaration can be read in).
_XML_DECLARATION = re.compile(
    rb"""\A\s*<\?xml\s[^>]*?encoding\s*=\s*["']([^"'>]{1,40})["'][^>]*\?>""")
#: Encodings read as GB18030, which holds them all (compared without case, ``-`` or ``_``).
_GB = {"gb2312", "gbk", "cp936", "ms936", "euccn", "xgbk", "gb18030", "gb231280"}


def gpx_text(data: bytes, label: str) -> str:
    """A GPX file's text, decoded as its XML declaration says (UTF-8 without one), the
    declaration left out; InvalidInput naming the encoding, or the byte it cannot read."""
    skipped = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    data = data[skipped:]
    found = _XML_DECLARATION.match(data)
    declared = found.group(1).decode("ascii", "replace").strip() if found else "UTF-8"
    codec = "gb18030" if declared.lower().replace("-", "").replace("_", "") in _GB \
        else declared
    try:
        codecs.lookup(codec)
    except LookupError:
        raise InvalidInput(f"{label} declares the encoding {declared!r}, which is unknown",
                           field="file", value=declared,
                           valid="a GPX file in UTF-8, GB18030 (GBK, GB2312) or another "
                                 "encoding its XML declaration names") from None
    body = data[found.end():] if found else data
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        offset = (found.end() if found else 0) + exc.start
        line = data[:offset].count(b"\n") + 1
        offset += skipped
        bad = exc.object[exc.start:exc.end]
        raise InvalidInput(f"{label} is not {declared} text: the bytes {bad.hex(' ')} at line "
                           f"{line} (byte {offset + 1}) cannot be read as {declared}",
                           field="file", value=label,
                           valid=f"a GPX file in the encoding its XML declaration names "
                                 f"({declared}; UTF-8 without one)") from None


def _read_gpx(path: Path, label: str) -> RawPoints:
    import gpxpy
    import gpxpy.gpx

    text = gpx_text(path.read_bytes(), label)
    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXException as exc:
        raise InvalidInput(f"{label} is not a readable GPX file: {exc}", field="file",
                           value=label, valid="GPX 1.0 or 1.1 with <trk><trkseg><trkpt>") from None
    out = RawPoints()
    for track in gpx.tracks:
        for segment in track.segments:
            for point in segment.points:
                i = len(out.t_us)
                moment = point.time
                if moment is None:
                    raw = _raw_gpx_time(text, i)  # gpxpy drops a time it cannot read
                    raise InvalidInput(
                        f"{label}[{i}] has no <time>" if raw is None else
                        f"{label}[{i}] has an unreadable <time> {raw!r}", field=f"{label}[{i}].t",
                        value=raw, valid="every <trkpt> with a <time> in ISO 8601, e.g. "
                                         "2024-06-03T08:00:00Z")
                if moment.tzinfo is None:  # GPX times are UTC by the standard
                    moment = moment.replace(tzinfo=dt.UTC)
                out.add(point.longitude, point.latitude, parse_time(moment, f"{label}[{i}].t"))
    if not out.t_us:
        raise InvalidInput(f"{label} has no track points", field="file", value=label,
                           valid="a GPX file with <trkpt> points in <trk><trkseg> "
                                 "(routes and waypoints carry no times)")
    return out


def _raw_gpx_time(text: str, index: int) -> str | None:
    """The text of the ``<time>`` of the ``index``-th ``<trkpt>`` (None when it has none)."""
    import xml.etree.ElementTree as ET

    k = 0
    for _, element in ET.iterparse(io.BytesIO(text.encode("utf-8"))):
        if element.tag.rsplit("}", 1)[-1] != "trkpt":
            continue
        if k == index:
            found = [c.text for c in element if c.tag.rsplit("}", 1)[-1] == "time"]
            return found[0].strip() if found and found[0] is not None else None
        k += 1
        element.clear()
    return None


# --------------------------------------------------------------------------- PLT

def _read_plt(path: Path, label: str) -> RawPoints:
    out = RawPoints()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if line_no <= PLT_HEADER_LINES or not row or not "".join(row).strip():
                continue
            i = len(out.t_us)
            if len(row) < 7:
                raise InvalidInput(f"{label} line {line_no} has {len(row)} fields",
                                   field=f"{label}[{i}]", value=",".join(row),
                                   valid="lat,lon,0,altitude_ft,days,date,time (GeoLife PLT)")
            stamp = f"{row[5].strip()}T{row[6].strip()}"
            try:
                moment = dt.datetime.fromisoformat(stamp)
                # GeoLife's times are GMT; an explicit offset is applied, not replaced
                moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
            except ValueError:
                raise InvalidInput(f"{label} line {line_no}: date/time {stamp!r} is unreadable",
                                   field=f"{label}[{i}].t", value=stamp,
                                   valid="YYYY-MM-DD and HH:MM:SS (GMT) in fields 6 and 7"
                                   ) from None
            out.add(row[1].strip(), row[0].strip(), parse_time(moment, f"{label}[{i}].t"))
    if not out.t_us:
        raise InvalidInput(f"{label} has no points after its {PLT_HEADER_LINES} header lines",
                           field="file", value=label, valid="a GeoLife .plt trajectory")
    return out


# --------------------------------------------------------------------------- CSV

def _column(header: list[str], names: Iterable[str], label: str, what: str) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise InvalidInput(f"{label} has no {what} column (its columns: {', '.join(header)})",
                       field="file", value=label, valid=f"a header with one of {', '.join(names)}")


def _csv_time(value: str, field_name: str) -> int:
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return parse_time(text, field_name)
    return parse_time(seconds, field_name)


def _read_csv(path: Path, label: str) -> RawPoints:
    out = RawPoints()
    with path.open("rb") as binary, io.TextIOWrapper(
            binary, encoding=csv_encoding(binary, label), newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise InvalidInput(f"{label} is empty", field="file", value=label,
                               valid="a CSV file with a header row")
        header[0] = header[0].removeprefix("\ufeff")  # GB18030's own byte-order mark
        ix = _column(header, LON_COLUMNS, label, "longitude")
        iy = _column(header, LAT_COLUMNS, label, "latitude")
        it = _column(header, TIME_COLUMNS, label, "time")
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            i = len(out.t_us)
            if len(row) <= max(ix, iy, it):
                raise InvalidInput(f"{label} line {reader.line_num} has {len(row)} fields",
                                   field=f"{label}[{i}]", value=",".join(row),
                                   valid=f"{len(header)} fields as in the header")
            out.add(row[ix], row[iy], _csv_time(row[it], f"{label}[{i}].t"))
    return out


# --------------------------------------------------------------------------- GeoJSON

def _features(data: Any, label: str) -> list[Any]:
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection" and isinstance(data.get("features"), list):
        return list(data["features"])
    if kind == "Feature":
        return [data]
    raise InvalidInput(f"{label} is not a GeoJSON FeatureCollection or Feature", field="file",
                       value=label, valid="GeoJSON with Point features (time in properties) or "
                                          "LineStrings with properties.coordTimes")


def _read_geojson(path: Path, label: str) -> RawPoints:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            text = handle.read()
        data = loads_unique(text, label)  # a key given twice is refused, naming it
    except (json.JSONDecodeError, RecursionError) as exc:  # nested thousands deep: Recursion
        raise InvalidInput(f"{label} is not JSON: {exc}", field="file", value=label,
                           valid="a GeoJSON file") from None
    out = RawPoints()
    for n, feature in enumerate(_features(data, label)):
        where = f"{label}: features[{n}]"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if kind == "Point" and isinstance(coords, list):
            key = next((k for k in TIME_PROPERTIES if k in props), None)
            i = len(out.t_us)
            if key is None:
                raise InvalidInput(f"{where} has no time property", field=f"{label}[{i}].t",
                                   value=None, valid="a property " + ", ".join(TIME_PROPERTIES))
            out.add(*_xy(coords, where), parse_time(props[key], f"{label}[{i}].t"))
        elif kind in ("LineString", "MultiLineString") and isinstance(coords, list):
            lines = [coords] if kind == "LineString" else coords
            if not all(isinstance(line, list) for line in lines):
                raise InvalidInput(f"{where} is a MultiLineString whose coordinates are not "
                                   "lists of positions", field=f"{where}.geometry.coordinates",
                                   value=str(coords)[:60],
                                   valid="[[[lon, lat], …], …]: a list of positions per line")
            times = props.get("coordTimes", props.get("times"))
            groups = [times] if kind == "LineString" else times
            if not isinstance(groups, list) or len(groups) != len(lines) or any(
                    not isinstance(g, list) or len(g) != len(line)
                    for g, line in zip(groups, lines, strict=False)):
                raise InvalidInput(f"{where} has no per-vertex times matching its coordinates",
                                   field=f"{where}.properties.coordTimes", value=None,
                                   valid="properties.coordTimes: one time per vertex (a list "
                                         "per line for a MultiLineString)")
            for line, stamps in zip(lines, groups, strict=True):
                for vertex, stamp in zip(line, stamps, strict=True):
                    i = len(out.t_us)
                    out.add(*_xy(vertex, where), parse_time(stamp, f"{label}[{i}].t"))
        else:
            raise InvalidInput(f"{where} is a {kind or 'feature without geometry'}",
                               field=f"{where}.geometry", value=kind,
                               valid="Point, LineString or MultiLineString")
    if not out.t_us:
        raise InvalidInput(f"{label} has no points", field="file", value=label,
                           valid="at least one Point feature or line vertex with a time")
    return out


def _xy(coords: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(coords, list) or len(coords) < 2:
        raise InvalidInput(f"{where} has a position that is not [lon, lat]",
                           field=f"{where}.geometry.coordinates", value=str(coords)[:60],
                           valid="[lon, lat] (or [lon, lat, elevation])")
    return coords[0], coords[1]
