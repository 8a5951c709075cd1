"""Foundation: versioned grids, roster, categories, incidents, routes, tracks, users.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE grid (
    id          serial PRIMARY KEY,
    code        varchar(64) NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    name        text NOT NULL,
    level       varchar(32) NOT NULL,
    depth       smallint NOT NULL DEFAULT 0,
    parent_code varchar(64),
    population  integer CHECK (population >= 0),
    households  integer CHECK (households >= 0),
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    valid_from  timestamptz NOT NULL DEFAULT now(),
    valid_to    timestamptz,
    CONSTRAINT grid_valid_period CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CONSTRAINT grid_code_version UNIQUE (code, version)
);
CREATE UNIQUE INDEX grid_current_code ON grid (code) WHERE valid_to IS NULL;
CREATE INDEX grid_current_geom ON grid USING gist (geom) WHERE valid_to IS NULL;
CREATE INDEX grid_history_geom ON grid USING gist (geom);
CREATE INDEX grid_current_parent ON grid (parent_code) WHERE valid_to IS NULL;
CREATE INDEX grid_current_level ON grid (level) WHERE valid_to IS NULL;

CREATE TABLE team (
    id        serial PRIMARY KEY,
    code      varchar(64) NOT NULL UNIQUE,
    name      text NOT NULL,
    kind      varchar(32) NOT NULL DEFAULT 'patrol',
    grid_code varchar(64)
);

CREATE TABLE worker (
    id           serial PRIMARY KEY,
    code         varchar(64) NOT NULL UNIQUE,
    name         text NOT NULL,
    phone        varchar(32),
    role         varchar(32) NOT NULL,
    team_id      integer REFERENCES team (id) ON DELETE SET NULL,
    active       boolean NOT NULL DEFAULT true,
    last_geom    geometry(Point, 4326),
    last_seen_at timestamptz,
    CONSTRAINT worker_role_valid
        CHECK (role IN ('grid_worker', 'patrol', 'volunteer', 'dispatcher', 'manager'))
);
CREATE INDEX worker_last_geom ON worker USING gist (last_geom);
CREATE INDEX worker_team ON worker (team_id);

CREATE TABLE duty (
    id         serial PRIMARY KEY,
    worker_id  integer NOT NULL REFERENCES worker (id) ON DELETE CASCADE,
    grid_code  varchar(64) NOT NULL,
    kind       varchar(16) NOT NULL,
    shifts     jsonb NOT NULL DEFAULT '[]'::jsonb,
    categories text[],
    CONSTRAINT duty_kind_valid CHECK (kind IN ('primary', 'backup')),
    CONSTRAINT duty_unique UNIQUE (worker_id, grid_code, kind)
);
CREATE INDEX duty_grid ON duty (grid_code);

CREATE TABLE category (
    code       varchar(64) PRIMARY KEY,
    name_zh    text NOT NULL,
    name_en    text NOT NULL,
    kind       varchar(16) NOT NULL,
    department text NOT NULL,
    sla_hours  double precision NOT NULL CHECK (sla_hours > 0),
    CONSTRAINT category_kind_valid CHECK (kind IN ('component', 'event'))
);

CREATE TABLE incident (
    id               bigserial PRIMARY KEY,
    source           varchar(16) NOT NULL,
    external_id      varchar(128),
    category_code    varchar(64) NOT NULL REFERENCES category (code),
    description      text,
    reporter         text,
    geom             geometry(Point, 4326) NOT NULL,
    input_crs        varchar(32) NOT NULL DEFAULT 'wgs84',
    grid_code        varchar(64),
    worker_id        integer REFERENCES worker (id) ON DELETE SET NULL,
    rule             text,
    snapped_m        double precision,
    status           varchar(16) NOT NULL DEFAULT 'registered',
    version          integer NOT NULL DEFAULT 1,
    escalation_level smallint NOT NULL DEFAULT 0,
    reported_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    due_at           timestamptz,
    closed_at        timestamptz,
    CONSTRAINT incident_source_valid
        CHECK (source IN ('hotline', 'app', 'patrol', 'camera', 'sensor', 'other')),
    CONSTRAINT incident_external UNIQUE (source, external_id)
);
CREATE INDEX incident_geom ON incident USING gist (geom);
CREATE INDEX incident_grid ON incident (grid_code);
CREATE INDEX incident_reported ON incident (reported_at);

CREATE TABLE incident_event (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incident (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text,
    from_status varchar(16),
    to_status   varchar(16),
    note        text,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_event_incident ON incident_event (incident_id);

CREATE TABLE patrol_route (
    id         serial PRIMARY KEY,
    name       text NOT NULL,
    team_id    integer REFERENCES team (id) ON DELETE SET NULL,
    grid_codes text[] NOT NULL DEFAULT '{}',
    schedule   jsonb NOT NULL DEFAULT '[]'::jsonb,
    geom       geometry(MultiLineString, 4326) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patrol_route_geom ON patrol_route USING gist (geom);

CREATE TABLE track_point (
    id        bigserial PRIMARY KEY,
    worker_id integer NOT NULL REFERENCES worker (id) ON DELETE CASCADE,
    t         timestamptz NOT NULL,
    geom      geometry(Point, 4326) NOT NULL,
    segment   integer NOT NULL DEFAULT 0
);
CREATE INDEX track_point_worker_t ON track_point (worker_id, t);
CREATE INDEX track_point_geom ON track_point USING gist (geom);

CREATE TABLE app_user (
    id         serial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    role       varchar(16) NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT app_user_role_valid CHECK (role IN ('patrol', 'dispatcher', 'planner', 'admin'))
);

CREATE TABLE api_token (
    id           serial PRIMARY KEY,
    user_id      integer NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    token_hash   varchar(64) NOT NULL UNIQUE,
    prefix       varchar(16) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS api_token, app_user, track_point, patrol_route, incident_event,
    incident, category, duty, worker, team, grid;
"""


def upgrade() -> None:
    """Create the foundation schema."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop the foundation schema (the postgis extension stays)."""
    op.execute(DOWNGRADE)
