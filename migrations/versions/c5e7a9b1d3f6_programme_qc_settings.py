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
    with op.batch_alter_table('programme', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qc_target_rate', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('qc_max_rate', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('qc_last_n', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('qc_min_reads', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('programme', schema=None) as batch_op:
        batch_op.drop_column('qc_min_reads')
        batch_op.drop_column('qc_last_n')
        batch_op.drop_column('qc_max_rate')
        batch_op.drop_column('qc_target_rate')
