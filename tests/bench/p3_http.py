"""P3: incident intake over HTTP on loopback, measured with wrk.

The demo city (grids, roster, categories; no incidents) is loaded into the
scratch database and served by ``uvicorn`` (uvloop + httptools, several worker
processes) exactly as ``patrolgrid serve`` runs it. wrk then drives, for a
bounded time with 32 connections:

- *ours*: ``POST /api/v1/incidents``: validation, CRS, grid and worker
  assignment, duplicate linking, the insert and its audit event, committed;
- *baseline*: ``GET /api/v1/locate``: a bare lookup (grid chain and worker on
  duty) of the same points over the same stack (auth, session, PostGIS).

Both pick random points inside the city's grids (a Lua table of points) and a
random category; every POST has its own ``external_id``. Each side runs
:data:`RUNS` times, alternating (ours, baseline, ours, baseline), and the best
run of each counts: the line printed is ``ratio = ours / baseline`` in requests
per second (target 0.5) with both p99 latencies of those runs; every run's
figure is printed below it, and the incidents persisted are checked against the
2xx answers of all of ours.

Environment: ``PATROLGRID_BENCH_P3_SECONDS`` (default 10) per run,
``PATROLGRID_BENCH_P3_WORKERS`` (default: the CPU count, 2 to 4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text

from data.demo.load import load_demo
from geo.store.db import session_scope
from geo.store.users import create_user

CONNECTIONS = 32
#: Rounds of (ours, baseline); the best run of each side is compared.
RUNS = 2
TARGET = 0.5
POINTS = 2000
ROOT = Path(__file__).resolve().parents[2]

LUA_COMMON = """
local counter = 0
local points = {%(points)s}
local categories = {%(categories)s}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  math.randomseed(tid * 7919 + %(salt)d)
  n = 0
