"""Patrol routes with codes; street networks (edges in PostGIS) for route planning.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE patrol_route
    ADD COLUMN code       varchar(64),
    ADD COLUMN attrs      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE patrol_route SET code = 'R' || id WHERE code IS NULL;
ALTER TABLE patrol_route
    ALTER COLUMN code SET NOT NULL,
    ADD CONSTRAINT patrol_route_code UNIQUE (code),
    ADD CONSTRAINT patrol_route_name_given CHECK (btrim(name) <> '');
CREATE INDEX patrol_route_team ON patrol_route (team_id);
CREATE INDEX patrol_route_grids ON patrol_route USING gin (grid_codes);

-- A walkable street network: one row per network, its edges between junctions.
CREATE TABLE street_network (
    name        varchar(64) PRIMARY KEY,
    source      text NOT NULL,
    fingerprint varchar(64) NOT NULL,
    edge_count  integer NOT NULL CHECK (edge_count >= 0),
    node_count  integer NOT NULL CHECK (node_count >= 0),
    length_m    double precision NOT NULL CHECK (length_m >= 0),
    extent      geometry(Polygon, 4326),
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE street_edge (
    id         bigserial PRIMARY KEY,
    network    varchar(64) NOT NULL REFERENCES street_network (name) ON DELETE CASCADE,
    source     bigint NOT NULL,
    target     bigint NOT NULL,
    length_m   double precision NOT NULL CHECK (length_m >= 0),
    highway    varchar(32),
    name       text,
    osm_way_id bigint,
    geom       geometry(LineString, 4326) NOT NULL
);
CREATE INDEX street_edge_geom ON street_edge USING gist (geom);
CREATE INDEX street_edge_network ON street_edge (network);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS street_edge, street_network;
DROP INDEX IF EXISTS patrol_route_team, patrol_route_grids;
ALTER TABLE patrol_route
    DROP CONSTRAINT IF EXISTS patrol_route_code,
    DROP CONSTRAINT IF EXISTS patrol_route_name_given,
    DROP COLUMN IF EXISTS code, DROP COLUMN IF EXISTS attrs, DROP COLUMN IF EXISTS updated_at;
"""


def upgrade() -> None:
    """Give routes a unique code, attributes and an update time; add street networks."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Remove what ``upgrade`` added."""
    op.execute(DOWNGRADE)
