"""The grid-version trigger of ``incident`` fires only when it has something to do.

0006's ``incident_grid_version`` ran its PL/pgSQL function (and, on insert, one
indexed look-up of the grid) for every inserted row, even when the writer had
set ``grid_id`` itself: about 17 µs a row, a third of the cost of writing an
incident. The trigger is now split into an insert and an update trigger whose
``WHEN`` conditions are evaluated by the executor without calling the function:

- insert: only when ``grid_code`` is set and ``grid_id`` is not, or the reverse;
- update of ``grid_code``/``grid_id``: as before, only when ``grid_code``
  becomes NULL with a ``grid_id`` left, or ``grid_code`` changes and ``grid_id``
  is not set by the same statement.

The function is unchanged, so the stored outcome is the same; writers that know
the version (the bulk import, which reads it with the assignment index) skip it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
DROP TRIGGER incident_grid_version ON incident;
CREATE TRIGGER incident_grid_version_insert BEFORE INSERT ON incident
    FOR EACH ROW
    WHEN ((NEW.grid_code IS NULL) <> (NEW.grid_id IS NULL))
    EXECUTE FUNCTION incident_grid_version();
CREATE TRIGGER incident_grid_version_update BEFORE UPDATE OF grid_code, grid_id ON incident
    FOR EACH ROW
    WHEN ((NEW.grid_code IS NULL AND NEW.grid_id IS NOT NULL)
          OR (NEW.grid_code IS DISTINCT FROM OLD.grid_code
              AND NEW.grid_id IS NOT DISTINCT FROM OLD.grid_id))
    EXECUTE FUNCTION incident_grid_version();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS incident_grid_version_insert ON incident;
DROP TRIGGER IF EXISTS incident_grid_version_update ON incident;
CREATE TRIGGER incident_grid_version BEFORE INSERT OR UPDATE OF grid_code, grid_id ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_grid_version();
"""


def upgrade() -> None:
    """Replace the every-row trigger by an insert and an update trigger with WHEN."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Back to 0006's single trigger."""
    op.execute(DOWNGRADE)
