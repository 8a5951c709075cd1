"""Open311 GeoReport v2: mapping between its service requests and our incidents (pure).

GeoReport v2 (http://wiki.open311.org/GeoReport_v2) knows *services* (what can be
reported) and *service requests* (reports). Here a service is an incident
category and a service request is an incident. Nothing in this module touches the
database or HTTP: the queries are in :mod:`geo.store.open311`, the endpoints in
``api/routers/open311.py``.

Services
    One per category: ``service_code`` is the category code, ``service_name`` its
    English name, ``keywords`` its Chinese name, ``group`` the department it is
    dispatched to, ``type`` ``realtime`` (a POST answers with the new request id at
    once) and ``metadata`` false (no extra attributes are asked for).

Statuses
    GeoReport has two: ``open`` and ``closed``. Our three final statuses
    (``closed``, ``rejected``, ``duplicate``) are ``closed``; the six others
    (``registered`` … ``verified``) are ``open``: a ``disposed`` or ``verified``
    incident is still waiting for its verification or closing. ``status_notes``
    says which of ours it is, with the reason of a rejection and the request a
    duplicate was merged into.

Posting a request
    The form fields of the spec are mapped to :func:`geo.incidents.schema.
    validate_incident`'s fields: ``long``/``lat`` -> ``lon``/``lat`` (WGS-84; the
    non-standard field ``crs`` may say ``gcj02``, ``bd09`` or ``cgcs2000``),
    ``service_code`` -> ``category``, ``description``, the reporter's names ->
    ``reporter``; ``source`` is ``app``. ``address_string``, ``address_id``,
    ``email``, ``phone``, ``device_id``, ``account_id``, ``media_url``,
    ``jurisdiction_id`` and the ``attribute[...]`` fields are kept in
    ``attrs["open311"]``. This server does not geocode: ``lat`` and ``long`` are
    required. Errors name our field as the spec calls it (``long``,
    ``service_code``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from geo.errors import (
    Conflict,
    DomainError,
    ImportRefused,
    InvalidInput,
    NotFound,
    check_moment,
    storable_text,
)
from geo.incidents.loop import FINAL_STATUSES
from geo.store.models import INCIDENT_STATUSES

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
OPEN, CLOSED = "open", "closed"
#: Our status -> GeoReport's.
STATUS: dict[str, str] = {s: CLOSED if s in FINAL_STATUSES else OPEN for s in INCIDENT_STATUSES}
#: The source recorded for incidents posted through Open311.
SOURCE = "app"
#: Form fields kept in ``attrs["open311"]``.
KEPT_FIELDS = ("address_string", "address_id", "email", "phone", "device_id", "account_id",
               "media_url", "jurisdiction_id", "first_name", "last_name")
#: Every form field a POST may carry (``attribute[...]`` besides).
FORM_FIELDS = ("api_key", "service_code", "lat", "long", "description", "crs", *KEPT_FIELDS)
#: Our field names -> the spec's, for error messages.
SPEC_FIELD = {"lon": "long", "category": "service_code", "body": "request"}
#: HTTP status of each domain error in GeoReport answers (the spec: 400 for bad input).
ERROR_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400, ImportRefused: 400, NotFound: 404, Conflict: 409,
}
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]+)\](\[\])?$")
DATE_VALID = ("a W3C date-time such as 2025-06-02T09:30:00+08:00 or 2025-06-02T01:30:00Z "
              "(a date alone means its local midnight)")


def open311_status(status: str) -> str:
    """``open`` or ``closed`` for one of our statuses."""
    return STATUS[status]


def parse_statuses(value: str | None) -> tuple[str, ...] | None:
    """Our statuses matching a ``status`` filter (``open``, ``closed`` or ``open,closed``).

    Returns None (no filter) when ``value`` is empty.
    """
    if value is None or not value.strip():
        return None
    wanted = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = wanted - {OPEN, CLOSED}
    if unknown:
        raise InvalidInput(f"status {value!r} is not open or closed", field="status",
                           value=value, valid="open, closed, or open,closed")
    return tuple(s for s in INCIDENT_STATUSES if STATUS[s] in wanted)


def parse_ids(value: str | None, field: str = "service_request_id") -> list[int] | None:
    """A comma-separated list of request ids; None when empty."""
    if value is None or not value.strip():
        return None
    ids: list[int] = []
    for part in value.split(","):
        text = part.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise InvalidInput(f"{field} {text!r} is not a service request id", field=field,
                               value=value, valid="service request ids (positive integers), "
                               "comma-separated")
        ids.append(int(text))
    return ids


def parse_codes(value: str | None) -> list[str] | None:
    """A comma-separated list of service codes; None when empty."""
    if value is None or not value.strip():
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_datetime(value: str | None, field: str, tz: ZoneInfo) -> dt.datetime | None:
    """A W3C date-time (``start_date``, ``end_date``); naive values are local to ``tz``."""
    if value is None or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} {value!r} is not a W3C date-time", field=field,
                           value=value, valid=DATE_VALID) from None
    return check_moment(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz),
                        field, value)


def w3c(value: dt.datetime | None, tz: ZoneInfo) -> str | None:
    """A timezone-aware datetime as W3C text with its offset, in ``tz``; None stays None."""
    if value is None:
        return None
    return value.astimezone(tz).isoformat(timespec="seconds")


def service_of(category: Mapping[str, Any]) -> dict[str, Any]:
    """The GeoReport service of a category row (``code``, ``name_zh``, ``name_en``,
    ``kind``, ``department``, ``sla_hours``)."""
    return {
        "service_code": category["code"],
        "service_name": category["name_en"],
        "description": f"{category['name_zh']} ({category['name_en']}), a "
                       f"{category['kind']}: dealt with by {category['department']} within "
                       f"{_hours(category['sla_hours'])} hours",
        "metadata": False,
        "type": "realtime",
        "keywords": category["name_zh"],
        "group": category["department"],
    }


def service_definition(code: str) -> dict[str, Any]:
    """The definition of a service: no attributes are asked for (``metadata`` is false)."""
    return {"service_code": code, "attributes": []}


def _hours(value: float) -> str:
    return f"{value:g}"


def service_notice(sla_hours: float | None, due_at: dt.datetime | None, tz: ZoneInfo) -> str | None:
    """What the reporter is told at once: the deadline of the category's SLA."""
    if sla_hours is None or due_at is None:
        return None
    return f"to be dealt with within {_hours(sla_hours)} hours, by {w3c(due_at, tz)}"


