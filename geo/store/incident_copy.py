"""Bulk writes of new incidents: binary ``COPY`` straight into ``incident`` and ``incident_event``.

The bulk import (:mod:`geo.incidents.bulk`) knows, before writing, which rows
are new (it looked their keys up with :func:`geo.store.incidents.find_existing`),
their ids (reserved with :func:`reserve_ids`) and their duplicate links, so it
needs neither ``ON CONFLICT`` nor ``RETURNING`` nor a staging table: the
incidents and their events go to their tables by two binary ``COPY`` streams.
The events are those that :func:`geo.store.incidents.insert_incidents` writes:
``None -> registered`` (kind ``intake``) for every incident and ``registered ->
dispatched`` (kind ``auto_dispatch``) for a dispatched one, with the same data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import errors as pg_errors
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.store.incidents import NewRows, json_text

# One row holding an int8[] (parsed by psycopg in C), not n rows.
_RESERVE = text("SELECT array_agg(nextval('incident_id_seq')) FROM generate_series(1, :n)")

_INCIDENT_COPY = (
    "COPY incident (id, source, external_id, idempotency_key, category_code, description, "
    "reporter, geom, input_crs, grid_code, worker_id, rule, snapped_m, unassigned_reason, "
    "status, reported_at, due_at, attrs, candidate_of, grid_id) FROM STDIN (FORMAT BINARY)")
# geometry and jsonb travel as their binary wire forms (EWKB; version byte + JSON text),
# which is what "bytea" sends: raw bytes.
_INCIDENT_TYPES = ["int8", "text", "text", "text", "text", "text", "text", "bytea", "text",
                   "text", "int4", "text", "float8", "text", "text", "timestamptz",
                   "timestamptz", "bytea", "int8", "int4"]
_EVENT_COPY = ("COPY incident_event (incident_id, actor, from_status, to_status, note, data) "
               "FROM STDIN (FORMAT BINARY)")
_EVENT_TYPES = ["int8", "text", "text", "text", "text", "bytea"]
_POINT = struct.Struct("<BIIdd")
_EWKB_POINT_SRID = 0x20000001
_JSONB = b"\x01"


class KeyClash(Exception):
    """A row's ``(source, external_id)`` or idempotency key was stored meanwhile (by another
    transaction): the COPY failed on the unique index; roll back to a savepoint."""


def reserve_ids(session: Session, n: int) -> list[int]:
    """``n`` fresh incident ids from the sequence (one statement; safe with concurrent writers)."""
    if n <= 0:
        return []
    return list(session.execute(_RESERVE, {"n": n}).scalar_one())


def ewkb_point(lon: float, lat: float) -> bytes:
    """The EWKB of a WGS-84 point (what PostGIS reads from a binary COPY)."""
    return _POINT.pack(1, _EWKB_POINT_SRID, 4326, lon, lat)


class _EventData:
    """The events' JSON, memoised for the common shapes (same grid, worker, rule, crs)."""

    def __init__(self) -> None:
        self.intake: dict[tuple[Any, ...], bytes] = {}
        self.dispatch: dict[tuple[Any, ...], tuple[str, bytes]] = {}

    def registered(self, rows: NewRows, j: int) -> bytes:
        grid, worker, rule, crs = (rows.grid_code[j], rows.worker_id[j], rows.rule[j],
                                   rows.input_crs[j])
        plain = rows.snapped_m[j] is None and rows.unassigned_reason[j] is None and \
            rows.input_lon[j] is None
        key = (grid, worker, rule, crs)
        if plain and key in self.intake:
            return self.intake[key]
        data: dict[str, Any] = {"kind": "intake", "grid": grid, "worker_id": worker,
                                "rule": rule, "snapped_m": rows.snapped_m[j],
                                "unassigned_reason": rows.unassigned_reason[j], "crs": crs}
        if rows.input_lon[j] is not None:
            data["input"] = [rows.input_lon[j], rows.input_lat[j]]
        out = _JSONB + json.dumps({k: v for k, v in data.items() if v is not None},
                                  ensure_ascii=False, separators=(",", ":")).encode()
        if plain:
            self.intake[key] = out
        return out

    def dispatched(self, worker: int | None, rule: str) -> tuple[str, bytes]:
        key = (worker, rule)
        found = self.dispatch.get(key)
        if found is None:
            found = self.dispatch[key] = (
                f"dispatched on intake by rule {rule}",
                _JSONB + json.dumps({"kind": "auto_dispatch", "worker_id": worker, "rule": rule},
                                    separators=(",", ":")).encode())
        return found


