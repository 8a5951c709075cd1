"""Incidents: idempotency, duplicates, evaluation, escalation; the grid epoch counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE incident
    ADD COLUMN idempotency_key    varchar(128),
    ADD COLUMN candidate_of       bigint REFERENCES incident (id) ON DELETE SET NULL,
    ADD COLUMN duplicate_of       bigint REFERENCES incident (id) ON DELETE SET NULL,
    ADD COLUMN unassigned_reason  text,
    ADD COLUMN escalated_to       varchar(64),
    ADD COLUMN escalated_at       timestamptz,
    ADD COLUMN evaluation_score   smallint,
    ADD COLUMN evaluation_comment text,
    ADD COLUMN evaluated_at       timestamptz,
    ADD COLUMN attrs              jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD CONSTRAINT incident_status_valid CHECK (status IN (
        'registered', 'dispatched', 'accepted', 'in_progress', 'disposed', 'verified',
        'closed', 'rejected', 'duplicate')),
    ADD CONSTRAINT incident_evaluation_range
        CHECK (evaluation_score IS NULL OR evaluation_score BETWEEN 1 AND 5);
CREATE UNIQUE INDEX incident_idempotency ON incident (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX incident_status ON incident (status);
CREATE INDEX incident_open_due ON incident (due_at)
    WHERE status NOT IN ('closed', 'rejected', 'duplicate');
CREATE INDEX incident_unassigned ON incident (received_at) WHERE grid_code IS NULL;
CREATE INDEX incident_category_reported ON incident (category_code, reported_at);
CREATE INDEX incident_worker ON incident (worker_id);

-- One row: bumped by every statement that changes grids, so that every process
-- can tell cheaply whether its in-memory assignment index is stale.
CREATE TABLE grid_epoch (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch      bigint NOT NULL DEFAULT 0,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO grid_epoch (id, epoch) VALUES (true, 0);

CREATE FUNCTION grid_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE grid_epoch SET epoch = epoch + 1, changed_at = now();
    PERFORM pg_notify('grid_changed', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER grid_epoch_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grid
    FOR EACH STATEMENT EXECUTE FUNCTION grid_epoch_bump();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS grid_epoch_bump ON grid;
DROP FUNCTION IF EXISTS grid_epoch_bump();
DROP TABLE IF EXISTS grid_epoch;
DROP INDEX IF EXISTS incident_idempotency, incident_status, incident_open_due,
    incident_unassigned, incident_category_reported, incident_worker;
ALTER TABLE incident
    DROP CONSTRAINT IF EXISTS incident_status_valid,
    DROP CONSTRAINT IF EXISTS incident_evaluation_range,
    DROP COLUMN IF EXISTS idempotency_key, DROP COLUMN IF EXISTS candidate_of,
    DROP COLUMN IF EXISTS duplicate_of, DROP COLUMN IF EXISTS unassigned_reason,
    DROP COLUMN IF EXISTS escalated_to, DROP COLUMN IF EXISTS escalated_at,
    DROP COLUMN IF EXISTS evaluation_score, DROP COLUMN IF EXISTS evaluation_comment,
    DROP COLUMN IF EXISTS evaluated_at, DROP COLUMN IF EXISTS attrs;
"""


def upgrade() -> None:
    """Add the incident loop columns and the grid epoch counter."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Remove what ``upgrade`` added."""
    op.execute(DOWNGRADE)
