"""The roster: workers, teams and their duties on grids (queries and checked edits).

Edits run in the caller's transaction and raise ``InvalidInput`` (bad field),
``NotFound`` (unknown id) or ``Conflict`` (duplicate) before writing anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo.assign import DutyCandidate, parse_shifts
from geo.errors import Conflict, InvalidInput, NotFound
from geo.store.models import DUTY_KINDS, WORKER_ROLES, Category, Duty, Grid, Team, Worker

WORKER_FIELDS = ("code", "name", "phone", "role", "team_id", "active")
TEAM_FIELDS = ("code", "name", "kind", "grid_code")


# --------------------------------------------------------------------------- checks

def _text(value: Any, field: str, max_len: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"{field} {value!r} is not a usable {field}", field=field, value=value,
                           valid=f"a non-empty text of at most {max_len} characters")
    return value.strip()


#: The formats the roster CSV and the API share (an API edit must export and import again).
CODE_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
#: 3 to 32 characters in all, a leading + counted (110, 12345, +86 139-0000-0000).
PHONE_FORMAT = re.compile(r"^(?=.{3,32}\Z)\+?[0-9][0-9 \-]*[0-9]\Z")
KIND_FORMAT = re.compile(r"^[a-z][a-z_]{0,31}\Z")
FORMAT_VALID = {
    "code": "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    "phone": "digits, spaces and '-', optionally starting with '+', at most 32 characters, "
             "e.g. 139-0000-0001",
    "kind": "a lower-case word such as patrol, volunteer, grid, police",
}


def _formatted(value: Any, field: str, pattern: re.Pattern[str], *,
               required: bool = True) -> str | None:
    text = _text(value, field, 64, required=required)
    if text is not None and not pattern.match(text):
        raise InvalidInput(f"{field} {text!r} is not in the roster's format", field=field,
                           value=text, valid=FORMAT_VALID[field])
    return text


def _role(value: Any) -> str:
    if value not in WORKER_ROLES:
        raise InvalidInput(f"role {value!r} is not a worker role", field="role", value=value,
                           valid=", ".join(WORKER_ROLES))
    return str(value)


def _current_grid(session: Session, code: Any, field: str) -> str:
    if not isinstance(code, str) or session.scalar(
            select(Grid.id).where(Grid.code == code, Grid.valid_to.is_(None))) is None:
        raise InvalidInput(f"{field} {code!r} is not the code of a current grid", field=field,
                           value=code, valid="the code of a current grid (GET /api/v1/grids)")
    return code


def _team_ref(session: Session, team_id: Any) -> int | None:
    if team_id is None:
        return None
    if not isinstance(team_id, int) or session.get(Team, team_id) is None:
        raise InvalidInput(f"team_id {team_id!r} is not the id of a team", field="team_id",
                           value=team_id, valid="the id of a team (GET /api/v1/teams) or null")
    return team_id


def _categories(session: Session, value: Any) -> list[str] | None:
    if value is None:
        return None
    valid = "null (every category) or a non-empty list of codes from the category table"
    if not isinstance(value, list | tuple) or not value or not all(
            isinstance(v, str) for v in value):
        raise InvalidInput("categories must be a non-empty list of category codes or null",
                           field="categories", value=value, valid=valid)
    known = set(session.scalars(select(Category.code).where(Category.code.in_(list(value)))))
    unknown = [v for v in value if v not in known]
    if unknown:
        raise InvalidInput(f"category {unknown[0]!r} is not in the category table",
                           field="categories", value=unknown[0], valid=valid,
                           extra={"unknown": unknown})
    return sorted(set(value))


def check_category(session: Session, code: str | None) -> str | None:
    """``code`` when it is in the category table (None passes); InvalidInput otherwise."""
    if code is None:
        return None
    if session.get(Category, code) is None:
        raise InvalidInput(f"category {code!r} is not in the category table", field="category",
                           value=code, valid="a code from the category table, or none")
    return code


def _unknown_keys(changes: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in changes:
        if key not in allowed:
            raise InvalidInput(f"{key!r} cannot be changed here", field=key,
                               value=changes[key], valid=", ".join(allowed))


# --------------------------------------------------------------------------- workers

def list_workers(session: Session, *, role: str | None = None, grid: str | None = None,
                 team_id: int | None = None, active: bool | None = None,
                 limit: int = 100, offset: int = 0) -> tuple[list[Worker], int]:
    """Workers ordered by code, with the total count; ``grid`` means has a duty on that grid."""
    conds: list[Any] = []
    if role is not None:
        conds.append(Worker.role == _role(role))
    if grid is not None:
        _current_grid(session, grid, "grid")
        conds.append(Worker.id.in_(select(Duty.worker_id).where(Duty.grid_code == grid)))
    if team_id is not None:
        conds.append(Worker.team_id == team_id)
    if active is not None:
        conds.append(Worker.active.is_(active))
    total = int(session.scalar(select(func.count()).select_from(Worker).where(*conds)) or 0)
    items = session.scalars(select(Worker).where(*conds).order_by(Worker.code)
                            .limit(limit).offset(offset)).all()
    return list(items), total


def get_worker(session: Session, worker_id: int) -> Worker:
    """The worker with this id, or NotFound."""
    worker = session.get(Worker, worker_id)
    if worker is None:
        raise NotFound(f"there is no worker with id {worker_id}", field="worker_id",
                       value=worker_id, valid="the id of a worker (GET /api/v1/workers)")
    return worker


def _unique_code(session: Session, model: Any, code: str, own_id: int | None = None) -> None:
    other = session.scalar(select(model.id).where(model.code == code))
    if other is not None and other != own_id:
        kind = model.__tablename__
        raise Conflict(f"a {kind} with code {code!r} already exists (id {other})", field="code",
                       value=code, valid=f"a code no other {kind} has")


def create_worker(session: Session, *, code: str, name: str, role: str,
                  phone: str | None = None, team_id: int | None = None,
                  active: bool = True) -> Worker:
    """Add a worker; Conflict when the code is taken."""
    worker = Worker(code=_formatted(code, "code", CODE_FORMAT), name=_text(name, "name", 200),
                    role=_role(role),
                    phone=_formatted(phone, "phone", PHONE_FORMAT, required=False),
                    team_id=_team_ref(session, team_id), active=bool(active))
    _unique_code(session, Worker, str(worker.code))
    session.add(worker)
    session.flush()
    return worker


def update_worker(session: Session, worker_id: int, changes: Mapping[str, Any]) -> Worker:
    """Change some of code, name, phone, role, team_id, active."""
    _unknown_keys(changes, WORKER_FIELDS)
    worker = get_worker(session, worker_id)
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "code":
            checked[key] = _formatted(value, "code", CODE_FORMAT)
            _unique_code(session, Worker, checked[key], worker.id)
        elif key == "name":
            checked[key] = _text(value, "name", 200)
        elif key == "phone":
            checked[key] = _formatted(value, "phone", PHONE_FORMAT, required=False)
        elif key == "role":
            checked[key] = _role(value)
        elif key == "team_id":
            checked[key] = _team_ref(session, value)
        elif key == "active":
            if not isinstance(value, bool):
                raise InvalidInput("active must be true or false", field="active", value=value,
                                   valid="true or false")
            checked[key] = value
    for key, value in checked.items():
        setattr(worker, key, value)
    session.flush()
    return worker


# --------------------------------------------------------------------------- teams

def list_teams(session: Session, *, kind: str | None = None) -> list[Team]:
    """Teams ordered by code, optionally of one kind."""
    query = select(Team).order_by(Team.code)
    if kind is not None:
        query = query.where(Team.kind == kind)
    return list(session.scalars(query).all())


def get_team(session: Session, team_id: int) -> Team:
    """The team with this id, or NotFound."""
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"there is no team with id {team_id}", field="team_id", value=team_id,
                       valid="the id of a team (GET /api/v1/teams)")
    return team


def create_team(session: Session, *, code: str, name: str, kind: str = "patrol",
                grid_code: str | None = None) -> Team:
    """Add a team, optionally attached to a current grid (usually a street)."""
    team = Team(code=_formatted(code, "code", CODE_FORMAT), name=_text(name, "name", 200),
                kind=_formatted(kind, "kind", KIND_FORMAT),
                grid_code=None if grid_code is None else _current_grid(session, grid_code,
                                                                       "grid_code"))
    _unique_code(session, Team, str(team.code))
    session.add(team)
    session.flush()
    return team


def update_team(session: Session, team_id: int, changes: Mapping[str, Any]) -> Team:
    """Change some of code, name, kind, grid_code."""
    _unknown_keys(changes, TEAM_FIELDS)
    team = get_team(session, team_id)
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "code":
            checked[key] = _formatted(value, "code", CODE_FORMAT)
            _unique_code(session, Team, checked[key], team.id)
        elif key == "kind":
            checked[key] = _formatted(value, "kind", KIND_FORMAT)
        elif key == "name":
            checked[key] = _text(value, key, 200)
        elif key == "grid_code":
            checked[key] = None if value is None else _current_grid(session, value, "grid_code")
    for key, value in checked.items():
        setattr(team, key, value)
    session.flush()
    return team


# --------------------------------------------------------------------------- duties

def list_duties(session: Session, *, grid: str | None = None, worker_id: int | None = None,
                kind: str | None = None) -> list[Duty]:
    """Duties ordered by grid code, kind (primary first) and worker id; ``grid`` must be the
    code of a grid (a retired one may still hold duties no grid inherited)."""
    query = select(Duty).order_by(Duty.grid_code, Duty.kind.desc(), Duty.worker_id, Duty.id)
    if grid is not None:
        if session.scalar(select(Grid.id).where(Grid.code == grid).limit(1)) is None:
            raise InvalidInput(f"grid {grid!r} is not the code of a grid", field="grid",
                               value=grid, valid="the code of a grid, current or retired "
                                                 "(GET /api/v1/grids)")
        query = query.where(Duty.grid_code == grid)
    if worker_id is not None:
        query = query.where(Duty.worker_id == worker_id)
    if kind is not None:
        query = query.where(Duty.kind == _kind(kind))
    return list(session.scalars(query).all())


def _kind(value: Any) -> str:
    if value not in DUTY_KINDS:
        raise InvalidInput(f"kind {value!r} is not a duty kind", field="kind", value=value,
                           valid=", ".join(DUTY_KINDS) + " (A角 / B角)")
    return str(value)


def create_duty(session: Session, *, worker_id: int, grid_code: str, kind: str,
                shifts: Sequence[Mapping[str, Any]] | None = None,
                categories: Sequence[str] | None = None) -> Duty:
    """Give a worker a duty on a current grid, with checked shifts and categories."""
    if not isinstance(worker_id, int) or session.get(Worker, worker_id) is None:
        raise InvalidInput(f"worker_id {worker_id!r} is not the id of a worker",
                           field="worker_id", value=worker_id,
                           valid="the id of a worker (GET /api/v1/workers)")
    code = _current_grid(session, grid_code, "grid_code")
    duty_kind = _kind(kind)
    parsed = parse_shifts(list(shifts) if shifts is not None else None)
    cats = _categories(session, list(categories) if categories is not None else None)
    existing = session.scalar(select(Duty.id).where(
        Duty.worker_id == worker_id, Duty.grid_code == code, Duty.kind == duty_kind))
    if existing is not None:
        raise Conflict(f"worker {worker_id} already has a {duty_kind} duty on grid {code!r} "
                       f"(duty {existing})", field="grid_code", value=code,
                       valid="a grid and kind this worker has no duty for yet; "
                             "delete the old duty to change its shifts")
    duty = Duty(worker_id=worker_id, grid_code=code, kind=duty_kind,
                shifts=[s.as_dict() for s in parsed], categories=cats)
    session.add(duty)
    session.flush()
    return duty


def get_duty(session: Session, duty_id: int) -> Duty:
    """The duty with this id, or NotFound."""
    duty = session.get(Duty, duty_id)
    if duty is None:
        raise NotFound(f"there is no duty with id {duty_id}", field="duty_id", value=duty_id,
                       valid="the id of a duty (GET /api/v1/duties)")
    return duty


def delete_duty(session: Session, duty_id: int) -> None:
    """Remove a duty; NotFound when there is none with this id."""
    session.delete(get_duty(session, duty_id))
    session.flush()


def duties_for_grid(session: Session, grid_code: str) -> list[DutyCandidate]:
    """Every duty on ``grid_code`` with its worker, as ``geo.assign`` wants them."""
    rows = session.execute(
        select(Duty.id, Duty.kind, Duty.shifts, Duty.categories, Worker.id.label("worker_id"),
               Worker.code, Worker.name, Worker.phone, Worker.role, Worker.active)
        .join(Worker, Worker.id == Duty.worker_id)
        .where(Duty.grid_code == grid_code)
        .order_by(Duty.id)
    ).all()
    return [
        DutyCandidate(
            duty_id=r.id, worker_id=r.worker_id, worker_code=r.code, worker_name=r.name,
            kind=r.kind, shifts=parse_shifts(r.shifts or []),
            categories=None if r.categories is None else frozenset(r.categories),
            active=r.active, phone=r.phone, role=r.role)
        for r in rows
    ]
