"""``/api/v1/tracks``: upload GPS tracks (patrol, dispatcher), read them as lines (any role)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.auth import Reader, acting_for, require_role
from api.deps import SessionDep, SettingsDep
from api.schemas.grids import Link
from api.schemas.tracks import TrackCollection, TrackUpload
from api.uploads import known_form_fields, save_upload
from data.track_io import read_tracks
from geo.settings import GAP_LIMIT_MAX_S, SPEED_LIMIT_MAX_MPS, Settings
from geo.store import track_queries
from geo.store.grid_queries import check_page
from geo.store.models import INT4_MAX
from geo.store.tracks import save_track
from geo.store.users import Principal
from geo.tracks.clean import Limits
from geo.tracks.points import TrackInput, points_from_records

router = APIRouter(prefix="/tracks", tags=["tracks"])

TrackWriter = Annotated[Principal, Depends(require_role("patrol", "dispatcher"))]



class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type."""

    media_type = "application/geo+json"


def _store(session: Session, settings: Settings, response: Response, worker_id: int,
           track: TrackInput, max_speed_mps: float | None, max_gap_s: float | None,
           dry_run: bool, sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    limits = Limits.from_settings(settings, max_speed_mps=max_speed_mps, max_gap_s=max_gap_s)
    report = save_track(session, worker_id=worker_id, track=track, limits=limits,
                        dry_run=dry_run)
    report.sources = sources or []
    response.status_code = 200 if dry_run else 201
    return report.to_dict()


def _uploader(session: Session, principal: Principal, worker_id: int) -> None:
    """403 unless the caller may upload ``worker_id``'s fixes (see :func:`acting_for`)."""
    acting_for(session, principal, worker_id, "uploads")


@router.post("", status_code=201)
def upload_points(body: TrackUpload, response: Response, session: SessionDep,
                  settings: SettingsDep, principal: TrackWriter) -> dict[str, Any]:
    """Store a batch of a worker's GPS fixes, cleaned (201; 200 for a dry run).

    Each point is `{lon, lat, t}`: (lon, lat) in `crs` (WGS-84 by default), `t` ISO
    8601 **with a time zone**. The first bad point refuses the whole batch (422,
    naming e.g. `points[17].t`) and nothing is written. The answer reports the
    cleaning: `duplicates` (same time twice in the batch), `already_stored` (a
    re-sent batch stores nothing twice), `out_of_order` (sorted, kept), `spikes`
    (dropped), `jumps` and `gaps` (segment splits), with the `limits` used and the
    first dropped points by index. Fixes after a jump at the very end of the
    worker's track are `held` (not stored, not shown) until the next upload
    decides: it stores them (`released`) or drops them (`held_dropped`); `stored`
    counts both this upload's and released fixes. The worker's last known position
    moves to the newest clean point when it is newer than the one on record.

    A `patrol` user uploads only as the worker their user is linked to (403 otherwise);
    a dispatcher or admin for any worker.
    """
    _uploader(session, principal, body.worker_id)
    track = points_from_records(body.points, crs=body.crs,
                                clock_skew_s=settings.track_clock_skew_s,
                                max_points=settings.track_max_points)
    return _store(session, settings, response, body.worker_id, track, body.max_speed_mps,
                  body.max_gap_s, body.dry_run)


@router.post("/import", status_code=201, dependencies=[Depends(known_form_fields)])
def upload_files(
    response: Response, session: SessionDep, settings: SettingsDep, principal: TrackWriter,
    file: Annotated[list[UploadFile], File(description="GPX, GeoLife PLT, CSV or GeoJSON "
                                                       "file(s) of one worker.")],
    worker_id: Annotated[int, Form(ge=1, le=INT4_MAX,
                                   description="The worker the fixes belong to.")],
    format: Annotated[str | None, Form(description="gpx, plt, csv or geojson; from the file "
                                                   "name ending when omitted.")] = None,
    crs: Annotated[str | None, Form(description="wgs84 (default), gcj02, bd09, cgcs2000 or "
                                                "EPSG:<n>.")] = None,
    max_speed_mps: Annotated[float | None, Form(gt=0, le=SPEED_LIMIT_MAX_MPS,
                                                description="Speed limit (m/s).")] = None,
    max_gap_s: Annotated[float | None, Form(gt=0, le=GAP_LIMIT_MAX_S,
                                            description="Segment gap (s).")] = None,
    dry_run: Annotated[bool, Form(description="Clean and report without storing.")] = False,
) -> dict[str, Any]:
    """Upload track files of one worker (multipart), cleaned and stored like `POST /tracks`.

    Several files are one upload: all are stored or none. Errors name the file and the
    point (`walk.csv[12].t` is the 13th point of walk.csv). A `patrol` user uploads only
    as their linked worker, as for `POST /tracks`.
    """
    _uploader(session, principal, worker_id)
    with tempfile.TemporaryDirectory(prefix="patrolgrid-tracks-") as tmp:
        paths, names = [], []
        for n, upload in enumerate(file):
            name = Path(upload.filename or f"upload{n}").name
            path = Path(tmp) / f"{n}{Path(name).suffix.lower()}"
            save_upload(upload, path, settings.max_upload_mb)
            paths.append(path)
            names.append(name)
        track, sources = read_tracks(paths, fmt=format, crs=crs, names=names,
                                     clock_skew_s=settings.track_clock_skew_s,
                                     max_points=settings.track_max_points)
    return _store(session, settings, response, worker_id, track, max_speed_mps, max_gap_s,
                  dry_run, sources)


@router.get("", response_model=TrackCollection, response_class=GeoJSONResponse)
def list_tracks(
    request: Request, session: SessionDep, settings: SettingsDep, _: Reader,
    worker: Annotated[str | None, Query(description="Worker id or code.")] = None,
    grid: Annotated[str | None, Query(description="Only fixes inside this current grid; "
                                                  "lines are cut where a track leaves it.")]
    = None,
    start: Annotated[str | None, Query(alias="from", description="Window start (ISO 8601; "
                                       "default: a day before `to`).")] = None,
    end: Annotated[str | None, Query(alias="to", description="Window end, exclusive "
                                     "(default: now).")] = None,
    limit: Annotated[int | None, Query(description="Lines per page.")] = None,
    offset: int = 0,
) -> TrackCollection:
    """Track lines in a time window as GeoJSON: one LineString per segment (a Point for a
    lone fix) with `worker_id`, `worker_code`, `start`, `end`, `points`, `length_m`,
    ordered by worker and start, paged with a `next` link."""
    size = limit if limit is not None else settings.page_limit
    check_page(size, offset, settings.max_page_limit)
    lo, hi = track_queries.parse_window(start, end, tz=settings.tz,
                                        max_days=settings.track_max_window_days)
    worker_id = track_queries.resolve_worker(session, worker)
    code = track_queries.check_grid(session, grid)
    page = track_queries.segments(session, start=lo, end=hi, worker_id=worker_id, grid=code,
                                  limit=size, offset=offset)
    links = [Link(rel="self", href=str(request.url))]
    if offset + size < page.total:
        links.append(Link(rel="next", href=str(
            request.url.include_query_params(limit=size, offset=offset + size))))
    return TrackCollection(features=page.features, numberMatched=page.total,
                           numberReturned=len(page.features),
                           window={"from": lo.isoformat(), "to": hi.isoformat()}, links=links)
