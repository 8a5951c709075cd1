"""The answer of ``GET /api/v1/locate``."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from geo.locate import Location


class ChainGrid(BaseModel):
    """One grid of the chain."""

    code: str
    name: str
    level: str
    depth: int


class Responsible(BaseModel):
    """The worker on duty for the finest grid, and the rule that chose them."""

    worker_id: int
    code: str
    name: str
    phone: str | None
    role: str | None
    duty_id: int
    duty_kind: str = Field(description="primary (A角) or backup (B角)")
    rule: str = Field(description="The rule that chose this worker: primary, backup, ...")


class Nearest(BaseModel):
    """The nearest grid to a point outside every grid."""

    code: str
    name: str
    level: str
    depth: int
    distance_m: float = Field(description="Geodesic distance on the WGS-84 spheroid, metres.")


class LocateResult(BaseModel):
    """Where a point is and who answers for it."""

    lon: float
    lat: float
    crs: str
    wgs84: tuple[float, float] = Field(description="The point in WGS-84 (lon, lat).")
    at: dt.datetime | None
    chain: list[ChainGrid] = Field(description="Covering grids, coarsest first.")
    grid: str | None = Field(description="Code of the finest grid (last of the chain).")
    ties: list[str] = Field(description="Other finest-depth grids whose boundary the point is "
                                        "on; the chain's grid won by the boundary rule.")
    rule: str = Field("finest depth, then smallest code; ancestors by parent_code",
                      description="The boundary tie-break rule.")
    responsible: Responsible | None
    responsible_reason: str | None = Field(description="Why nobody is responsible.")
    nearest: Nearest | None = Field(description="Set only when the chain is empty.")

    @classmethod
    def of(cls, found: Location) -> LocateResult:
        """The answer for a domain ``Location``."""
        worker = found.responsible.worker if found.responsible else None
        responsible = None
        if worker is not None and found.responsible is not None:
            responsible = Responsible(
                worker_id=worker.worker_id, code=worker.worker_code, name=worker.worker_name,
                phone=worker.phone, role=worker.role, duty_id=worker.duty_id,
                duty_kind=worker.kind, rule=found.responsible.rule)
        reason = found.responsible.reason if found.responsible else None
        if not found.chain:
            reason = "the point is outside every grid"
        nearest = None
        if found.nearest is not None:
            row, distance = found.nearest
            nearest = Nearest(code=row.code, name=row.name, level=row.level, depth=row.depth,
                              distance_m=round(distance, 3))
        return cls(
            lon=found.lon, lat=found.lat, crs=found.crs, wgs84=found.wgs84, at=found.at,
            chain=[ChainGrid(code=g.code, name=g.name, level=g.level, depth=g.depth)
                   for g in found.chain],
            grid=found.chain[-1].code if found.chain else None, ties=found.ties,
            responsible=responsible, responsible_reason=reason, nearest=nearest)
