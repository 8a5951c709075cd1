"""Reading patrol route files (GeoJSON, GeoPackage) into checked routes.

Each feature is a route (see ``geo.routes.validate``). In a GeoPackage, whose
fields cannot hold lists, ``grid_codes`` may be comma-separated text and
``schedule`` either JSON or the compact text of roster files
(``"mon-fri 19:00-23:00; sat 09:00-12:00"``); ``attrs`` may be JSON text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from data.roster_shifts import parse_shift_text
from geo.errors import InvalidInput
from geo.routes.validate import PROPERTIES, RouteIn, parse_route

SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GeoPackage"}


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(f"cannot read {path.name!r}: unknown file type {suffix or '(none)'!r}",
                           field="file", value=path.name,
                           valid="a file ending in " + ", ".join(
                               f"{s} ({k})" for s, k in SUFFIXES.items()))
    return suffix


def _read_geojson(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"cannot read {path.name!r}: {exc}", field="file", value=path.name,
                           valid="a UTF-8 GeoJSON file") from exc
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" \
            or not isinstance(data.get("features"), list):
        raise InvalidInput(f"{path.name!r} is not a GeoJSON FeatureCollection", field="file",
                           value=path.name, valid="a FeatureCollection of route Features")
    return list(data["features"])


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _from_text(key: str, value: Any, where: str) -> Any:
    """A GeoPackage field value in the form the GeoJSON properties have."""
    if _blank(value):
        return None
    if key == "grid_codes" and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [c.strip() for c in text.split(",") if c.strip()]
    if key == "schedule" and isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        try:
            return parse_shift_text(text)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"{where}properties.schedule", value=value,
                               valid=str(exc.valid)) from exc
    if key == "attrs" and isinstance(value, str):
        return json.loads(value)
    if key == "team_id" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read_gpkg(path: Path, layer: str | None) -> tuple[list[dict[str, Any]], str | None]:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        if layer is None and len(layers) > 1:  # the first one alone was read, silently
            raise InvalidInput(f"{path.name!r} has {len(layers)} layers: say which one",
                               field="layer", value=None, valid=", ".join(layers))
        if layer is not None and layer not in layers:
            raise InvalidInput(f"{path.name!r} has no layer {layer!r}", field="layer",
                               value=layer, valid=", ".join(layers))
        frame = pyogrio.read_dataframe(path, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"cannot read {path.name!r}: {exc}", field="file", value=path.name,
                           valid="a readable GeoPackage of lines") from exc
    crs = None
    if frame.crs is not None:
        epsg = frame.crs.to_epsg()
        crs = "wgs84" if epsg == 4326 else (f"EPSG:{epsg}" if epsg else None)
    features = []
    columns = [c for c in frame.columns if c != "geometry"]
    for i, (geom, row) in enumerate(zip(frame.geometry, frame[columns].to_dict("records"),
                                        strict=True)):
        where = f"features[{i}]."
        props: dict[str, Any] = {}
        for key, value in row.items():
            if str(key) in PROPERTIES:
                try:
                    converted = _from_text(str(key), value, where)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"{where}properties.{key} is not valid JSON",
                                       field=f"{where}properties.{key}", value=value,
                                       valid="JSON text, or for grid_codes comma-separated "
                                             "codes") from exc
                if converted is not None:
                    props[str(key)] = converted
        features.append({"type": "Feature", "properties": props,
                         "geometry": None if geom is None else geom.__geo_interface__})
    return features, crs


def read_route_file(path: str | Path, *, crs: str | None = None,
                    layer: str | None = None) -> list[RouteIn]:
    """Read and check every route of a file; the first problem raises InvalidInput.

    Parameters
    ----------
    path : path
        A GeoJSON FeatureCollection or a GeoPackage of line features.
    crs : str, optional
        CRS of the coordinates, overriding the file's (GeoJSON files are WGS-84).
    layer : str, optional
        GeoPackage layer.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist", field="file", value=str(path),
                           valid="an existing route file")
    file_crs: str | None = None
    if suffix == ".gpkg":
        features, file_crs = _read_gpkg(path, layer)
    else:
        features = _read_geojson(path)
    if not features:
        raise InvalidInput(f"{path.name!r} has no features", field="file", value=path.name,
                           valid="one or more route Features")
    routes = []
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        try:
            routes.append(parse_route(feature, crs=crs or file_crs, where=where + "."))
        except InvalidInput as exc:
            if where in exc.message:
                raise
            raise InvalidInput(f"{where}: {exc.message}", field=exc.field, value=exc.value,
                               valid=exc.valid, extra=exc.extra) from exc
    return routes