end
"""

LUA_POST = LUA_COMMON + """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
function request()
  n = n + 1
  local p = points[math.random(#points)]
  local body = string.format(
    '{"lon": %%.7f, "lat": %%.7f, "category": "%%s", "source": "app", '
    .. '"external_id": "p3-%(salt)d-%%d-%%d"}',
    p[1], p[2], categories[math.random(#categories)], tid, n)
  return wrk.format("POST", "/api/v1/incidents", nil, body)
end
"""

LUA_GET = LUA_COMMON + """
wrk.headers["Authorization"] = "Bearer %(token)s"
function request()
  local p = points[math.random(#points)]
  return wrk.format("GET", string.format("/api/v1/locate?lon=%%.7f&lat=%%.7f&category=%%s",
                    p[1], p[2], categories[math.random(#categories)]))
end
"""


@dataclass
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def _wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False,
                       stdout=subprocess.DEVNULL, env={**os.environ,
                                                       "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("P3 needs wrk: apt-get install wrk (Debian package)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup_city(url: str) -> tuple[str, list[tuple[float, float]], list[str]]:
    """Load the demo city; return a token, points inside its grids and the category codes."""
    with session_scope(url) as session:
        load_demo(session, incidents=0)
        _, token = create_user(session, name="p3-bench", role="dispatcher")
        wkbs = session.execute(text("SELECT ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL "
                                    "AND level = 'grid'")).scalars().all()
        codes = list(session.execute(text("SELECT code FROM category ORDER BY code")).scalars())
    city = shapely.union_all([shapely.from_wkb(bytes(w)) for w in wkbs])
    shapely.prepare(city)
    xmin, ymin, xmax, ymax = city.bounds
    rng = np.random.default_rng(3)
    points: list[tuple[float, float]] = []
    while len(points) < POINTS:
        x = rng.uniform(xmin, xmax, POINTS)
        y = rng.uniform(ymin, ymax, POINTS)
        inside = shapely.contains_xy(city, x, y)
        points.extend(zip(x[inside].tolist(), y[inside].tolist(), strict=True))
    return token, points[:POINTS], codes


def _serve(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "PATROLGRID_ESCALATION_INTERVAL_S": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise SystemExit(f"P3: the server exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("P3: the server did not answer /healthz within 60 s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    assert match, value
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> WrkResult:
    """The figures of wrk's report (run with ``--latency``)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(rps=rps, p99_ms=p99, requests=requests,
                     non_2xx=int(non.group(1)) if non else 0,
                     socket_errors=sum(int(g) for g in sock.groups()) if sock else 0)


def _run_wrk(wrk: str, base: str, script: str, seconds: float, threads: int) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        done = subprocess.run(
            [wrk, f"-t{threads}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s",
             "--latency", "-s", path, base], capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    return parse_wrk(done.stdout)


def _script(template: str, token: str, points: list[tuple[float, float]],
            codes: list[str], salt: int) -> str:
    return template % {
        "points": ",".join(f"{{{x:.7f},{y:.7f}}}" for x, y in points),
        "categories": ",".join(json.dumps(c) for c in codes), "token": token, "salt": salt}


def _count(url: str) -> int:
    with session_scope(url) as session:
        return int(session.execute(text("SELECT count(*) FROM incident")).scalar_one())


def run(ctx: Any) -> list[str]:
    """Serve the demo city, drive POST intake and GET locate with wrk, compare."""
    wrk = _wrk()
    seconds = float(os.environ.get("PATROLGRID_BENCH_P3_SECONDS", "10"))
    workers = int(os.environ.get("PATROLGRID_BENCH_P3_WORKERS",
                                 str(max(2, min(4, os.cpu_count() or 2)))))
    threads = max(1, min(4, os.cpu_count() or 1))
    token, points, codes = _setup_city(ctx.database_url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(ctx.database_url, port, workers)
    try:
        _wait_ready(base, server)
        get = _script(LUA_GET, token, points, codes, 0)
        # warm-up: every worker builds its assignment index and fills its pools
        _run_wrk(wrk, base, get, 2, threads)
        _run_wrk(wrk, base, _script(LUA_POST, token, points, codes, 1), 2, threads)
        # RUNS rounds of ours then baseline; the best of each counts (the machine's noise
        # moves a single 10 s run by a third either way, most often downwards).
        ours_runs: list[WrkResult] = []
        base_runs: list[WrkResult] = []
        before = _count(ctx.database_url)
        for k in range(RUNS):
            ours_runs.append(_run_wrk(wrk, base, _script(LUA_POST, token, points, codes, 2 + k),
                                      seconds, threads))
            base_runs.append(_run_wrk(wrk, base, get, seconds, threads))
        persisted = _count(ctx.database_url) - before
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    ours = max(ours_runs, key=lambda r: r.rps)
    baseline = max(base_runs, key=lambda r: r.rps)
    answered = sum(r.requests - r.non_2xx for r in ours_runs)
    non_2xx = sum(r.non_2xx for r in ours_runs)
    sockets = sum(r.socket_errors for r in ours_runs)
    base_non_2xx = sum(r.non_2xx for r in base_runs)
    ratio = ours.rps / baseline.rps if baseline.rps else float("nan")
    lines = [
        f"P3 HTTP intake, POST /api/v1/incidents vs GET /api/v1/locate (wrk, {CONNECTIONS} "
        f"connections, best of {RUNS} runs of {seconds:g} s each, uvicorn uvloop+httptools "
        f"x{workers} workers), "
        f"requests/s: ours={ours.rps:.0f} baseline={baseline.rps:.0f} ratio={ratio:.2f} "
        f"target={TARGET} p99_ours={ours.p99_ms:.1f}ms p99_baseline={baseline.p99_ms:.1f}ms",
        "  P3 runs, requests/s: ours " + ", ".join(f"{r.rps:.0f}" for r in ours_runs)
        + "; baseline " + ", ".join(f"{r.rps:.0f}" for r in base_runs),
        f"  P3 checks: POST answered 2xx={answered} non-2xx={non_2xx} socket "
        f"errors={sockets}; incidents persisted={persisted} (>= 2xx answers: "
        f"{'yes' if persisted >= answered else 'NO'}); locate non-2xx={base_non_2xx}",
    ]
    if non_2xx or base_non_2xx or persisted < answered:
        lines.append("  P3 WARNING: errors during the run; the figures above are not valid")
    return lines
