"""Reading and writing grid boundary files: GeoJSON, GeoPackage, Shapefile, CSV with WKT.

:func:`read_grid_file` turns a file into :class:`Feature` rows in WGS-84 with
string codes; :func:`merge_features` joins the features that share a code into
one MultiPolygon :class:`~geo.store.grids.GridRecord`; :func:`write_grid_file`
writes exported grids so that they import back unchanged.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import GeometryCollection, MultiPolygon
from shapely.geometry.base import BaseGeometry

from data.text_encoding import check_header, csv_encoding
from geo.crs import geometry_to_wgs84, parse_crs
from geo.errors import (
    TEXT_VALID,
    UNSTORABLE_ESCAPE,
    InvalidInput,
    shown_text,
    storable_json,
    unstorable,
)
from geo.jsonkeys import loads_unique
from geo.store.grids import GridRecord
from geo.store.models import INT4_MAX

#: File name endings read by :func:`read_grid_file`, with what they hold.
READ_SUFFIXES: dict[str, str] = {
    ".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GeoPackage",
    ".shp": "Shapefile", ".zip": "zipped Shapefile", ".csv": "CSV with a WKT column",
}
#: File name endings written by :func:`write_grid_file`, with their GDAL drivers.
WRITE_DRIVERS: dict[str, str] = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
#: Column names tried, in order, for the WKT of a CSV file.
WKT_FIELDS = ("wkt", "WKT", "geometry", "geom")
#: Properties of an exported file.
EXPORT_FIELDS = ("code", "name", "level", "parent", "population", "households", "valid_from",
                 "version", "attrs")
MAX_CODE_LENGTH = 64
_WHOLE_FLOAT = re.compile(r"-?\d+\.0+")
MAX_LEVEL_LENGTH = 32


@dataclass
class ReadOptions:
    """Which fields of a file hold what; ``None`` fields are not read.

    ``population_field``, ``households_field`` and ``attrs_field`` default to the
    fields ``population``, ``households`` and ``attrs`` when the file has them
    (so exported files import back unchanged).
    """

    code_field: str
    name_field: str | None = None
    parent_field: str | None = None
    level: str | None = None  # None: "grid", unless level_field names a field
    level_field: str | None = None
    crs: str | None = None
    wkt_field: str | None = None
    population_field: str | None = None
    households_field: str | None = None
    attrs_field: str | None = None
    layer: str | None = None


@dataclass
class Feature:
    """One feature of a file, WGS-84, fields normalised to strings and integers."""

    index: int
    code: str
    name: str
    level: str
    geom: BaseGeometry
    parent: str | None = None
    population: int | None = None
    households: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    kept: tuple[str, ...] = ()


@dataclass
class GridFile:
    """What :func:`read_grid_file` found: the features and where they came from."""

    path: Path
    features: list[Feature]
    fields: list[str]
    crs: str


def suffix_of(path: str | Path) -> str:
    """The lower-case ending of ``path`` that decides its format; InvalidInput if unknown."""
    suffix = Path(path).suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise InvalidInput(
            f"cannot read {Path(path).name!r}: unknown file type {suffix or '(none)'!r}",
            field="file", value=Path(path).name,
            valid="a file ending in " + ", ".join(
                f"{s} ({kind})" for s, kind in READ_SUFFIXES.items()))
    return suffix


def read_grid_file(path: str | Path, options: ReadOptions) -> GridFile:
    """Read grid polygons from ``path`` into WGS-84 features.

    Parameters
    ----------
    path
        A GeoJSON, GeoPackage, Shapefile (``.shp`` or a ``.zip`` holding one) or CSV
        file with the geometry as WKT.
    options
        Field names, the level and the CRS (``options.crs`` overrides the file's
        own; a file without one is taken as WGS-84).

    Raises
    ------
    InvalidInput
        For an unreadable file, a missing field (naming the available ones), a
        feature without a code, a number field that is not a whole number, or
        coordinates that are not longitudes and latitudes after conversion.
    """
    path = Path(path)
    suffix = suffix_of(path)
    if suffix == ".csv":
        frame, geoms, file_crs = _read_csv(path, options)
    else:
        frame, geoms, file_crs = _read_ogr(path, options)
    fields = [str(c) for c in frame.columns]
    if not fields and len(frame) == 0:  # an empty GeoJSON collection has no fields either
        raise InvalidInput(f"{path.name!r} holds no features", field="file", value=path.name,
                           valid="a file with at least one grid polygon")
    _check_fields(fields, options)
    crs, geoms = _to_wgs84(geoms, options.crs, file_crs)
    rows: list[dict[str, Any]] = [{str(k): v for k, v in row.items()}
                                  for row in frame.to_dict("records")]
    features = [_feature(i, row, geom, options, fields)
                for i, (row, geom) in enumerate(zip(rows, geoms, strict=True))]
    return GridFile(path=path, features=features, fields=fields, crs=crs)


def _read_ogr(path: Path, options: ReadOptions) -> tuple[pd.DataFrame, list[Any], Any]:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    source = _source(path)
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(source)]
        if options.layer is None and len(layers) > 1:
            raise InvalidInput(f"{path.name!r} has {len(layers)} layers: say which one",
                               field="layer", value=None, valid=", ".join(layers))
        if options.layer is not None and options.layer not in layers:
            raise InvalidInput(f"{path.name!r} has no layer {options.layer!r}", field="layer",
                               value=options.layer, valid=", ".join(layers))
        try:
            with warnings.catch_warnings():  # GDAL's "Non closed ring detected": refused
                warnings.simplefilter("ignore", RuntimeWarning)
                frame = pyogrio.read_dataframe(source, layer=options.layer)
        except shapely.errors.GEOSException as exc:  # a ring not closed, a NaN position
            raise _unreadable_geometry(source, options.layer, path.name, exc) from None
    except (DataSourceError, DataLayerError) as exc:
        reason = str(exc).replace(str(path.parent) + "/", "")  # no server paths in answers
        raise InvalidInput(f"cannot read {path.name!r}: {reason}", field="file",
                           value=path.name,
                           valid="a readable " + READ_SUFFIXES[path.suffix.lower()]) from exc
    geoms = list(frame.geometry.array) if "geometry" in frame else [None] * len(frame)
    return pd.DataFrame(frame.drop(columns="geometry", errors="ignore")), geoms, frame.crs


def _unreadable_geometry(source: Any, layer: str | None, name: str,
                         exc: Exception) -> InvalidInput:
    """The first feature whose geometry GEOS cannot build (the read names none)."""
    import pyogrio.raw

    number, why = 0, str(exc)
    with warnings.catch_warnings():  # GDAL's "Non closed ring detected": said below
        warnings.simplefilter("ignore", RuntimeWarning)
        geometry = pyogrio.raw.read(source, layer=layer, read_geometry=True)[2]
    for k, wkb in enumerate(geometry):
        try:
            shapely.from_wkb(wkb)
        except shapely.errors.GEOSException as bad:
            number, why = k + 1, str(bad)
            break
    where = f"feature {number}" if number else "a feature"
    return InvalidInput(f"{name!r}: the geometry of {where} cannot be read: {why}",
                        field="geometry", value=where,
                        valid="polygons whose rings are closed (the last position repeats "
                              "the first) and hold at least four finite positions")


def _source(path: Path) -> Any:
    """What GDAL opens for ``path``: a zip's folder holding the Shapefile (a zip made of a
    folder keeps it), after refusing a zip without one; GeoJSON after refusing text GDAL
    would silently cut at a NUL or mangle (``\\u0000``, a lone surrogate escape)."""
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                found = UNSTORABLE_ESCAPE.search(line) or (b"\x00" in line and line)
                if found:
                    raise InvalidInput(
                        f"{path.name!r} line {number} holds a NUL or an unpaired surrogate "
                        "(\\u0000, \\ud800-\\udfff), which would be cut off or replaced",
                        field="file", value=path.name, valid=TEXT_VALID)
        return path
    if suffix != ".zip":
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = [n for n in archive.namelist() if n.lower().endswith(".shp")
                      and not n.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{path.name!r} is not a zip archive: {exc}", field="file",
                           value=path.name, valid="a .zip holding a Shapefile") from None
    folders = sorted({str(Path(n).parent) for n in shapes})
    if not shapes or len(folders) > 1:
        raise InvalidInput(f"{path.name!r} holds " + (
            "no .shp file" if not shapes else f".shp files in {len(folders)} folders"),
            field="file", value=path.name, valid="a .zip holding one Shapefile (.shp, .shx, "
            ".dbf, .prj), at its top or in one folder")
    return path if folders[0] == "." else f"/vsizip/{path}/{folders[0]}"


def _read_csv(path: Path, options: ReadOptions) -> tuple[pd.DataFrame, list[Any], Any]:
    if options.layer is not None:
        raise InvalidInput(f"{path.name!r} is a CSV file, which has no layers", field="layer",
                           value=options.layer, valid="no --layer (it names a layer of a "
                           "GeoPackage)")
    with path.open("rb") as binary:
        encoding = csv_encoding(binary, path.name)
    with path.open(encoding=encoding, newline="") as text:
        header = next(csv.reader(text), None)
    if header is None:
        raise InvalidInput(f"{path.name!r} is empty", field="file", value=path.name,
                           valid="a CSV file with a header row and a WKT column")
    check_header([h.strip() for h in header], path.name)  # pandas renamed a twin "code.1"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                            encoding=encoding)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read {path.name!r} as CSV: {exc}", field="file",
                           value=path.name, valid="a CSV file with a header row and a "
                           "WKT column") from exc
    if frame.empty:  # as a GeoJSON file without features is refused
        raise InvalidInput(f"{path.name!r} holds no features (a header row only)",
                           field="file", value=path.name,
                           valid="a file with at least one grid polygon")
    columns = [str(c) for c in frame.columns]
    if options.wkt_field is not None:
        if options.wkt_field not in columns:
            raise InvalidInput(f"{path.name!r} has no WKT field {options.wkt_field!r}",
                               field="wkt_field", value=options.wkt_field,
                               valid="one of the fields: " + ", ".join(columns))
        wkt_field = options.wkt_field
    else:
        found = [c for c in WKT_FIELDS if c in columns]
        if not found:
            raise InvalidInput(f"{path.name!r} has no WKT column", field="wkt_field", value=None,
                               valid=f"a column named {', '.join(WKT_FIELDS)}, or --wkt-field "
                               "naming one of: " + ", ".join(columns))
        wkt_field = found[0]
    geoms: list[Any] = []
    for i, text in enumerate(frame[wkt_field]):
        if not isinstance(text, str):
            geoms.append(None)
            continue
        try:
            geoms.append(shapely.from_wkt(text))
        except shapely.errors.GEOSException as exc:
            raise InvalidInput(f"row {i + 1} of {path.name!r}: {wkt_field} is not WKT ({exc})",
                               field=wkt_field, value=text[:80],
                               valid="WKT such as 'POLYGON ((lon lat, ...))'") from exc
    return frame.drop(columns=wkt_field), geoms, None


def _check_fields(fields: list[str], options: ReadOptions) -> None:
    for option in ("code_field", "name_field", "parent_field", "level_field",
                   "population_field", "households_field", "attrs_field"):
        wanted = getattr(options, option)
        if wanted is not None and wanted not in fields:
            raise InvalidInput(
                f"the file has no field {wanted!r} (given as {option}, --"
                f"{option.replace('_', '-')} in the CLI)",
                field=option, value=wanted, valid="one of the fields: " + ", ".join(fields))
    if options.level is not None and options.level_field is not None:
        raise InvalidInput(f"level {options.level!r} and level_field "
                           f"{options.level_field!r} are both given", field="level",
                           value=options.level, valid="one of them: level for every grid, or "
                           "level_field (--level-field) naming the field holding each level")
    if options.level_field is None:
        _check_level(options.level if options.level is not None else "grid", "level")


def _check_level(level: str, where: str) -> str:
    if not level or len(level) > MAX_LEVEL_LENGTH:
        raise InvalidInput(f"level {level!r} is empty or too long", field=where, value=level,
                           valid=f"1 to {MAX_LEVEL_LENGTH} characters, e.g. district, street, "
                           "community, grid")
    return level


def _to_wgs84(geoms: list[Any], crs_option: str | None,
              file_crs: Any) -> tuple[str, list[BaseGeometry | None]]:
    """The geometries in WGS-84 and the name of the CRS they were read in."""
    label = "wgs84"
    source: CRS | None = None
    if crs_option is not None:
        label = parse_crs(crs_option)
    elif file_crs is not None:
        source = CRS.from_user_input(file_crs)
        if source.equals(CRS.from_epsg(4326), ignore_axis_order=True):
            source = None
        elif source.to_epsg():
            label, source = parse_crs(f"EPSG:{source.to_epsg()}"), None
        else:
            label = f"{source.name} (the file's CRS)"
    out: list[BaseGeometry | None] = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            out.append(geom)
        elif source is not None:
            out.append(_reproject(shapely.force_2d(geom), source))
        elif label == "wgs84":
            out.append(shapely.force_2d(geom))
        else:
            out.append(geometry_to_wgs84(geom, label))
    _check_lonlat(out, label)
    return label, out


def _reproject(geom: BaseGeometry, source: CRS) -> BaseGeometry:
    from pyproj import Transformer

    tr = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
    return shapely.transform(geom, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))


def _check_lonlat(geoms: Sequence[BaseGeometry | None], crs: str) -> None:
    present = np.asarray([g for g in geoms if g is not None and not g.is_empty], dtype=object)
    if not len(present):
        return
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(present))
    if all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) and \
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90:
        return
    raise InvalidInput(
        f"coordinates are not longitudes and latitudes after reading them as {crs} "
        f"(bounds {minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}); projected coordinates "
        "need the CRS they are in", field="crs", value=crs,
        valid="wgs84, gcj02, bd09, cgcs2000 or EPSG:<n> naming the file's CRS (--crs)")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if value is pd.NA or value is pd.NaT:
        return None
    text = str(value).strip()
    return text or None


def _code(value: Any) -> str | None:
    """A code as text: whole numbers lose a ``.0`` that a float column or CSV gave them."""
    text = _text(value)
    if text is not None and _WHOLE_FLOAT.fullmatch(text):
        text = text.split(".")[0]
    return text


def _whole(value: Any, field_name: str, index: int) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= INT4_MAX:
        raise InvalidInput(f"feature {index + 1}: {field_name} is {text!r}, not a whole number "
                           f"from 0 to {INT4_MAX}", field=field_name, value=text,
                           valid=f"a whole number from 0 to {INT4_MAX}, or empty")
    return number


def _attrs(value: Any, field_name: str, index: int) -> dict[str, Any]:
    """A feature's attrs: a JSON object PostgreSQL can store (no NaN or infinity, no NUL or
    unpaired surrogate, nested at most 64 levels, each key once), else refused naming it."""
    if isinstance(value, dict):
        parsed: Any = value
    else:
        text = _text(value)
        if text is None:
            return {}
        try:
            parsed = loads_unique(text, f"features[{index}].{field_name}")
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer of 4300+ digits
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidInput(f"feature {index + 1}: {field_name} is not a JSON object",
                               field=field_name, value=text[:80],
                               valid='a JSON object such as {"a": 1}')
    storable_json(parsed, f"features[{index}].{field_name}")
    return dict(parsed)


def _feature(index: int, row: dict[str, Any], geom: BaseGeometry | None, options: ReadOptions,
             fields: list[str]) -> Feature:
    code = _code(row.get(options.code_field))
    if code is None:
        raise InvalidInput(f"feature {index + 1} has no value in the code field "
                           f"{options.code_field!r}", field=options.code_field, value=None,
                           valid=f"a code of 1 to {MAX_CODE_LENGTH} characters in every feature")
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidInput(f"feature {index + 1}: code {code!r} is too long",
                           field=options.code_field, value=code,
                           valid=f"1 to {MAX_CODE_LENGTH} characters")
    name = _text(row.get(options.name_field)) if options.name_field else None
    if options.level_field:
        level = _check_level(_text(row.get(options.level_field)) or "", options.level_field)
    else:
        level = options.level if options.level is not None else "grid"
    parent = _code(row.get(options.parent_field)) if options.parent_field else None
    for value, column in ((code, options.code_field), (name, options.name_field or "name"),
                          (level, options.level_field or "level"),
                          (parent, options.parent_field or "parent")):
        why = unstorable(value) if isinstance(value, str) else None
        if why is not None and value is not None:
            raise InvalidInput(f"feature {index + 1}: {column} {why}", field=column,
                               value=shown_text(value)[:80], valid=TEXT_VALID)
    pop_field = options.population_field or ("population" if "population" in fields else None)
    hh_field = options.households_field or ("households" if "households" in fields else None)
    attrs_field = options.attrs_field or ("attrs" if "attrs" in fields else None)
    return Feature(
        index=index, code=code, name=name or code, level=level, parent=parent,
        geom=geom if geom is not None else GeometryCollection(),
        population=_whole(row.get(pop_field), pop_field, index) if pop_field else None,
        households=_whole(row.get(hh_field), hh_field, index) if hh_field else None,
        attrs=_attrs(row.get(attrs_field), attrs_field, index) if attrs_field else {},
        # a column the file does not have keeps the grid's current figure (it was wiped)
        kept=tuple(name for name, given in (("population", pop_field),
                                            ("households", hh_field), ("attrs", attrs_field))
                   if given is None),
    )


def merge_features(features: Sequence[Feature]) -> list[GridRecord]:
    """One record per code, in order of first appearance.

    Features sharing a code (a MultiPolygon split over several features) become
    one record whose geometry is the union of their parts (or, when a part is
    invalid, a MultiPolygon of all parts so that validation reports it).

    Raises
    ------
    InvalidInput
        When features sharing a code disagree on name, level, parent, population,
        households or attrs.
    """
    groups: dict[str, list[Feature]] = {}
    for feat in features:
        groups.setdefault(feat.code, []).append(feat)
    records = []
    for code, group in groups.items():
        first = group[0]
        for other in group[1:]:
            for attr in ("name", "level", "parent", "population", "households", "attrs"):
                if getattr(other, attr) != getattr(first, attr):
                    raise InvalidInput(
                        f"features {first.index + 1} and {other.index + 1} share the code "
                        f"{code!r} but have different {attr}: {getattr(first, attr)!r} and "
                        f"{getattr(other, attr)!r}", field=attr, value=getattr(other, attr),
                        valid=f"the same {attr} in every feature of one code (they are merged "
                        "into one MultiPolygon)")
        records.append(GridRecord(
            code=code, name=first.name, level=first.level, geom=_merge([f.geom for f in group]),
            parent_code=first.parent, population=first.population,
            households=first.households, attrs=dict(first.attrs), kept=first.kept))
    return records


def _merge(geoms: list[BaseGeometry]) -> BaseGeometry:
    if len(geoms) == 1:
        return geoms[0]
    polys = [p for g in geoms for p in shapely.get_parts(g) if not p.is_empty]
    if all(p.geom_type in ("Polygon", "MultiPolygon") and p.is_valid for p in polys):
        return shapely.union_all(polys)
    flat = [q for p in polys for q in shapely.get_parts(p)]
    if all(q.geom_type == "Polygon" for q in flat):
        return MultiPolygon(flat)
    return GeometryCollection(flat)


def write_grid_file(path: str | Path, rows: Sequence[dict[str, Any]]) -> int:
    """Write exported grids (dicts with :data:`EXPORT_FIELDS` and ``geom``) to ``path``.

    The format follows the ending (``.geojson``/``.json`` or ``.gpkg``); an existing
    file is replaced. Returns the number of features written.
    """
    import geopandas as gpd

    path = Path(path)
    driver = WRITE_DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise InvalidInput(f"cannot write {path.name!r}: unknown file type {path.suffix!r}",
                           field="path", value=path.name,
                           valid="a file ending in " + ", ".join(WRITE_DRIVERS))
    frame = pd.DataFrame([{k: row.get(k) for k in EXPORT_FIELDS} for row in rows],
                         columns=list(EXPORT_FIELDS))
    for column in ("population", "households", "version"):
        frame[column] = frame[column].astype("Int64")
    frame["attrs"] = [json.dumps(a or {}, ensure_ascii=False, sort_keys=True)
                      for a in frame["attrs"]]
    gdf = gpd.GeoDataFrame(frame, geometry=[row["geom"] for row in rows], crs="EPSG:4326")
    if path.exists():
        path.unlink()
    # GeoJSON: texts stay strings. GDAL otherwise writes a text that parses as JSON (attrs,
    # a name "{}") as JSON, through json-c, which clamps big numbers (1e20 became
    # 18446744073709551615) and writes what it cannot read back (2**63).
    layer: dict[str, Any] = {"layer": "grid"} if driver == "GPKG" else {
        "layer_options": {"AUTODETECT_JSON_STRINGS": "NO"}}
    gdf.to_file(path, driver=driver, engine="pyogrio", **layer)
    return len(gdf)
