"""Which fields of an incident file hold what: the import's options and their resolution.

Rules (see also :mod:`data.incident_import`):

- coordinates: ``lon_field``/``lat_field`` when given; otherwise a GeoJSON Point
  geometry; otherwise the first of :data:`LON_NAMES` / :data:`LAT_NAMES` the
  record has (any case). In JSON records this is decided for each record
  (:meth:`Fields.coordinates`): one with a Point geometry, one with lon/lat
  properties, in any order;
- ``category_field`` (default ``category``), ``external_id_field`` (default
  ``external_id``), ``time_field`` (default ``reported_at``), ``description``,
  ``reporter``: read when present;
- ``source`` and ``crs``: the option for every row when given, else each row's
  field of that name.

A field named in an option that the input does not have refuses the whole
import, naming the fields it has. JSON records (GeoJSON, NDJSON) may differ in
their keys, so there the first record decides only what it can: a default name
it lacks is still read from the records that have it, and a named field it
lacks is looked for in every record, the import being refused at its end (and
rolled back) when no record had it (:func:`named_json_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from data.incident_io import SourceRow
from geo.errors import InvalidInput

#: Field names tried, in order and in any case, for the longitude and the latitude.
LON_NAMES = ("lon", "lng", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
#: Rows registered per statement batch.
DEFAULT_BATCH = 10_000

@dataclass
class ImportOptions:
    """Which fields hold what (``None``: the defaults in the module docstring)."""

    lon_field: str | None = None
    lat_field: str | None = None
    crs: str | None = None
    external_id_field: str | None = None
    category_field: str | None = None
    default_category: str | None = None
    time_field: str | None = None
    source: str | None = None
    description_field: str | None = None
    reporter_field: str | None = None
    timezone: str | None = None
    batch_size: int = DEFAULT_BATCH


@dataclass
class Fields:
    """The resolved field names of one import."""

    lon: str | None
    lat: str | None
    category: str | None
    external_id: str | None
    time: str | None
    description: str | None
    reporter: str | None
    source: str | None
    crs: str | None
    geometry: bool
    #: JSON records with no lon/lat option: each record's Point geometry, else its own
    #: lon/lat fields (records may differ; the first one only names the usual fields).
    per_record: bool = False

    def coordinates(self, row: SourceRow) -> tuple[Any, Any, str | None, str | None]:
        """The row's lon and lat and the fields they come from (None: its Point geometry),
        by the rule of the README: the named fields, else the Point geometry, else fields
        called lon/lng/long/longitude/x and lat/latitude/y. A JSON record with none of
        them gives no field names (nor does one whose geometry holds them)."""
        if not self.per_record:
            if self.lon is None or self.lat is None:
                return row.lon, row.lat, None, None
            return row.values.get(self.lon), row.values.get(self.lat), self.lon, self.lat
        if row.has_geometry:
            return row.lon, row.lat, None, None
        v = row.values
        lon, lat = self.lon, self.lat
        if lon is None or lat is None or lon not in v or lat not in v:
            keys = {str(k).lower(): str(k) for k in reversed(list(v))}
            lon, lat = _find(keys, LON_NAMES), _find(keys, LAT_NAMES)
            if lon is None or lat is None:
                return None, None, None, None
        return v.get(lon), v.get(lat), lon, lat

    def as_dict(self) -> dict[str, str | None]:
        return {"lon": "geometry" if self.geometry and self.lon is None else self.lon,
                "lat": "geometry" if self.geometry and self.lat is None else self.lat,
                "category": self.category, "external_id": self.external_id,
                "reported_at": self.time, "description": self.description,
                "reporter": self.reporter, "source": self.source, "crs": self.crs}


def _find(keys: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        if name in keys:
            return keys[name]
    return None


def _given(name: str | None, option: str, keys: Mapping[str, str], fields: list[str]) -> str:
    assert name is not None
    if name in fields:
        return name
    if name.lower() in keys:
        return keys[name.lower()]
    raise InvalidInput(f"the input has no field {name!r} (given as "
                       f"{option.replace('-', '_')}, --{option} in the CLI)",
                       field=option.replace("-", "_"), value=name,
                       valid="one of the fields: " + (", ".join(fields) or "(none)"))


def resolve_fields(first: SourceRow, header: list[str] | None,
                   options: ImportOptions) -> Fields:
    """Decide which fields to read, from the options and the first record (or CSV header)."""
    fields = list(header) if header is not None else [str(k) for k in first.values]
    keys = {f.lower(): f for f in reversed(fields)}
    records = header is None  # JSON: each record has its own keys

    def pick(given: str | None, option: str, default: tuple[str, ...]) -> str | None:
        if given is not None:
            if records and given not in fields and given.lower() not in keys:
                return given  # looked for in every record (named_json_fields)
            return _given(given, option, keys, fields)
        found = _find(keys, default)
        if found is None and records and len(default) == 1:
            return default[0]  # a later record may have it
        return found

    lon = pick(options.lon_field, "lon-field", () if first.has_geometry else LON_NAMES)
    lat = pick(options.lat_field, "lat-field", () if first.has_geometry else LAT_NAMES)
    if (lon is None) != (lat is None) and not first.has_geometry:
        missing, option = ("longitude", "--lon-field") if lon is None else \
            ("latitude", "--lat-field")
        raise InvalidInput(f"found no {missing} field: name it with {option}",
                           field=option.lstrip("-").replace("-", "_"), value=None,
                           valid="one of the fields: " + ", ".join(fields))
    if lon is None and lat is None and not first.has_geometry and not first.problem \
            and not _is_feature(first):  # a Feature without geometry: its row is rejected
        raise InvalidInput(
            "found no coordinates: no Point geometry and no field named "
            + "/".join(LON_NAMES) + " and " + "/".join(LAT_NAMES), field="lon_field",
            value=None, valid="--lon-field and --lat-field naming two of the fields: "
            + ", ".join(fields))
    return Fields(
        lon=lon, lat=lat,
        category=pick(options.category_field, "category-field", ("category",)),
        external_id=pick(options.external_id_field, "external-id-field", ("external_id",)),
        time=pick(options.time_field, "time-field", ("reported_at",)),
        description=pick(options.description_field, "description-field", ("description",)),
        reporter=pick(options.reporter_field, "reporter-field", ("reporter",)),
        source=None if options.source is not None else _find(keys, ("source",)),
        crs=None if options.crs is not None else _find(keys, ("crs",)),
        geometry=first.has_geometry,
        per_record=records and options.lon_field is None and options.lat_field is None,
    )


def _is_feature(row: SourceRow) -> bool:
    original = row.original
    return isinstance(original, dict) and original.get("type") == "Feature"


def named_json_fields(options: ImportOptions) -> dict[str, str]:
    """The fields named in ``options`` (option -> field): in JSON records at least one
    record must have each, checked over the whole input (see the module docstring)."""
    named = {"lon-field": options.lon_field, "lat-field": options.lat_field,
             "category-field": options.category_field,
             "external-id-field": options.external_id_field,
             "time-field": options.time_field, "description-field": options.description_field,
             "reporter-field": options.reporter_field}
    return {option: name for option, name in named.items() if name is not None}
