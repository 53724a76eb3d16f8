"""re-scoring jobs: the verdict changes each one made, one row per attempt

Revision ID: b3d7e1f9a2c4
Revises: e6fa04b8c325
Create Date: 2026-12-05 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b3d7e1f9a2c4'
down_revision = 'e6fa04b8c325'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'job_verdict_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=False),
        sa.Column('passed_before', sa.Boolean(), nullable=True),
        sa.Column('passed_after', sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'],
                                name=op.f('fk_job_verdict_change_attempt_id_attempt'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'],
                                name=op.f('fk_job_verdict_change_job_id_job'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job_verdict_change')),
        sa.UniqueConstraint('job_id', 'attempt_id', name=op.f('uq_job_verdict_change_job_id')),
    )
    with op.batch_alter_table('job_verdict_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_verdict_change_attempt_id'), ['attempt_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_job_verdict_change_job_id'), ['job_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('job_verdict_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_verdict_change_job_id'))
        batch_op.drop_index(batch_op.f('ix_job_verdict_change_attempt_id'))
    op.drop_table('job_verdict_change')
