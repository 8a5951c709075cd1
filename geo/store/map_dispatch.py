"""What the dispatch map of one incident shows: where, which grids, who answers, who is near.

For an incident and a moment ``at`` (default now):

- the incident (:func:`geo.store.incident_queries.get_incident`);
- its **grid chain** up to the street, coarsest first, with the polygons (the
  last version, with ``retired_at``, of a grid a plan retired since; the incident's
  own grid as the version it was assigned to, with ``version`` and ``redrawn_at``,
  when a plan or an import redrew it since);
- the **assigned** worker (the one who holds the incident, with the rule that
  gave it to them: the intake's, ``dispatcher`` or ``escalation_*``), the one the
  **intake** chose when that differs, and the worker the rules of
  :mod:`geo.incidents.responsible` choose **now** (``at``: shifts move on), each
  with their position and the geodesic distance to the incident when they have one;
- the **nearest on-duty** workers: active grid workers, patrol members and
  volunteers with a last known position, on duty at ``at`` for the incident's
  category (a duty on shift, or no duty at all: on call; the rule-4 test of
  :mod:`geo.incidents.responsible`), nearest first by geodesic distance.

A worker's position is the last known one on a live map; on a map of a past ``at``
it is where they were then (:mod:`geo.store.positions`: their newest stored fix
by then), for the nearest, the three workers and rule 4 of the choice alike.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.assign import parse_shifts
from geo.errors import NotFound
from geo.incidents import responsible
from geo.incidents.responsible import RosterView, minutes_of_week, week_mask
from geo.store.incident_queries import IncidentRow, get_incident, grid_chain
from geo.store.incidents import duties_on, street_workers
from geo.store.map_common import feature_collection, grid_features
from geo.store.positions import FIX_AT, GEOM_AT, SEEN_AT

#: Roles that go out to an incident.
FIELD_ROLES = ("grid_worker", "patrol", "volunteer")
#: Candidates (by planar KNN) handed to the geodesic ranking and the duty test.
CANDIDATES = 200

# Who: ``k`` (id, geom, seen) names the workers and where they were at ``:at``.
_PEOPLE = """
SELECT w.id, w.code, w.name, w.role, w.phone, w.active, t.code AS team_code,
       t.name AS team_name, ST_X(k.geom) AS lon, ST_Y(k.geom) AS lat,
       k.seen AS last_seen_at,
       ST_Distance(k.geom::geography,
                   ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) AS distance_m,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                          'grid', d.grid_code, 'kind', d.kind, 'shifts', d.shifts,
                          'categories', to_jsonb(d.categories)) ORDER BY d.id)
                   FROM duty d WHERE d.worker_id = w.id), '[]'::jsonb) AS duties
  FROM k JOIN worker w ON w.id = k.id LEFT JOIN team t ON t.id = w.team_id
 ORDER BY distance_m, w.code
