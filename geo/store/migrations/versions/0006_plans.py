"""Grid plans (drafts of boundary edits) and the grid version of every incident.

A ``plan`` redraws the children of one parent grid (a community or a street):
its ``plan_edit`` rows, applied in ``seq`` order to the current grids, give the
result. ``base`` of an edit records the version of every grid the edit read
(``{"code": version}``, 0 for a code that did not exist), so that applying a
plan whose grids changed since it was drafted is refused (409).

``incident.grid_id`` is the grid *version* (``grid.id``) an incident was
assigned to. A trigger fills it with the current version of ``grid_code`` when
a row is inserted without one, or when ``grid_code`` changes and ``grid_id``
is not set by the same statement, so every writer (intake, bulk import, the
loop) keeps it without knowing about it; closed incidents keep the version
they were handled in after the grid is redrawn.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE plan (
    id          serial PRIMARY KEY,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    parent_code varchar(64) NOT NULL,
    kind        varchar(16) NOT NULL DEFAULT 'manual' CHECK (kind IN ('manual', 'suggested')),
    status      varchar(16) NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'applied', 'discarded')),
    created_by  integer REFERENCES app_user (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  integer REFERENCES app_user (id) ON DELETE SET NULL,
    applied_at  timestamptz,
    result      jsonb,
    attrs       jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT plan_applied CHECK ((status = 'applied') = (applied_at IS NOT NULL))
);
CREATE INDEX plan_parent ON plan (parent_code, status);

CREATE TABLE plan_edit (
    id         serial PRIMARY KEY,
    plan_id    integer NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    op         varchar(16) NOT NULL
               CHECK (op IN ('replace', 'split', 'merge', 'move_cells', 'create', 'retire')),
    payload    jsonb NOT NULL,
    base       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by integer REFERENCES app_user (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plan_edit_seq UNIQUE (plan_id, seq)
);

ALTER TABLE incident ADD COLUMN grid_id integer REFERENCES grid (id) ON DELETE SET NULL;
UPDATE incident i SET grid_id = g.id
  FROM grid g WHERE g.code = i.grid_code AND g.valid_to IS NULL;
CREATE INDEX incident_grid_id ON incident (grid_id);

CREATE FUNCTION incident_grid_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.grid_code IS NULL THEN
        NEW.grid_id := NULL;
    ELSIF (TG_OP = 'INSERT' AND NEW.grid_id IS NULL)
       OR (TG_OP = 'UPDATE' AND NEW.grid_code IS DISTINCT FROM OLD.grid_code
           AND NEW.grid_id IS NOT DISTINCT FROM OLD.grid_id) THEN
        SELECT id INTO NEW.grid_id FROM grid WHERE code = NEW.grid_code AND valid_to IS NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER incident_grid_version BEFORE INSERT OR UPDATE OF grid_code, grid_id ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_grid_version();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS incident_grid_version ON incident;
DROP FUNCTION IF EXISTS incident_grid_version();
DROP INDEX IF EXISTS incident_grid_id;
ALTER TABLE incident DROP COLUMN IF EXISTS grid_id;
DROP TABLE IF EXISTS plan_edit;
DROP TABLE IF EXISTS plan;
"""


def upgrade() -> None:
    """Add plan, plan_edit and incident.grid_id with its trigger."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Remove what ``upgrade`` added."""
    op.execute(DOWNGRADE)
