"""QC flags: readers outside a programme's ongoing QC criterion, and the leads' decisions

Revision ID: d8f2b4c6e1a9
Revises: d8b2f4a6c1e3
Create Date: 2026-12-06 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'd8f2b4c6e1a9'
down_revision = 'd8b2f4a6c1e3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('qc_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('opened_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('error_profile', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exercise_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('open', 'decided')", name=op.f('ck_qc_flag_known_state')),
    sa.CheckConstraint("decision IS NULL OR decision IN ('assign_practice', 'keep_watching', 'dismiss')", name=op.f('ck_qc_flag_known_decision')),
    sa.ForeignKeyConstraint(['reader_id'], ['user_account.id'], name=op.f('fk_qc_flag_reader_id_user_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['programme_id'], ['programme.id'], name=op.f('fk_qc_flag_programme_id_programme'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_qc_flag_decided_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercise.id'], name=op.f('fk_qc_flag_exercise_id_exercise'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_flag'))
    )
    with op.batch_alter_table('qc_flag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qc_flag_reader_id'), ['reader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qc_flag_programme_id'), ['programme_id'], unique=False)
        batch_op.create_index('uq_qc_flag_open', ['reader_id', 'programme_id'], unique=True, sqlite_where=sa.text("state = 'open'"), postgresql_where=sa.text("state = 'open'"))


def downgrade():
    with op.batch_alter_table('qc_flag', schema=None) as batch_op:
        batch_op.drop_index('uq_qc_flag_open', sqlite_where=sa.text("state = 'open'"), postgresql_where=sa.text("state = 'open'"))
        batch_op.drop_index(batch_op.f('ix_qc_flag_programme_id'))
        batch_op.drop_index(batch_op.f('ix_qc_flag_reader_id'))

    op.drop_table('qc_flag')