"""
_WORKER = text(f"""
WITH k AS (
  SELECT w.id, {GEOM_AT} AS geom, {SEEN_AT} AS seen FROM worker w {FIX_AT} WHERE w.id = :id
)""" + _PEOPLE)  # noqa: S608 (constants, no value formatted in)
# A live map: the candidates by the last known positions' index.
_NEAR = text("""
WITH k AS (
  SELECT id, last_geom AS geom, last_seen_at AS seen FROM worker
   WHERE active AND last_geom IS NOT NULL AND role = ANY(:roles)
   ORDER BY last_geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
   LIMIT :candidates
)""" + _PEOPLE)  # noqa: S608 (constants, no value formatted in)
# A map of a past moment: every field worker where they were then.
_NEAR_AT = text(f"""
WITH k AS (
  SELECT w.id, {GEOM_AT} AS geom, {SEEN_AT} AS seen FROM worker w {FIX_AT}
   WHERE w.active AND w.last_geom IS NOT NULL AND w.role = ANY(:roles)
   ORDER BY {GEOM_AT} <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)
   LIMIT :candidates
)""" + _PEOPLE)  # noqa: S608 (constants, no value formatted in)


@dataclass
class Person:
    """A worker on the dispatch map; ``lon``/``lat``/``distance_m`` None without a position."""

    id: int
    code: str
    name: str
    role: str
    phone: str | None
    team_code: str | None
    team_name: str | None
    lon: float | None
    lat: float | None
    distance_m: float | None
    last_seen_at: dt.datetime | None
    rule: str | None = None
    duty: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out = dict(self.__dict__)
        out["last_seen_at"] = self.last_seen_at.isoformat() if self.last_seen_at else None
        return out


@dataclass
class DispatchView:
    """One incident with its grids and the people who could go (see the module docstring)."""

    incident: IncidentRow
    at: dt.datetime
    chain: dict[str, Any]
    assigned: Person | None
    now: Person | None
    now_rule: str
    now_reason: str | None
    nearest: list[Person] = field(default_factory=list)
    #: The worker and rule chosen at intake (its ``intake`` event), when someone or
    #: something (a dispatcher, an escalation, a decline, a plan) changed the worker since.
    intake: Person | None = None
    intake_rule: str | None = None
    #: ``at`` was given: a map of that moment (positions taken later are flagged).
    past: bool = False


# The version of the incident's grid it was assigned to, when a later version exists.
_ASSIGNED_VERSION = text("""
SELECT ST_AsGeoJSON(g.geom, 6) AS geojson, g.version, n.valid_from AS redrawn_at
  FROM grid g
  JOIN grid n ON n.code = g.code AND n.version = g.version + 1
 WHERE g.code = :code AND g.version = :version""")

# The worker and rule the intake chose, as its event recorded them.
_INTAKE = text("""
SELECT CAST(data->>'worker_id' AS integer) AS worker_id, data->>'rule' AS rule
  FROM incident_event
 WHERE incident_id = :id AND data->>'kind' = 'intake'
 ORDER BY id LIMIT 1""")


def _person(r: Any, **extra: Any) -> Person:
    has = r.lon is not None
    return Person(id=r.id, code=r.code, name=r.name, role=r.role, phone=r.phone,
                  team_code=r.team_code, team_name=r.team_name,
                  lon=float(r.lon) if has else None, lat=float(r.lat) if has else None,
                  distance_m=round(float(r.distance_m), 1) if has else None,
                  last_seen_at=r.last_seen_at, **extra)


def _worker(session: Session, worker_id: int | None, inc: IncidentRow,
            past: dt.datetime | None, **extra: Any) -> Person | None:
    """The worker with their position at ``past`` (None: the last known one)."""
    if worker_id is None:
        return None
    r = session.execute(_WORKER, {"id": worker_id, "lon": inc.lon, "lat": inc.lat,
                                  "at": past}).first()
    return _person(r, **extra) if r is not None else None


def _on_duty(duties: list[dict[str, Any]], minute: int, category: str) -> str | None:
    """Why the worker is on duty at ``minute`` for ``category`` (None: not on duty)."""
    if not duties:
        return "on call"
    for d in duties:
        cats = d.get("categories")
        if week_mask(parse_shifts(d["shifts"] or []))[minute] and (cats is None
                                                                   or category in cats):
            return f"{d['kind']} of {d['grid']}"
    return None


def nearest_on_duty(session: Session, inc: IncidentRow, *, at: dt.datetime, tz: ZoneInfo,
                    count: int = 5, past: bool = False) -> list[Person]:
    """The ``count`` on-duty field workers nearest to the incident at ``at`` (nearest first).

    With ``past`` (a map of that moment) each worker is where they were at ``at``
    (:mod:`geo.store.positions`); else at their last known position.
    """
    minute = int(minutes_of_week([at], tz)[0])
    out = []
    params = {"lon": inc.lon, "lat": inc.lat, "roles": list(FIELD_ROLES),
              "candidates": max(CANDIDATES, count), "at": at}
    for r in session.execute(_NEAR_AT if past else _NEAR, params):
        why = _on_duty(list(r.duties), minute, inc.category)
        if why is not None:
            out.append(_person(r, duty=why))
            if len(out) == count:
                break
    return out


def _as_assigned(session: Session, inc: IncidentRow, chain: list[dict[str, Any]]) -> None:
    """Draw the incident's grid as the version it was assigned to, when redrawn since."""
    if inc.grid_code is None or inc.grid_version is None:
        return
    r = session.execute(_ASSIGNED_VERSION, {"code": inc.grid_code,
                                            "version": inc.grid_version}).first()
    for f in chain:
        if r is not None and f["id"] == inc.grid_code:
            f["geometry"] = json.loads(r.geojson)
            f["properties"].update(version=r.version, redrawn_at=r.redrawn_at.isoformat())


def dispatch_view(session: Session, incident_id: int, *, tz: ZoneInfo,
                  at: dt.datetime | None = None, nearest: int = 5) -> DispatchView:
    """The dispatch map's data for one incident (see the module docstring).

    Raises
    ------
    NotFound
        No incident with that id (``field='incident_id'``).
    """
    when = at or dt.datetime.now(dt.UTC)
    try:
        inc = get_incident(session, incident_id, now=when)
    except NotFound as exc:
        raise NotFound(exc.message, field="incident_id", value=incident_id,
                       valid=exc.valid) from None
    links = grid_chain(session, inc.grid_code)
    chain = grid_features(session, [c for c, _, _ in links], retired=True)
    depth = {c: k for k, (c, _, _) in enumerate(links)}
    chain.sort(key=lambda f: depth[f["id"]])
    _as_assigned(session, inc, chain)
    assigned = _worker(session, inc.worker_id, inc, at, rule=inc.rule)
    first = session.execute(_INTAKE, {"id": inc.id}).first()
    intake, intake_rule = None, None
    if first is not None and (first.worker_id != inc.worker_id or first.rule != inc.rule):
        intake = _worker(session, first.worker_id, inc, at, rule=first.rule)
        intake_rule = first.rule
    community, street = responsible.community_and_street(links)
    view = RosterView(duties=duties_on(session, [c for c in (inc.grid_code, community) if c]),
                      street_workers=street_workers(session, [street] if street else [], at=at))
    (choice,) = responsible.choose_workers(
        view, [inc.grid_code], [tuple(links)], [inc.lon], [inc.lat], [when], [inc.category], tz)
    now = _worker(session, choice.worker_id, inc, at, rule=choice.rule)
    return DispatchView(incident=inc, at=when, chain=feature_collection(chain),
                        assigned=assigned, now=now, now_rule=choice.rule,
                        now_reason=choice.reason, intake=intake, intake_rule=intake_rule,
                        past=at is not None,
                        nearest=nearest_on_duty(session, inc, at=when, tz=tz, count=nearest,
                                                past=at is not None))