def _attributes(form: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``attribute[code]`` (one value) and ``attribute[code][]`` (a list) of a form; a code
    given both ways, or given one value twice with different values, is refused."""
    found: dict[str, Any] = {}
    for key, value in form:
        match = _ATTRIBUTE.match(key)
        if match is None:
            continue
        code, many = match.group(1), match.group(2)
        storable_text(value, key)
        before = found.get(code)
        if before is not None and isinstance(before, list) != bool(many):
            raise InvalidInput(f"attribute {code!r} is given both as attribute[{code}] and "
                               f"attribute[{code}][]", field=key, value=value[:80],
                               valid=f"attribute[{code}] once for one value, or "
                               f"attribute[{code}][] for each of several values")
        if many:
            found.setdefault(code, []).append(value)
        elif before is not None and before != value:
            raise InvalidInput(f"{key} is given twice, as {before!r} and {value!r}",
                               field=key, value=value[:80],
                               valid=f"{key} once (a repeat must carry the same value; "
                               f"attribute[{code}][] for several values)")
        else:
            found[code] = value
    return found


def _clean(value: Any, field: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return storable_text(text, field) if text else None


def intake_fields(form: Iterable[tuple[str, str]], *,
                  idempotency_key: str | None = None) -> dict[str, Any]:
    """The fields for ``validate_incident`` from a POST's form items (``(key, value)`` pairs).

    Raises
    ------
    InvalidInput
        An unknown form field, a field given twice with different values; ``lat``/``long``
        missing (with ``address_string`` or not: this server does not geocode).
    """
    items = list(form)
    fields: dict[str, str | None] = {}
    for key, value in items:
        if _ATTRIBUTE.match(key):
            continue
        if key not in FORM_FIELDS:
            raise InvalidInput(f"{key!r} is not a GeoReport v2 field of a service request",
                               field=key, value=str(value)[:80],
                               valid=", ".join(FORM_FIELDS) + ", attribute[<code>]")
        clean = _clean(value, key)
        if key in fields and fields[key] != clean:  # which one did the reporter mean?
            raise InvalidInput(f"{key} is given twice, as {fields[key]!r} and {clean!r}",
                               field=key, value=str(value)[:80],
                               valid=f"{key} once (a repeat must carry the same value)")
        fields[key] = clean
    if fields.get("lat") is None or fields.get("long") is None:
        missing = "lat" if fields.get("lat") is None else "long"
        where = (" (address_string and address_id are not geocoded here)"
                 if fields.get("address_string") or fields.get("address_id") else "")
        raise InvalidInput(f"lat and long are required{where}", field=missing,
                           value=fields.get(missing),
                           valid="lat and long in decimal degrees (WGS-84 unless crs says "
                           "otherwise)")
    kept: dict[str, Any] = {k: fields[k] for k in KEPT_FIELDS if fields.get(k) is not None}
    attributes = _attributes(items)
    if attributes:
        kept["attributes"] = attributes
    raw: dict[str, Any] = {
        "lon": fields["long"], "lat": fields["lat"], "crs": fields.get("crs"),
        "category": fields.get("service_code"), "source": SOURCE,
        "description": fields.get("description"), "reporter": reporter_of(fields),
        "idempotency_key": idempotency_key,
    }
    if kept:
        raw["attrs"] = {"open311": kept}
    return {k: v for k, v in raw.items() if v is not None}


def reporter_of(fields: Mapping[str, str | None]) -> str | None:
    """A short reporter text from the spec's person fields: the name, else email, else phone."""
    name = " ".join(p for p in (fields.get("first_name"), fields.get("last_name")) if p)
    contact = fields.get("email") or fields.get("phone")
    if name and contact:
        return f"{name} <{contact}>"[:200]
    return (name or contact or "")[:200] or None


def status_notes(row: Mapping[str, Any]) -> str:
    """Our own status behind ``open``/``closed``, with the reason when there is one."""
    status = row["status"]
    if status == "duplicate" and row.get("duplicate_of") is not None:
        return f"duplicate: merged into service request {row['duplicate_of']}"
    if status == "rejected" and row.get("last_note"):
        return f"rejected: {row['last_note']}"
    return str(status).replace("_", " ")


def request_of(row: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A GeoReport service request from an incident row of :mod:`geo.store.open311`.

    The reporter's name, email and phone are never shown.
    """
    kept = (row.get("attrs") or {}).get("open311") or {}
    return {
        "service_request_id": str(row["id"]),
        "status": open311_status(row["status"]),
        "status_notes": status_notes(row),
        "service_name": row["service_name"],
        "service_code": row["category_code"],
        "description": row.get("description"),
        "agency_responsible": row.get("department"),
        "service_notice": service_notice(row.get("sla_hours"), row.get("due_at"), tz),
        "requested_datetime": w3c(row["reported_at"], tz),
        "updated_datetime": w3c(row.get("updated_at") or row.get("received_at"), tz),
        "expected_datetime": w3c(row.get("due_at"), tz),
        "address": kept.get("address_string") or row.get("grid_name"),
        "address_id": kept.get("address_id"),
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": kept.get("media_url"),
    }


def error_status(exc: DomainError) -> int:
    """The HTTP status of a domain error in a GeoReport answer."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400


def spec_field(name: str | None) -> str | None:
    """Our field name as the spec calls it (``lon`` -> ``long``, ``category`` ->
    ``service_code``)."""
    return SPEC_FIELD.get(name, name) if name is not None else None


def error_body(code: int, description: str, *, field: str | None = None, value: Any = None,
               valid: str | None = None) -> list[dict[str, Any]]:
    """GeoReport's error answer: a list of ``{code, description}`` (plus ``field``,
    ``value`` and ``valid`` when known)."""
    error: dict[str, Any] = {"code": code, "description": description}
    if field is not None:
        error.update(field=field, value=value)
    if valid is not None:
        error["valid"] = valid
    return [error]


def domain_error_body(exc: DomainError) -> tuple[int, list[dict[str, Any]]]:
    """The status and GeoReport error answer of a domain error, fields named as the spec
    names them."""
    data = exc.to_dict()
    field = spec_field(exc.field)
    description = exc.message
    if field is not None and field != exc.field:
        description = f"{field}: {description}"
    if exc.valid:
        description = f"{description} (valid: {exc.valid})"
    code = error_status(exc)
    return code, error_body(code, description, field=field, value=data.get("value"),
                            valid=exc.valid)