def copy_incidents(session: Session, rows: NewRows, pick: Sequence[int], ids: Sequence[int],
                   candidate_of: Sequence[int | None], *, actor: str,
                   grid_ids: Mapping[str, int] | None = None,
                   clock: Callable[[str], None] | None = None) -> int:
    """Write the rows ``pick`` of ``rows`` as incidents ``ids`` with their events; events written.

    ``candidate_of[k]`` is the duplicate link of the ``k``-th picked row (or None).
    ``grid_ids`` maps grid codes to the grid versions they were assigned from (the
    assignment index's): a row whose code is there is written with its ``grid_id``,
    so the table's grid-version trigger does not fire for it; other rows leave it to
    the trigger. ``clock(stage)``, when given, is called after each COPY statement.
    """
    raw: Any = session.connection().connection.driver_connection
    try:
        return _copy(raw, rows, pick, ids, candidate_of, actor, grid_ids or {},
                     clock or _no_clock)
    except pg_errors.UniqueViolation as exc:
        raise KeyClash(str(exc)) from exc


def _no_clock(stage: str) -> None:
    return None


def _copy(raw: Any, rows: NewRows, pick: Sequence[int], ids: Sequence[int],
          candidate_of: Sequence[int | None], actor: str, grid_ids: Mapping[str, int],
          clock: Callable[[str], None]) -> int:
    written = 0
    version = grid_ids.get
    with raw.cursor() as cur:
        # bytea by the plain bytes dumper (psycopg's C one), not dbapi20's Python subclass
        cur.adapters.register_dumper(bytes, BytesBinaryDumper)
        with cur.copy(_INCIDENT_COPY) as copy:
            copy.set_types(_INCIDENT_TYPES)
            write = copy.write_row
            for k, j in enumerate(pick):
                write((ids[k], rows.source[j], rows.external_id[j], rows.idempotency_key[j],
                       rows.category_code[j], rows.description[j], rows.reporter[j],
                       _POINT.pack(1, _EWKB_POINT_SRID, 4326, rows.lon[j], rows.lat[j]),
                       rows.input_crs[j], rows.grid_code[j], rows.worker_id[j], rows.rule[j],
                       rows.snapped_m[j], rows.unassigned_reason[j], rows.status[j],
                       rows.reported_at[j], rows.due_at[j], _JSONB + _attrs(rows.attrs[j]),
                       candidate_of[k], version(rows.grid_code[j])))  # type: ignore[arg-type]
        clock("copy incidents")
        data = _EventData()
        with cur.copy(_EVENT_COPY) as copy:
            copy.set_types(_EVENT_TYPES)
            write = copy.write_row
            for k, j in enumerate(pick):
                write((ids[k], actor, None, "registered", None, data.registered(rows, j)))
                written += 1
                if rows.status[j] == "dispatched":
                    note, payload = data.dispatched(rows.worker_id[j], rows.rule[j])
                    write((ids[k], actor, "registered", "dispatched", note, payload))
                    written += 1
    clock("copy events")
    return written


def _attrs(value: str) -> bytes:
    return b"{}" if value == "{}" else value.encode()


__all__ = ["KeyClash", "copy_incidents", "ewkb_point", "json_text", "reserve_ids"]
