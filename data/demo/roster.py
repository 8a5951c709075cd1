"""The demo roster, as roster CSV rows (written through the same path as ``roster import``).

Teams, per street (街道/镇): a grid service team (``T<9 digits>-GRID``, kind ``grid``:
its grid workers, community managers and dispatchers), a patrol team
(``-PATROL``, kind ``patrol``, 4–6 members) and a volunteer team (``-VOL``, kind
``volunteer``, 3–5 members): 10 patrol and 10 volunteer teams in all.

Workers and duties:

- every grid has its own grid worker (``W<grid code>``): **primary (A角)** on that
  grid ``mon-fri 08:00-18:00``, and **backup (B角)** of the previous grid of the
  same community (in code order; the first backs up the last) ``daily 18:00-08:00;
  sat-sun 08:00-18:00``. So every grid has a primary and a different backup, and
  the two shifts together cover all 168 hours of the week: someone is always on
  duty (the backup's night shift belongs to the day it starts, so Sunday
  18:00 runs to Monday 08:00);
- a manager per community (``M<community code>``), primary on the community
  ``mon-sat 08:30-17:30``;
- a manager per street (``M<street code>``), primary on the street
  ``mon-fri 08:30-17:30``: overdue incidents escalated to the street go to him
  (to the dispatcher on duty outside office hours);
- two dispatchers per street (``D<street code>-1`` day ``daily 08:00-20:00`` and
  ``-2`` night ``daily 20:00-08:00``), primary on the street;
- patrol and volunteer members without duties, with a last known position inside
  their street.

Names are synthetic (seeded draws from common surnames and given-name characters);
phone numbers are clearly fake: ``139-0000-NNNN``, numbered in worker-code order.
"""

from __future__ import annotations

import datetime as dt
import zlib
from zoneinfo import ZoneInfo

import numpy as np

from data.demo.city import City
from data.demo.tiling import sample_inside
from data.roster_io import COLUMNS

PRIMARY_SHIFTS = "mon-fri 08:00-18:00"
BACKUP_SHIFTS = "daily 18:00-08:00; sat-sun 08:00-18:00"
MANAGER_SHIFTS = "mon-sat 08:30-17:30"
STREET_MANAGER_SHIFTS = "mon-fri 08:30-17:30"
DISPATCHER_SHIFTS = ("daily 08:00-20:00", "daily 20:00-08:00")
#: Last positions are seen up to three hours before this moment.
POSITIONS_AT = dt.datetime(2025, 6, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

SURNAMES = ("陈林黄张李王吴刘蔡杨郑许谢洪郭邱曾廖赖周徐江叶庄苏何游詹施卢方高"
            "魏朱余翁薛严")
GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉玲萍红斌宇鹏燕鑫"
         "婷雪琳晨欣佳怡志海峰颖丹凯晓思梦瑶俊浩宏榕闽清")


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def person_name(seed: int, code: str) -> str:
    """A synthetic Chinese name, always the same for the same seed and worker code."""
    rng = _rng(seed, code)
    surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
    length = 1 if rng.random() < 0.3 else 2
    return surname + "".join(GIVEN[int(rng.integers(len(GIVEN)))] for _ in range(length))


def _team(code: str, name: str, kind: str, street: str) -> dict[str, str]:
    return {"team_code": code, "team_name": name, "team_kind": kind, "team_grid_code": street}


def roster_rows(city: City, seed: int) -> list[dict[str, str]]:
    """The demo roster as roster CSV rows (every column of :data:`COLUMNS`)."""
    rows: list[dict[str, str]] = []
    by_parent: dict[str, list[str]] = {}
    for rec in (*city.communities, *city.grids):
        by_parent.setdefault(str(rec.parent_code), []).append(rec.code)
    for street in city.streets:
        short = street.code[:9]
        grid_team = _team(f"T{short}-GRID", f"{street.name}网格化服务管理中心", "grid",
                          street.code)
        rows.append({"worker_code": f"M{street.code}", "role": "manager", **grid_team,
                     "grid_code": street.code, "duty": "primary",
                     "shifts": STREET_MANAGER_SHIFTS})
        for n, shifts in enumerate(DISPATCHER_SHIFTS, start=1):
            rows.append({"worker_code": f"D{street.code}-{n}", "role": "dispatcher",
                         **grid_team, "grid_code": street.code, "duty": "primary",
                         "shifts": shifts})
        for community in sorted(by_parent.get(street.code, [])):
            rows.append({"worker_code": f"M{community}", "role": "manager", **grid_team,
                         "grid_code": community, "duty": "primary", "shifts": MANAGER_SHIFTS})
            grids = sorted(by_parent.get(community, []))
            for i, grid in enumerate(grids):
                worker = {"worker_code": f"W{grid}", "role": "grid_worker", **grid_team}
                rows.append({**worker, "grid_code": grid, "duty": "primary",
                             "shifts": PRIMARY_SHIFTS})
                rows.append({**worker, "grid_code": grids[i - 1], "duty": "backup",
                             "shifts": BACKUP_SHIFTS})
        rng = _rng(seed, street.code)
        for suffix, name, kind, role, low in (("PATROL", "巡防队", "patrol", "patrol", 4),
                                              ("VOL", "平安志愿者服务队", "volunteer",
                                               "volunteer", 3)):
            team = _team(f"T{short}-{suffix}", street.name + name, kind, street.code)
            for n in range(1, int(rng.integers(low, low + 3)) + 1):
                rows.append({"worker_code": f"{role[0].upper()}{street.code}-{n:02d}",
                             "role": role, **team})
    codes = sorted({r["worker_code"] for r in rows})
    phones = {code: f"139-0000-{i + 1:04d}" for i, code in enumerate(codes)}
    out = []
    for row in rows:
        full = {c: row.get(c, "") for c in COLUMNS}
        full.update(name=person_name(seed, row["worker_code"]), phone=phones[row["worker_code"]],
                    active="true")
        out.append(full)
    return out


def last_positions(city: City, rows: list[dict[str, str]],
                   seed: int) -> dict[str, tuple[float, float, dt.datetime]]:
    """Seeded last known positions (WGS-84) of the patrol and volunteer members."""
    streets = {s.code: s.geom for s in city.streets}
    out: dict[str, tuple[float, float, dt.datetime]] = {}
    for row in rows:
        if row["role"] not in ("patrol", "volunteer") or row["worker_code"] in out:
            continue
        rng = _rng(seed, "position:" + row["worker_code"])
        lon, lat = sample_inside(streets[row["team_grid_code"]], 1, rng)[0]
        minutes = int(rng.integers(0, 180))
        out[row["worker_code"]] = (round(float(lon), 7), round(float(lat), 7),
                                   POSITIONS_AT - dt.timedelta(minutes=minutes))
    return out
