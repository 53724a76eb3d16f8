"""pixel review done elsewhere: the reviewer named by an imported case file

Revision ID: b7e3c1a9d254
Revises: dcb6199fb652
Create Date: 2026-12-05 12:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e3c1a9d254'
down_revision = 'dcb6199fb652'
branch_labels = None
depends_on = None


def upgrade():
    # Existing reviews were done here (or by the demo loader): no name to record.
    with op.batch_alter_table('teaching_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pixel_reviewed_by_name', sa.String(length=200),
                                      nullable=True))


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+): batch mode would copy the table, which SQLite's
    # foreign keys from the reads, images and exercise items refuse while cases exist.
    op.drop_column('teaching_case', 'pixel_reviewed_by_name')
