"""``python -m tests.bench [NAME ...]``: run the benchmarks on a scratch database."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.engine import make_url

import tests.bench as pkg
from geo.settings import get_settings
from geo.store import db


@dataclass
class Context:
    """What a benchmark gets: a migrated scratch database of its own run."""

    database_url: str


def _modules(names: list[str]) -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("p"))
    if not names:
        return found
    unknown = [n for n in names if not any(f.startswith(n) for f in found)]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; valid: {', '.join(found)}")
    return [f for f in found if any(f.startswith(n) for n in names)]


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all when none is named) and print their lines."""
    base = get_settings().database_url
    url = make_url(base).set(database=f"patrolgrid_bench_{uuid.uuid4().hex[:8]}")
    url_s = url.render_as_string(hide_password=False)
    db.create_database(url_s)
    try:
        db.migrate(url_s)
        ctx = Context(database_url=url_s)
        for name in _modules(argv):
            module = importlib.import_module(f"tests.bench.{name}")
            started = time.perf_counter()
            for line in module.run(ctx):
                print(line, flush=True)
            print(f"  ({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    finally:
        db.drop_database(url_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
