"""``POST /api/v1/grids/import``: upload a boundary file, validate it, maybe commit (planner)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from api.auth import Planner
from api.deps import SessionDep, SettingsDep
from api.uploads import known_form_fields, save_upload
from data.grid_import import CheckOptions, import_grids
from data.grid_io import ReadOptions, suffix_of
from geo.settings import TOLERANCE_MAX_M2

router = APIRouter(tags=["grids"])



@router.post("/grids/import", dependencies=[Depends(known_form_fields)])
def import_grid_file(
    session: SessionDep, settings: SettingsDep, who: Planner,
    file: Annotated[UploadFile, File(description="GeoJSON, GeoPackage, zipped Shapefile or CSV "
                                                 "with a WKT column.")],
    code_field: Annotated[str, Form(description="Field holding the grid code.")],
    name_field: Annotated[str | None, Form(description="Field holding the name.")] = None,
    parent_field: Annotated[str | None, Form(description="Field holding the parent code.")]
    = None,
    level: Annotated[str | None, Form(description="Level of every grid in the file "
                                                  "(default grid; not with level_field).")]
    = None,
    level_field: Annotated[str | None, Form(description="Field holding each level.")] = None,
    crs: Annotated[str | None, Form(description="wgs84, gcj02, bd09, cgcs2000 or EPSG:<n>; "
                                                "overrides the file's CRS.")] = None,
    wkt_field: Annotated[str | None, Form(description="CSV column with the WKT.")] = None,
    population_field: Annotated[str | None, Form()] = None,
    households_field: Annotated[str | None, Form()] = None,
    layer: Annotated[str | None, Form(description="Layer of a multi-layer file.")] = None,
    make_valid: Annotated[bool, Form(description="Repair invalid polygons.")] = False,
    resolve_overlaps: Annotated[bool, Form(description="Give each overlap to the polygon "
                                                       "whose code sorts first.")] = False,
    tolerance_m2: Annotated[float | None, Form(
        ge=0, le=TOLERANCE_MAX_M2, description="Ignore findings up to this area (m², at most "
        "a hectare).")] = None,
    commit: Annotated[bool, Form(description="Write the grids; a dry run otherwise.")] = False,
) -> dict[str, Any]:
    """Validate an uploaded boundary file like `patrolgrid grids import` and, with
    `commit=true`, write its grids as new versions in one transaction.

    The answer is the validation report (`invalid_geometries`, `overlaps`, `gaps`,
    `outside_parent`, `problems`, …) with `plan` (dry run: what would be written) or
    `written` (commit), and `incidents`: the open incidents of the grids written, placed
    again by the new polygons (moved ones get a new worker and an event; a dry run says
    what a commit would do). A refused commit answers 422 with the report in `detail`
    and writes nothing. Coordinates are (lon, lat).
    """
    name = Path(file.filename or "upload").name
    suffix = suffix_of(name)
    read = ReadOptions(code_field=code_field, name_field=name_field, parent_field=parent_field,
                       level=level, level_field=level_field, crs=crs, wkt_field=wkt_field,
                       population_field=population_field, households_field=households_field,
                       layer=layer)
    check = CheckOptions(make_valid=make_valid, resolve_overlaps=resolve_overlaps,
                         tolerance_m2=settings.topology_tolerance_m2 if tolerance_m2 is None
                         else tolerance_m2)
    with tempfile.TemporaryDirectory(prefix="patrolgrid-upload-") as tmp:
        # saved under the name it was sent with, so that every message names that file
        path = Path(tmp) / (name if name not in ("", ".", "..") and "\x00" not in name
                            and len(name.encode("utf-8", "replace")) < 200
                            else f"upload{suffix}")
        save_upload(file, path, settings.max_upload_mb)
        report = import_grids(session, path, read, check, commit=commit, source=name,
                              actor=f"grids:{who.name}", settings=settings)
    return report.to_dict()
