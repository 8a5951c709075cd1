"""GCJ-02 on real data: Chinese community points given in GCJ-02 land in their county.

``../shared/data/china/counties_gcj02.geojson`` holds 37 county polygons and
``adcode/*.csv`` the communities (villages, level ``village``) of those counties
with their centre points, all in GCJ-02 as Amap publishes them. The counties are
imported as grids with ``crs=gcj02`` (every vertex converted to WGS-84), and every
community point that has coordinates is located:

- given as ``gcj02`` (what it is), it lands in its own county, every one of them;
- given as ``wgs84`` (the usual mistake), it is read about 500 m away from where it
  is, and the points near a county boundary land in the wrong county or in none.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points
from sqlalchemy import text
from sqlalchemy.orm import Session

from data.grid_import import CheckOptions, import_grids
from data.grid_io import ReadOptions
from geo import crs
from geo.incidents.intake import register_many
from geo.incidents.schema import validate_incident
from geo.index_cache import get_index
from geo.locate import locate
from geo.settings import Settings
from geo.store.roster_write import CategoryRecord, upsert_categories

GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Community:
    """One community (社区/村) of the code table with its GCJ-02 centre point."""

    code: str
    name: str
    county: str
    lon: float
    lat: float


def _communities(folder: Path, counties: set[str]) -> list[Community]:
    found: list[Community] = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                if row[3] != "village" or not row[12] or not row[13]:
                    continue
                county = row[0][:6]
                if county in counties:
                    found.append(Community(row[0], row[2], county, float(row[12]),
                                           float(row[13])))
    return found


@pytest.fixture
def counties(session: Session, shared_data: Path) -> dict[str, BaseGeometry]:
    """The county polygons imported as grids from GCJ-02; their WGS-84 shapes by adcode."""
    path = shared_data / "china" / "counties_gcj02.geojson"
    report = import_grids(session, path,
                          ReadOptions(code_field="adcode", name_field="name", level="district",
                                      crs="gcj02"),
                          CheckOptions(), commit=True)
    assert report.committed, report.problems
    session.commit()
    rows = session.execute(text("SELECT code, ST_AsBinary(geom) FROM grid "
                                "WHERE valid_to IS NULL")).all()
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def _located(session: Session, c: Community, given_as: str) -> str | None:
    found = locate(session, c.lon, c.lat, crs=given_as)
    return found.chain[-1].code if found.chain else None


def test_community_points_in_gcj02_land_in_their_county_and_500m_off_as_wgs84(
        session: Session, counties: dict[str, BaseGeometry], shared_data: Path) -> None:
    communities = _communities(shared_data / "china" / "adcode", set(counties))
    assert len(communities) > 900, "the code tables should have ~1000 located communities"
    assert len({c.county for c in communities}) >= 30

    # Given as gcj02 (converted on the way in): every community lands in its county.
    wrong_as_gcj = [(c.code, c.name, c.county, got) for c in communities
                    if (got := _located(session, c, "gcj02")) != c.county]
    assert wrong_as_gcj == []

    # Given as wgs84: the point is read where the GCJ-02 numbers are, ~500 m off.
    lon = np.array([c.lon for c in communities])
    lat = np.array([c.lat for c in communities])
    wlon, wlat = crs.to_wgs84(lon, lat, "gcj02")
    _, _, off_m = GEOD.inv(lon, lat, wlon, wlat)
    assert off_m.min() > 150 and off_m.max() < 650
    assert 450 < float(np.median(off_m)) < 600

    misplaced = [c for c in communities if _located(session, c, "wgs84") != c.county]
    assert misplaced, "some communities near a county boundary should leave it when misread"
    assert len(misplaced) < len(communities) * 0.1
    # Each misplacement is the offset's doing: the true point is nearer to the county
    # boundary than the offset, and the misread point is outside the true county.
    for c in misplaced:
        i = communities.index(c)
        county = counties[c.county]
        true_pt = shapely.Point(wlon[i], wlat[i])
        read_pt = shapely.Point(c.lon, c.lat)
        assert county.covers(true_pt)
        assert not county.covers(read_pt)
        nearest_edge = nearest_points(county.boundary, true_pt)[0]
        _, _, to_edge_m = GEOD.inv(wlon[i], wlat[i], nearest_edge.x, nearest_edge.y)
        assert to_edge_m < off_m[i]


def test_the_intake_puts_gcj02_reports_in_their_county(
        session: Session, counties: dict[str, BaseGeometry], shared_data: Path,
        settings: Settings) -> None:
    """The same points through the intake (index, snapping, batch insert) as incidents."""
    communities = _communities(shared_data / "china" / "adcode", set(counties))
    upsert_categories(session, [CategoryRecord("E0101", "暴露垃圾", "Exposed rubbish", "event",
                                               "环卫处", 4)])
    index = get_index(session)

    def register_as(given_as: str) -> list[str | None]:
        items = [validate_incident({"lon": c.lon, "lat": c.lat, "crs": given_as,
                                    "category": "E0101", "source": "other",
                                    "external_id": f"{c.code}-{given_as}"}, tz=settings.tz)
                 for c in communities]
        done = register_many(session, items, actor="test", settings=settings, index=index)
        assert all(d.created for d in done)
        return [d.grid.code if d.grid else None for d in done]

    as_gcj = register_as("gcj02")
    assert [c.county for c in communities] == as_gcj
    as_wgs = register_as("wgs84")
    wrong = {c.code for c, got in zip(communities, as_wgs, strict=True) if got != c.county}
    misplaced = {c.code for c in communities if _located(session, c, "wgs84") != c.county}
    # the intake agrees with the SQL locate, except for misread points it snapped back
    # into their county (outside every county, within the snap tolerance)
    assert wrong and wrong <= misplaced
    stored = session.execute(text("SELECT input_crs, count(*) FROM incident GROUP BY 1")).all()
    assert dict(stored) == {"gcj02": len(communities), "wgs84": len(communities)}
