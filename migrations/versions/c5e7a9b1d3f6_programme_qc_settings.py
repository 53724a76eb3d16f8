"""Programme QC settings: the target major-discrepancy rate and the ongoing criterion

Revision ID: c5e7a9b1d3f6
Revises: a7c3e9f1b2d4
Create Date: 2026-12-06 07:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c5e7a9b1d3f6'
down_revision = 'a7c3e9f1b2d4'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE (SQLite >= 3.35 drops columns too): a batch copy of ``programme``
    # would drop a table that certificates and requirements point at.
    op.add_column('programme', sa.Column('qc_target_rate', sa.Float(), nullable=True))
    op.add_column('programme', sa.Column('qc_max_rate', sa.Float(), nullable=True))
    op.add_column('programme', sa.Column('qc_last_n', sa.Integer(), nullable=True))
    op.add_column('programme', sa.Column('qc_min_reads', sa.Integer(), nullable=True))


def downgrade():
    op.drop_column('programme', 'qc_min_reads')
    op.drop_column('programme', 'qc_last_n')
    op.drop_column('programme', 'qc_max_rate')
    op.drop_column('programme', 'qc_target_rate')
