"""GPS tracks: track_point partitioned by month of time, created on demand.

Scale: a few hundred workers sending a fix every 5 s is 50-200 million rows a
month. The table is PostgreSQL range-partitioned by ``t`` with one partition per
UTC month, so a time-window query only touches the months it overlaps, and old
months can be detached, archived or dropped in one statement. Per partition:

- the primary key ``(worker_id, t)``: one fix per worker and instant (duplicate
  timestamps cannot be stored) and the B-tree for "this worker in this window";
- a GiST index on ``geom`` for "in this grid";
- a BRIN index on ``t`` (fixes arrive in time order, so it is tiny and precise)
  for "everyone in this window".

``seg_start`` marks the first point of a segment (after a gap or a jump); the
segments of a window are the running count of starts, so a late upload only
changes the flags of its neighbours, never numbers further along.
Partitions are made by ``track_point_partition(t)`` (CREATE TABLE + ATTACH
PARTITION, which unlike CREATE TABLE … PARTITION OF does not block readers).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
DROP TABLE track_point;

CREATE TABLE track_point (
    worker_id integer NOT NULL REFERENCES worker (id) ON DELETE CASCADE,
    t         timestamptz NOT NULL,
    geom      geometry(Point, 4326) NOT NULL,
    seg_start boolean NOT NULL DEFAULT false,
    CONSTRAINT track_point_pkey PRIMARY KEY (worker_id, t)
) PARTITION BY RANGE (t);
CREATE INDEX track_point_geom ON track_point USING gist (geom);
CREATE INDEX track_point_t ON track_point USING brin (t) WITH (pages_per_range = 32);

-- The partition of the UTC month of `at`, created (and attached) when missing;
-- returns its name. Concurrent callers are serialised by an advisory lock.
CREATE FUNCTION track_point_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo_utc timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    lo timestamptz := lo_utc AT TIME ZONE 'UTC';
    hi timestamptz := (lo_utc + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'track_point_' || to_char(lo_utc, '"y"YYYY"m"MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('track_point_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE track_point INCLUDING DEFAULTS)', name);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (t >= %L AND t < %L)',
                   name, name || '_range', lo, hi);
    EXECUTE format('ALTER TABLE track_point ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    RETURN name;
END;
$$;
"""

DOWNGRADE = """
DROP FUNCTION IF EXISTS track_point_partition(timestamptz);
DROP TABLE IF EXISTS track_point;
CREATE TABLE track_point (
    id        bigserial PRIMARY KEY,
    worker_id integer NOT NULL REFERENCES worker (id) ON DELETE CASCADE,
    t         timestamptz NOT NULL,
    geom      geometry(Point, 4326) NOT NULL,
    segment   integer NOT NULL DEFAULT 0
);
CREATE INDEX track_point_worker_t ON track_point (worker_id, t);
CREATE INDEX track_point_geom ON track_point USING gist (geom);
"""


def upgrade() -> None:
    """Replace track_point by a table partitioned by month."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Back to the plain track_point of 0001 (points are lost)."""
    op.execute(DOWNGRADE)
