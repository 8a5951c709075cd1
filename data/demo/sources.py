"""The real inputs of the demo city: 鼓楼区 (Fuzhou) from the bundled Vonng/adcode files.

Everything is read from ``data/china/`` (copied from ``../shared/data/china``; see
``data/china/ATTRIBUTION.md``) and converted from GCJ-02 to WGS-84 with ``geo.crs``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.crs import geometry_to_wgs84, point_to_wgs84
from geo.errors import InvalidInput

CHINA_DIR = Path(__file__).resolve().parents[1] / "china"
DISTRICT_FILE = CHINA_DIR / "gulou_350102_gcj02.geojson"
ADCODE_FILE = CHINA_DIR / "350102.csv"
DISTRICT_ADCODE = "350102"

_COLUMNS = ("code", "parent", "name", "level", "rank", "adcode", "post_code", "area_code",
            "ur_code", "municipality", "virtual", "dummy", "longitude", "latitude",
            "center_wkb", "province", "city", "county", "town", "village")


@dataclass(frozen=True)
class Place:
    """A street or community of the code table, its centre point in WGS-84 when known."""

    code: str
    parent: str
    name: str
    level: str
    point: tuple[float, float] | None
    point_gcj02: tuple[float, float] | None


@dataclass(frozen=True)
class Sources:
    """The district outline (WGS-84) and its streets and communities, sorted by code."""

    district_code: str
    district_name: str
    district: BaseGeometry
    streets: tuple[Place, ...]
    communities: tuple[Place, ...]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        out = []
        for number, row in enumerate(csv.reader(fh), start=1):
            if len(row) != len(_COLUMNS):
                raise InvalidInput(
                    f"{path.name} line {number} has {len(row)} columns", field="columns",
                    value=len(row), valid=f"{len(_COLUMNS)} columns: {', '.join(_COLUMNS)}")
            out.append(dict(zip(_COLUMNS, row, strict=True)))
        return out


def _point(row: dict[str, str]) -> tuple[float, float] | None:
    if not row["longitude"] or not row["latitude"]:
        return None
    return float(row["longitude"]), float(row["latitude"])


def read_sources(district_file: Path = DISTRICT_FILE, adcode_file: Path = ADCODE_FILE) -> Sources:
    """Read the bundled district outline and code table, converted to WGS-84.

    Parameters
    ----------
    district_file : Path
        GeoJSON FeatureCollection in GCJ-02 holding the feature ``adcode`` 350102.
    adcode_file : Path
        The Vonng/adcode CSV of the district (no header).

    Returns
    -------
    Sources
        Streets are the ``town`` rows, communities the ``village`` rows.
    """
    collection = json.loads(district_file.read_text(encoding="utf-8"))
    features = [f for f in collection["features"]
                if str(f["properties"].get("adcode")) == DISTRICT_ADCODE]
    if len(features) != 1:
        raise InvalidInput(f"{district_file.name} must hold one feature with adcode "
                           f"{DISTRICT_ADCODE}", field="adcode", value=len(features),
                           valid="exactly one feature")
    outline = shapely.make_valid(geometry_to_wgs84(shape(features[0]["geometry"]), "gcj02"))

    district_name = ""
    streets: list[Place] = []
    communities: list[Place] = []
    for row in _rows(adcode_file):
        gcj = _point(row)
        wgs = point_to_wgs84(gcj[0], gcj[1], "gcj02") if gcj else None
        place = Place(code=row["code"], parent=row["parent"], name=row["name"],
                      level=row["level"], point=wgs, point_gcj02=gcj)
        if row["level"] == "county":
            district_name = row["name"]
        elif row["level"] == "town":
            streets.append(place)
        elif row["level"] == "village":
            communities.append(place)
    return Sources(district_code=DISTRICT_ADCODE + "000000", district_name=district_name,
                   district=outline, streets=tuple(sorted(streets, key=lambda p: p.code)),
                   communities=tuple(sorted(communities, key=lambda p: p.code)))
