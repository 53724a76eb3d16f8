"""background jobs: the job table (state, progress) and each job's per-file results

Revision ID: e6fa04b8c325
Revises: d5e9f3a7b214
Create Date: 2026-12-05 16:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'e6fa04b8c325'
down_revision = 'd5e9f3a7b214'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('progress_done', sa.Integer(), nullable=False),
        sa.Column('progress_total', sa.Integer(), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('params_encrypted', sa.Text(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('summary', sa.JSON(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
                           name=op.f('ck_job_status')),
        sa.CheckConstraint("kind IN ('case_import', 'pacs_import', 'rescoring', "
                           "'library_export', 'reminders')", name=op.f('ck_job_kind')),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'],
                                name=op.f('fk_job_created_by_id_user_account'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job')),
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_created_by_id'), ['created_by_id'],
                              unique=False)
    op.create_table(
        'job_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('name_encrypted', sa.Text(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('pixel_review_needed', sa.Boolean(), nullable=False),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_job_item_job_id_job'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['case_id'], ['teaching_case.id'],
                                name=op.f('fk_job_item_case_id_teaching_case'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['image_id'], ['case_image.id'],
                                name=op.f('fk_job_item_image_id_case_image'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job_item')),
        sa.UniqueConstraint('job_id', 'position', name=op.f('uq_job_item_job_id')),
    )
    with op.batch_alter_table('job_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_item_job_id'), ['job_id'], unique=False)


def downgrade():
    with op.batch_alter_table('job_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_item_job_id'))
    op.drop_table('job_item')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_created_by_id'))
        batch_op.drop_index(batch_op.f('ix_job_status'))
    op.drop_table('job')
