"""``POST /api/v1/incidents/bulk``: import an incident file over HTTP (dispatcher)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile

from api.auth import Dispatcher
from api.deps import SessionDep, SettingsDep
from api.uploads import known_form_fields, save_upload
from data.incident_import import KEEP_REJECTS, ImportOptions, import_file
from data.incident_io import format_of

router = APIRouter(tags=["incidents"])


@router.post("/incidents/bulk", dependencies=[Depends(known_form_fields)])
def import_incident_file(
    session: SessionDep, settings: SettingsDep, principal: Dispatcher,
    file: Annotated[UploadFile, File(description="CSV with a header row, GeoJSON "
                                                 "FeatureCollection of Points, or NDJSON.")],
    lon_field: Annotated[str | None, Form(description="Field with the longitude (default: "
                                          "the Point geometry, or lon/lng/long/longitude/x)."
                                          )] = None,
    lat_field: Annotated[str | None, Form(description="Field with the latitude (default: "
                                          "lat/latitude/y).")] = None,
    crs: Annotated[str | None, Form(description="wgs84, gcj02, bd09, cgcs2000 or EPSG:<n> of "
                                    "every row (default: a 'crs' field, else wgs84).")] = None,
    external_id_field: Annotated[str | None, Form(description="Field with the id in the "
                                                  "source system (default: external_id).")]
    = None,
    category_field: Annotated[str | None, Form(description="Field with the category code "
                                               "(default: category).")] = None,
    default_category: Annotated[str | None, Form(description="Category of rows without one.")]
    = None,
    time_field: Annotated[str | None, Form(description="Field with the time reported, ISO "
                                           "8601 (default: reported_at).")] = None,
    source: Annotated[str | None, Form(description="hotline, app, patrol, camera, sensor or "
                                       "other for every row (default: a 'source' field, else "
                                       "other).")] = None,
    description_field: Annotated[str | None, Form()] = None,
    reporter_field: Annotated[str | None, Form()] = None,
    timezone: Annotated[str | None, Form(description="Time zone of times without an offset "
                                         "(default: the server's).")] = None,
    format: Annotated[str | None, Form(description="csv, geojson or ndjson when the file "
                                       "name does not say.")] = None,
    dry_run: Annotated[bool, Form(description="Do everything, then roll back.")] = False,
) -> dict[str, Any]:
    """Import incidents from a file like `patrolgrid incidents import`, in one transaction.

    Every row is accepted (a new incident on its grid and worker), a duplicate (its
    external id is known) or rejected with its row number and reason. The answer
    is the summary (`accepted`, `duplicates`, `rejected`, `rejected_by_reason`,
    `unassigned`, …) with the first 1000 rejected rows in `rejected_rows` (row,
    reason, field, value, valid, original values). Problems with the whole file (an
    unknown field, category or format) answer 422 and write nothing.
    Coordinates are (lon, lat).
    """
    name = Path(file.filename or "upload").name
    kind = format_of(name, format)
    options = ImportOptions(
        lon_field=lon_field, lat_field=lat_field, crs=crs, external_id_field=external_id_field,
        category_field=category_field, default_category=default_category,
        time_field=time_field, source=source, description_field=description_field,
        reporter_field=reporter_field, timezone=timezone)
    with tempfile.TemporaryDirectory(prefix="patrolgrid-incidents-") as tmp:
        path = Path(tmp) / f"upload.{kind}"
        save_upload(file, path, settings.max_upload_mb)
        summary = import_file(session, path, options, settings=settings, fmt=kind, name=name,
                              actor=f"import:{principal.name}")
    if dry_run:
        session.rollback()
    out = summary.as_dict()
    out["dry_run"] = dry_run
    out["rejected_rows_limit"] = KEEP_REJECTS
    return out
