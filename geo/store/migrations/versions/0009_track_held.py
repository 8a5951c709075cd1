"""``track_held``: fixes an upload held back until the worker's next upload decides.

A short run of fixes after a fast leg at the very end of a worker's track may be
a glitch (dropped, so that it never becomes the worker's last known position) or
the start of a real jump (a ride, a fix after a tunnel) whose continuation comes
with the next upload. Such fixes were dropped at once; they are now kept here,
out of every reading, until the next upload of the worker stores or drops them.
At most a few rows per worker, always later than every stored fix of the worker.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``track_held``."""
    op.execute("""
CREATE TABLE track_held (
    worker_id integer NOT NULL REFERENCES worker (id) ON DELETE CASCADE,
    t         timestamptz NOT NULL,
    geom      geometry(Point, 4326) NOT NULL,
    held_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT track_held_pkey PRIMARY KEY (worker_id, t)
)
""")


def downgrade() -> None:
    """Drop ``track_held`` (its fixes are lost)."""
    op.execute("DROP TABLE track_held")
