"""A month of synthetic GPS tracks for the demo patrols, written through the track store.

The walks come from :func:`data.demo.patrol_tracks.month_of_tracks`: each demo
route's scheduled windows (morning and evening), one active patrol member of the
route's team per window, a fix every 5 s with noise, spikes, duplicate time stamps,
signal loss and missed parts. Every walk is cleaned and stored by
:func:`geo.store.tracks.save_track`, the same path as an upload, so the demo's
tracks carry the same segment flags and last known positions as real ones.

The month is the ``days`` local days before ``at``. Loading is skipped when the
demo patrol members already have track points (a second ``demo load`` changes
nothing).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from data.demo.patrol_tracks import demo_plans, month_of_tracks
from geo.settings import Settings
from geo.store.tracks import save_track
from geo.tracks.clean import Limits
from geo.tracks.points import TrackInput

#: Days of tracks ``patrolgrid demo load`` writes.
DEFAULT_DAYS = 30


@dataclass
class DemoTracks:
    """What :func:`load_demo_tracks` wrote."""

    walks: int = 0
    received: int = 0
    stored: int = 0
    skipped: bool = False
    first_day: str | None = None
    days: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Counts for the CLI."""
        return {"walks": self.walks, "received": self.received, "stored": self.stored,
                "skipped": self.skipped, "first_day": self.first_day, "days": self.days,
                "seconds": round(self.seconds, 2)}


def load_demo_tracks(session: Session, *, seed: int, at: dt.datetime, days: int = DEFAULT_DAYS,
                     settings: Settings | None = None) -> DemoTracks:
    """Store ``days`` days of walks of the demo routes ending the day before ``at`` (local)."""
    started = time.perf_counter()
    cfg = settings or Settings.model_construct()
    report = DemoTracks(days=days)
    plans = demo_plans(session)
    codes = sorted({w for p in plans for w in p.workers})
    if not plans or days <= 0:
        return report
    rows = session.execute(text("SELECT code, id FROM worker WHERE code = ANY(:c)"),
                           {"c": codes}).all()
    ids: dict[str, int] = {str(code): int(i) for code, i in rows}
    already = session.execute(text("SELECT 1 FROM track_point WHERE worker_id = ANY(:ids) "
                                   "LIMIT 1"), {"ids": list(ids.values())}).scalar()
    if already:
        report.skipped = True
        return report
    first = at.astimezone(cfg.tz).date() - dt.timedelta(days=days)
    report.first_day = first.isoformat()
    limits = Limits.from_settings(cfg)
    for walk in month_of_tracks(plans, first_day=first, days=days, seed=seed, tz=cfg.timezone):
        track = TrackInput(lon=walk.lon, lat=walk.lat, t_us=walk.t_us)
        saved = save_track(session, worker_id=ids[walk.worker_code], track=track, limits=limits)
        report.walks += 1
        report.received += saved.cleaning.received
        report.stored += saved.cleaning.kept + saved.cleaning.released
    report.seconds = time.perf_counter() - started
    return report
