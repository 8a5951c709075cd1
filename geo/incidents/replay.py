"""A retry must repeat its report: an idempotency key reused for a different one is refused.

``POST /api/v1/incidents`` and Open311's ``POST requests.json`` answer a retry (the
same ``(source, external_id)`` or ``Idempotency-Key``) with the incident already
stored. A client that reuses a key for a *different* report (another category,
another place, another time) would otherwise get the old incident back and its
new report would be lost without a word; :func:`check_replay` turns that into a
409 naming the key, what differs and the stored incident. The bulk import keeps
its own rule (a repeated external id counts as a duplicate row, reported as such).
"""

from __future__ import annotations

import math

from geo.crs import point_to_wgs84
from geo.errors import Conflict
from geo.incidents.intake import Registered
from geo.incidents.schema import IncidentIn

#: How far apart (metres) a retry's point may be from the stored one (float round trips of
#: the GCJ-02/BD-09 conversions stay far below it).
SAME_PLACE_M = 1.0
#: How far apart a retry's ``reported_at`` may be from the stored one.
SAME_TIME_S = 1.0
_M_PER_DEG = 111_320.0


def differences(item: IncidentIn, stored: Registered) -> list[str]:
    """What the retried ``item`` says differently from the ``stored`` incident."""
    out: list[str] = []
    if item.external_id is not None and item.external_id != stored.external_id:
        out.append(f"external_id {item.external_id!r} (stored: {stored.external_id!r})")
    if item.idempotency_key is not None and stored.idempotency_key is not None \
            and item.idempotency_key != stored.idempotency_key:
        out.append(f"Idempotency-Key {item.idempotency_key!r} "
                   f"(stored: {stored.idempotency_key!r})")
    if item.category != stored.category:
        out.append(f"category {item.category!r} (stored: {stored.category!r})")
    if item.source != stored.source:
        out.append(f"source {item.source!r} (stored: {stored.source!r})")
    lon, lat = point_to_wgs84(item.lon, item.lat, item.crs)
    dx = (lon - stored.lon) * _M_PER_DEG * math.cos(math.radians(stored.lat))
    dy = (lat - stored.lat) * _M_PER_DEG
    if math.hypot(dx, dy) > SAME_PLACE_M:
        out.append(f"the point, {math.hypot(dx, dy):.0f} m from the stored one")
    if item.reported_at is not None and \
            abs((item.reported_at - stored.reported_at).total_seconds()) > SAME_TIME_S:
        out.append(f"reported_at {item.reported_at.isoformat()} "
                   f"(stored: {stored.reported_at.isoformat()})")
    return out


def check_replay(item: IncidentIn, stored: Registered, *, key_field: str | None = None) -> None:
    """Raise :class:`~geo.errors.Conflict` when ``stored`` (found by ``item``'s key, not
    created now) is a different report from ``item``.

    ``key_field`` names the key in the error (default: ``Idempotency-Key`` when the item
    has one that matches, else ``external_id``).
    """
    if stored.created:
        return
    found = differences(item, stored)
    if not found:
        return
    by_key = stored.found_by == "Idempotency-Key" if stored.found_by is not None else (
        item.idempotency_key is not None and item.idempotency_key == stored.idempotency_key)
    field = key_field or ("Idempotency-Key" if by_key else "external_id")
    value = item.idempotency_key if by_key else item.external_id
    raise Conflict(
        f"{field} {value!r} already belongs to incident {stored.id}, a different report: "
        + "; ".join(found), field=field, value=value,
        valid=f"a retry repeating incident {stored.id} exactly, or a new {field} for a new "
              "report", extra={"incident_id": stored.id})
