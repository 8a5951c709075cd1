"""``patrolgrid demo load``: write the demo city, its categories and its roster.

Everything is written in the caller's transaction and matched by code, so a
second load with the same seed changes nothing (every count ``unchanged``). A
load with another seed gives changed grids new versions, and closes the demo
grids the new build no longer has (their grid workers are set inactive).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from data.demo.categories import CATEGORIES
from data.demo.city import DEFAULT_SEED, City, build_city
from data.demo.incidents import DemoIncidents, load_demo_incidents
from data.demo.roster import last_positions, roster_rows
from data.demo.routes import DemoRoutes, load_demo_routes
from data.demo.tracks import DemoTracks, load_demo_tracks
from data.roster_io import COLUMNS, RosterReport, apply_rows
from geo.incidents.handover import hand_over
from geo.settings import Settings, get_settings
from geo.store.grids import WriteCounts, write_versions
from geo.store.roster_write import set_last_positions, upsert_categories


@dataclass
class DemoReport:
    """What ``load_demo`` wrote, per kind of row, and how long it took."""

    seed: int
    grids: dict[str, WriteCounts] = field(default_factory=dict)
    retired_grids: list[str] = field(default_factory=list)
    categories: WriteCounts = field(default_factory=WriteCounts)
    roster: RosterReport | None = None
    positions_set: int = 0
    routes: DemoRoutes | None = None
    incidents: DemoIncidents | None = None
    tracks: DemoTracks | None = None
    build_seconds: float = 0.0
    total_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Counts only, for the CLI and logs."""
        return {
            "seed": self.seed,
            "grids": {level: c.as_dict() for level, c in self.grids.items()},
            "retired_grids": len(self.retired_grids),
            "categories": self.categories.as_dict(),
            "roster": self.roster.as_dict() if self.roster else None,
            "positions_set": self.positions_set,
            "routes": self.routes.as_dict() if self.routes else None,
            "incidents": self.incidents.as_dict() if self.incidents else None,
            "tracks": self.tracks.as_dict() if self.tracks else None,
            "build_seconds": round(self.build_seconds, 2),
            "total_seconds": round(self.total_seconds, 2),
        }

    @property
    def changed(self) -> bool:
        """Whether anything at all was written."""
        counts = [*self.grids.values(), self.categories]
        if self.roster:
            counts += [self.roster.teams, self.roster.workers, self.roster.duties]
        return (any(c.created or c.updated for c in counts) or bool(self.retired_grids)
                or bool(self.positions_set)
                or bool(self.routes and self.routes.changed)
                or bool(self.incidents and self.incidents.imported.accepted)
                or bool(self.roster and self.roster.duties.deleted)
                or bool(self.tracks and self.tracks.stored))


def _retire_stale(session: Session, city: City, at: dt.datetime) -> list[str]:
    """Close current demo grids under the city's communities that the build no longer has."""
    keep = [g.code for g in city.grids]
    parents = [c.code for c in city.communities]
    rows = session.execute(
        text("""UPDATE grid SET valid_to = :at
                 WHERE valid_to IS NULL AND level = 'grid' AND attrs->>'source' = 'demo'
                   AND parent_code IN :parents AND code NOT IN :keep
             RETURNING code""")
        .bindparams(bindparam("parents", expanding=True), bindparam("keep", expanding=True)),
        {"at": at, "parents": parents, "keep": keep})
    retired = sorted(r[0] for r in rows)
    if retired:
        session.execute(text("UPDATE worker SET active = false WHERE code IN :codes")
                        .bindparams(bindparam("codes", expanding=True)),
                        {"codes": ["W" + code for code in retired]})
        # duties on a grid that is no more would make the roster export refuse to re-import
        session.execute(text("DELETE FROM duty WHERE grid_code IN :codes")
                        .bindparams(bindparam("codes", expanding=True)), {"codes": retired})
    return retired


def load_demo(session: Session, *, seed: int = DEFAULT_SEED,
              at: dt.datetime | None = None, incidents: int = 0,
              settings: Settings | None = None, track_days: int = 0) -> DemoReport:
    """Build the demo city and write it, its categories and its roster into ``session``.

    Parameters
    ----------
    session : Session
        The transaction to write in (the caller commits).
    seed : int
        Seed of the build; the default gives the documented demo city.
    at : datetime, optional
        Time new grid versions start (now when omitted); also the end of the year
        of demo incidents.
    incidents : int
        How many synthetic incidents to add through the import path
        (``data.demo.incidents``; 0: none). ``patrolgrid demo load`` adds 100,000.
    settings : Settings, optional
        For the incident import (snap tolerance, time zone…); the process's own
        by default.
    track_days : int
        Days of synthetic patrol tracks along the demo routes (``data.demo.tracks``;
        0: none), ending the day before ``at``. ``patrolgrid demo load`` adds 30.

    Returns
    -------
    DemoReport
    """
    started = time.perf_counter()
    at = at or dt.datetime.now(dt.UTC)
    city = build_city(seed)
    report = DemoReport(seed=seed, build_seconds=time.perf_counter() - started)
    for level, records in (("street", city.streets), ("community", city.communities),
                           ("grid", city.grids)):
        report.grids[level] = write_versions(session, records, at=at)
    report.retired_grids = _retire_stale(session, city, at)
    report.categories = upsert_categories(session, CATEGORIES)
    rows = roster_rows(city, seed)
    numbered = [(line, row) for line, row in enumerate(rows, start=2)]
    report.roster = apply_rows(session, list(COLUMNS), numbered, source="demo roster",
                               settings=settings or get_settings(), actor="demo")
    if report.retired_grids:  # their grid workers are inactive now
        retired = session.execute(text("SELECT id FROM worker WHERE code IN :codes")
                                  .bindparams(bindparam("codes", expanding=True)),
                                  {"codes": ["W" + c for c in report.retired_grids]}).scalars()
        hand_over(session, list(retired), at=at, settings=settings or get_settings(),
                  actor="demo", source="demo reload")
    report.positions_set = set_last_positions(session, last_positions(city, rows, seed))
    if incidents > 0:
        report.incidents = load_demo_incidents(session, city, seed=seed, now=at,
                                               settings=settings or get_settings(),
                                               count=incidents)
    report.routes = load_demo_routes(session, city)  # after incidents: routes use hotspots
    if track_days > 0:
        report.tracks = load_demo_tracks(session, seed=seed, at=at, days=track_days,
                                         settings=settings or get_settings())
    report.total_seconds = time.perf_counter() - started
    return report
