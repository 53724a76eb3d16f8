"""derivatives rebuild job: a job kind that re-makes the display derivatives of stored
images from their DICOM

Revision ID: f3a9c1e7b5d2
Revises: f3a1c5e7b9d2
Create Date: 2026-12-06 00:50:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f3a9c1e7b5d2'
down_revision = 'f3a1c5e7b9d2'
branch_labels = None
depends_on = None

BEFORE = "'case_import', 'pacs_import', 'rescoring', 'library_export', 'reminders'"
AFTER = BEFORE + ", 'derivatives_rebuild'"


def _kinds(kinds: str) -> None:
    # SQLite cannot alter a constraint: the batch copies the table with the new one.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_job_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_job_kind'), f"kind IN ({kinds})")


def upgrade():
    _kinds(AFTER)


def downgrade():
    op.execute("DELETE FROM job WHERE kind = 'derivatives_rebuild'")
    _kinds(BEFORE)
