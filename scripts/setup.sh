#!/usr/bin/env bash
# Idempotent setup: PostgreSQL + PostGIS, Node assets, the Python venv, the database.
# Installs system packages only on Debian as root; otherwise prints the commands and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=0
apt_install() {
    if ! can_apt; then
        die "missing system packages: $*
run as root on Debian:
    apt-get update && apt-get install -y $*
then run 'make setup' again."
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL server -------------------------------------------------------
pg_major() {
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1}'
    fi
}
MAJOR=$(pg_major || true)
if [ -z "$MAJOR" ]; then
    say "no PostgreSQL cluster found: installing PostgreSQL"
    apt_install postgresql
    MAJOR=$(pg_major)
    [ -n "$MAJOR" ] || die "PostgreSQL installed but no cluster exists: run 'pg_createcluster --start 15 main'"
    # a cluster we created ourselves: trust local TCP connections, as the project expects
    HBA=/etc/postgresql/$MAJOR/main/pg_hba.conf
    if ! grep -q "patrolgrid" "$HBA"; then
        sed -i '1i host all all 127.0.0.1/32 trust # patrolgrid\nhost all all ::1/128 trust # patrolgrid' "$HBA"
    fi
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    say "starting PostgreSQL $MAJOR"
    if [ "$(id -u)" = 0 ]; then
        pg_ctlcluster --skip-systemctl-redirect "$MAJOR" main start || true
    else
        die "PostgreSQL is not running on 127.0.0.1:5432: run 'sudo pg_ctlcluster $MAJOR main start'"
    fi
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start on 127.0.0.1:5432"
fi

# --- PostGIS, matching the server's major version -----------------------------
if [ ! -f "/usr/share/postgresql/$MAJOR/extension/postgis.control" ] ||
   ! ls /usr/lib/postgresql/"$MAJOR"/lib/postgis-3*.so >/dev/null 2>&1; then
    say "PostGIS missing for PostgreSQL $MAJOR"
    apt_install "postgresql-$MAJOR-postgis-3"
fi

# --- wrk: the HTTP load tool of `make bench` (P3) -------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    apt_install wrk
fi

# --- headless Chromium and CJK fonts: the browser tests of the map pages (tests/browser)
if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium
fi
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK" && ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
    apt_install fonts-noto-cjk
fi

# --- Node assets (Swagger UI, Leaflet): from the npm registry, served by our app
if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci (front-end assets)"
    npm ci --no-audit --no-fund --loglevel=error
fi

# --- Python virtual environment ----------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            PYTHON=$candidate; break
        fi
    done
fi
[ -n "$PYTHON" ] || die "Python 3.11 is required (set PYTHON=/path/to/python3.11)"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.patrolgrid-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "installing patrolgrid with its dev extras"
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c 'import geo, api, maps, data, geopandas, fastapi' ||
        die "the Python install failed: see the pip output above"
    touch "$STAMP"
fi

# --- the map assets folium needs that npm has in another form (maps/asset_build.py)
.venv/bin/python -m maps.assets

# --- the database named by DATABASE_URL ----------------------------------------
say "database: create if missing and migrate"
.venv/bin/patrolgrid db upgrade
