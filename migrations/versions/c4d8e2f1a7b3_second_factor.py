"""second factor: TOTP secrets and one-time recovery codes

Revision ID: c4d8e2f1a7b3
Revises: c4d81f2a6b35
Create Date: 2026-12-05 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'c4d8e2f1a7b3'
down_revision = 'c4d81f2a6b35'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_second_factor',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret', sa.String(length=64), nullable=False),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('enrolled_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_time_step', sa.Integer(), nullable=True),
        sa.Column('failed_count', sa.Integer(), nullable=False),
        sa.Column('last_failed_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_user_second_factor_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_second_factor')),
    )
    op.create_table(
        'second_factor_recovery_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('salt', sa.String(length=32), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('used_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_second_factor_recovery_code_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_second_factor_recovery_code')),
    )
    with op.batch_alter_table('second_factor_recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_second_factor_recovery_code_user_id'), ['user_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('second_factor_recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_second_factor_recovery_code_user_id'))
    op.drop_table('second_factor_recovery_code')
    op.drop_table('user_second_factor')
