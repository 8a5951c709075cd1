"""``/api/v1/coverage`` (area and hotspot coverage) and ``/api/v1/routes/{id}/actual``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.auth import Reader
from api.deps import Id, SessionDep, SettingsDep
from geo.errors import InvalidInput
from geo.store import coverage as store
from geo.store.track_queries import parse_window

router = APIRouter(tags=["coverage"])


@router.get("/coverage")
def coverage(
    session: SessionDep, settings: SettingsDep, _: Reader,
    grid: Annotated[str | None, Query(description="A current grid code (any level).")] = None,
    level: Annotated[str | None, Query(description="Every current grid of this level "
                                                   "(street, community, grid…), ranked.")]
    = None,
    parent: Annotated[str | None, Query(description="With level: only grids under "
                                                    "this parent code.")] = None,
    start: Annotated[str | None, Query(alias="from", description="ISO 8601; default a day "
                                                                 "before `to`.")] = None,
    end: Annotated[str | None, Query(alias="to", description="ISO 8601; default now.")] = None,
    distance_m: Annotated[float | None, Query(gt=0, le=500, description="Buffer (m) around "
                                              "tracks; default PATROLGRID_COVERAGE_DISTANCE_M "
                                              "(25).")] = None,
    order: Annotated[Literal["worst", "best"], Query(description="With level: least covered "
                                                                 "first (worst) or most.")]
    = "worst",
) -> dict[str, Any]:
    """Share of a grid's area within `distance_m` of any GPS track in `[from, to)`.

    With `grid`: `{grid, coverage, area_m2, covered_m2, buffer_m, cell_m, tracks,
    workers, points, hotspots: {total, visited, coverage, reach_m, lookback, cells}}`.
    Area is measured in metres on a raster of `cell_m` cells in the local UTM zone
    (`coverage` within one percentage point of the exact buffer-union answer).
    Hotspots are the top H3 cells by incidents over the look-back before `to` (as in
    route planning); one is visited when a track passed within `reach_m` of it.

    With `level` (and optionally `parent`): every current grid of the level, ranked
    (`rank` 1 = least covered with `order=worst`), without the hotspot cells.
    """
    if (grid is None) == (level is None):
        raise InvalidInput("give exactly one of grid and level", field="grid", value=grid,
                           valid="grid=CODE for one grid, or level=street|community|grid "
                                 "to rank every grid of a level")
    lo, hi = parse_window(start, end, tz=settings.tz, max_days=settings.track_max_window_days)
    rules = store.Rules.from_settings(settings, distance_m=distance_m)
    if grid is not None:
        return store.grid_coverage(session, grid, start=lo, end=hi, rules=rules)
    assert level is not None
    return store.level_coverage(session, level, start=lo, end=hi, rules=rules, parent=parent,
                                worst_first=order == "worst")


@router.get("/routes/{route_id}/actual")
def route_actual(
    route_id: Id, session: SessionDep, settings: SettingsDep, _: Reader,
    date: Annotated[str, Query(description="Local date YYYY-MM-DD.")],
    tolerance_m: Annotated[float | None, Query(gt=0, le=500, description="Default "
                                               "PATROLGRID_ROUTE_WALK_TOLERANCE_M (25).")]
    = None,
) -> dict[str, Any]:
    """Planned vs actual: the share of the route walked on a day and the missed pieces.

    The route's team members' tracks during the route's scheduled windows that day
    (local time; an empty schedule is the whole day) count; a piece of the route
    within `tolerance_m` of them was walked. `missed` is a GeoJSON FeatureCollection
    of the pieces (lon, lat) with their `length_m`.
    """
    day = store.parse_day(date)
    tolerance = tolerance_m if tolerance_m is not None else settings.route_walk_tolerance_m
    return store.route_actual(session, route_id, day, tz=settings.tz, tolerance_m=tolerance,
                              leg_m=store.longest_leg_m(settings))
