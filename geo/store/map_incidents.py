"""Incident positions in bulk for the map pages: a binary COPY read straight into numpy.

A million incidents come back as two float64 arrays (and a frame number each,
for the time slider) in well under a second, without one Python object per
row; :mod:`geo.h3bins` then bins them per H3 cell. The filters are the read
API's (:class:`geo.store.incident_queries.IncidentFilter`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Integer, cast, extract, func, literal, select
from sqlalchemy.orm import Session

from geo.store.incident_queries import IncidentFilter, filter_conditions
from geo.store.models import Incident

Frame = Literal["week", "hour"]
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True)
class IncidentPoints:
    """Positions (WGS-84) of the matching incidents, and their frame when asked for."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    frame: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.lon)


def _frame_column(frame: Frame | None, timezone: str, origin: dt.datetime | None) -> list[Any]:
    if frame is None:
        return []
    if frame == "hour":  # hour of day, local time
        return [cast(extract("hour", func.timezone(timezone, Incident.reported_at)), Integer)]
    if origin is None:
        raise ValueError("a week frame needs its origin")
    seconds = extract("epoch", Incident.reported_at - literal(origin))
    return [cast(func.floor(seconds / WEEK_S), Integer)]


def incident_points(session: Session, filters: IncidentFilter, *, frame: Frame | None = None,
                    timezone: str = "Asia/Shanghai", week_origin: dt.datetime | None = None
                    ) -> IncidentPoints:
    """Every incident matching ``filters``, as arrays.

    Parameters
    ----------
    session : Session
    filters : IncidentFilter
        Checked filters (an unknown grid code raises NotFound).
    frame : {"week", "hour"}, optional
        Also return a frame per incident: whole weeks since ``week_origin``, or the
        hour of day (0-23) in ``timezone``.
    timezone : str
        IANA zone of the hour of day.
    week_origin : datetime, optional
        Start of week 0 (aware); required with ``frame="week"``.
    """
    columns = [func.ST_X(Incident.geom), func.ST_Y(Incident.geom),
               *_frame_column(frame, timezone, week_origin)]
    stmt = select(*columns).where(*filter_conditions(session, filters))
    compiled = stmt.compile(dialect=session.get_bind().dialect,
                            compile_kwargs={"render_postcompile": True})
    raw = session.connection().connection.driver_connection
    assert raw is not None
    chunks: list[bytes] = []
    with raw.cursor() as cur, cur.copy(f"COPY ({compiled}) TO STDOUT (FORMAT BINARY)",
                                       compiled.params) as copy:
        for block in copy:
            chunks.append(bytes(block))
    return _parse(b"".join(chunks), with_frame=frame is not None)


def _parse(data: bytes, *, with_frame: bool) -> IncidentPoints:
    """Rows of (float8, float8[, int4]) from PostgreSQL's binary COPY format."""
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    ext = int.from_bytes(data[15:19], "big")
    body = data[19 + ext:-2]  # the trailer is int16 -1
    fields = [("n", ">i2"), ("lx", ">i4"), ("x", ">f8"), ("ly", ">i4"), ("y", ">f8")]
    if with_frame:
        fields += [("lf", ">i4"), ("f", ">i4")]
    dtype = np.dtype(fields)
    if len(body) % dtype.itemsize:
        raise ValueError("unexpected binary COPY row size (a NULL position?)")
    rows = np.frombuffer(body, dtype=dtype)
    if len(rows) and (np.any(rows["lx"] != 8) or np.any(rows["ly"] != 8)):
        raise ValueError("unexpected binary COPY field lengths (a NULL position?)")
    frame = rows["f"].astype(np.int64) if with_frame else None
    return IncidentPoints(lon=rows["x"].astype(np.float64), lat=rows["y"].astype(np.float64),
                          frame=frame)
