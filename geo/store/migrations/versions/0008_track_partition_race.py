"""``track_point_partition`` sees a partition another transaction has just created.

0004's function checked ``to_regclass(name)`` again after taking its advisory
lock, but a name lookup reads the catalog cache, which taking an advisory lock
does not refresh: the second of two uploads that both needed a new month's
partition did not see the first one's (committed) table and failed with
``relation "track_point_y2025m03" already exists`` (a 500). The check after the
lock now queries ``pg_class`` with a fresh snapshot, and a ``duplicate_table``
raised all the same (a creator that committed between the check and the CREATE)
is taken as "it exists".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION track_point_partition(at timestamptz) RETURNS text
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
    -- a query, not the name cache: it sees a table committed while we waited for the lock
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relname = name AND n.nspname = current_schema()) THEN
        RETURN name;
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I (LIKE track_point INCLUDING DEFAULTS)', name);
    EXCEPTION WHEN duplicate_table THEN
        RETURN name;
    END;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (t >= %L AND t < %L)',
                   name, name || '_range', lo, hi);
    EXECUTE format('ALTER TABLE track_point ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    RETURN name;
END;
$$;
"""

_OLD = """
CREATE OR REPLACE FUNCTION track_point_partition(at timestamptz) RETURNS text
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


def upgrade() -> None:
    """Replace the function by one that rechecks the catalog with a query."""
    op.execute(_FUNCTION)


def downgrade() -> None:
    """Back to 0004's function."""
    op.execute(_OLD)
