"""Incident positions in bulk for the map pages, straight into numpy.

The database packs the positions of the matching incidents into one large
``bytea`` value per 16.7 M ids (``string_agg`` of each point's WKB, with its frame number for
the time slider appended as an ``int4``), which numpy reads in place: a million
incidents come back in about a second, without one Python object (or one COPY
message) per row. :mod:`geo.h3bins` then bins them per H3 cell. The filters are
the read API's (:class:`geo.store.incident_queries.IncidentFilter`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Integer, cast, extract, func, literal, literal_column, select
from sqlalchemy.orm import Session

from geo.store.incident_queries import IncidentFilter, filter_conditions
from geo.store.models import Incident

Frame = Literal["week", "hour"]
WEEK_S = 7 * 24 * 3600
#: Incidents per packed value (ids in blocks of 2**24: at most ~420 MB per bytea).
_BLOCK = 1 << 24
#: A point's little-endian WKB: byte order 1, type 1 (Point), x, y.
_POINT = [("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")]


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
    record: Any = func.ST_AsBinary(Incident.geom, "NDR")
    frames = _frame_column(frame, timezone, week_origin)
    if frames:
        record = record.op("||")(func.int4send(frames[0]))
    conditions = filter_conditions(session, filters)
    top = session.scalar(select(func.max(Incident.id))) or 0
    raw = session.connection().connection.driver_connection
    assert raw is not None
    blobs: list[bytes] = []
    for low in range(0, int(top) + 1, _BLOCK):  # one bytea stays far below PostgreSQL's 1 GB
        stmt = (select(func.string_agg(record, literal_column("''::bytea")))
                .where(*conditions, Incident.id >= low, Incident.id < low + _BLOCK))
        compiled = stmt.compile(dialect=session.get_bind().dialect,
                                compile_kwargs={"render_postcompile": True})
        with raw.cursor() as cur:  # binary results: the bytea arrives as is, not as hex text
            row = cur.execute(str(compiled), compiled.params, binary=True).fetchone()
        if row is not None and row[0] is not None:
            blobs.append(bytes(row[0]))
    return _parse(b"".join(blobs), with_frame=frame is not None)


def _parse(data: bytes, *, with_frame: bool) -> IncidentPoints:
    """Records of (point WKB[, int4 big-endian frame]) packed one after the other."""
    dtype = np.dtype([*_POINT, *([("frame", ">i4")] if with_frame else [])])
    if len(data) % dtype.itemsize:
        raise ValueError(f"packed positions of {len(data)} bytes are not "
                         f"{dtype.itemsize}-byte records")
    rows = np.frombuffer(data, dtype=dtype)
    if len(rows) and (np.any(rows["order"] != 1) or np.any(rows["type"] != 1)):
        raise ValueError("a packed position is not a 2D little-endian WKB point")
    frame = rows["frame"].astype(np.int64) if with_frame else None
    return IncidentPoints(lon=rows["x"].astype(np.float64), lat=rows["y"].astype(np.float64),
                          frame=frame)
