"""Grab-order patrol tasks (抢单式巡防); API users linked to a worker of the roster.

A dispatcher publishes a ``patrol_task``: a route (its line is copied into the
task when published, so later edits of the route do not change what was
claimed) or an area (a polygon, or a grid's polygon), and a time window.
Patrol members and volunteers claim open tasks; the first claim wins: the
claim is one conditional ``UPDATE … WHERE status = 'open' … RETURNING``.

Statuses: ``open`` -> ``claimed`` (by a worker) -> ``done`` (its window is
over); ``open`` -> ``expired`` (window over, nobody claimed it); ``open`` or
``claimed`` -> ``cancelled`` (by a dispatcher). ``version`` grows with every
change.

``app_user.worker_id`` links an API user to the worker they are in the field
(at most one user per worker): a ``patrol`` user claims as that worker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE app_user ADD COLUMN worker_id integer REFERENCES worker (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX app_user_worker ON app_user (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE patrol_task (
    id            serial PRIMARY KEY,
    title         text NOT NULL CHECK (btrim(title) <> ''),
    description   text,
    kind          varchar(8) NOT NULL CHECK (kind IN ('route', 'area')),
    route_id      integer REFERENCES patrol_route (id) ON DELETE SET NULL,
    grid_code     varchar(64),
    geom          geometry(Geometry, 4326) NOT NULL CHECK (
                      (kind = 'route' AND GeometryType(geom) IN ('LINESTRING', 'MULTILINESTRING'))
                   OR (kind = 'area' AND GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON'))),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    status        varchar(16) NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'claimed', 'done', 'cancelled', 'expired')),
    published_by  integer REFERENCES app_user (id) ON DELETE SET NULL,
    published_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by    integer REFERENCES worker (id) ON DELETE SET NULL,
    claimed_by_user integer REFERENCES app_user (id) ON DELETE SET NULL,
    claimed_at    timestamptz,
    cancelled_by  integer REFERENCES app_user (id) ON DELETE SET NULL,
    cancelled_at  timestamptz,
    cancel_reason text,
    closed_at     timestamptz,
    version       integer NOT NULL DEFAULT 1,
    attrs         jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT patrol_task_window CHECK (window_end > window_start),
    CONSTRAINT patrol_task_claim CHECK (
        (status IN ('claimed', 'done')) <= (claimed_at IS NOT NULL)
        AND (status IN ('open', 'expired')) <= (claimed_at IS NULL)),
    CONSTRAINT patrol_task_cancel CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
-- "open tasks near me": distance in metres on the geography of the task
CREATE INDEX patrol_task_geog ON patrol_task USING gist ((geom::geography));
-- settling tasks whose window is over; a worker's claims
CREATE INDEX patrol_task_live ON patrol_task (window_end) WHERE status IN ('open', 'claimed');
CREATE INDEX patrol_task_claimed_by ON patrol_task (claimed_by, window_start)
    WHERE claimed_by IS NOT NULL;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS patrol_task;
DROP INDEX IF EXISTS app_user_worker;
ALTER TABLE app_user DROP COLUMN IF EXISTS worker_id;
"""


def upgrade() -> None:
    """Add patrol_task and app_user.worker_id."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Remove what ``upgrade`` added."""
    op.execute(DOWNGRADE)
