"""security keys: WebAuthn credentials as a second factor, and their one-time challenges

Revision ID: b7e3f9a1c520
Revises: a3f7c9e1d2b4
Create Date: 2026-12-05 15:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'b7e3f9a1c520'
down_revision = 'a3f7c9e1d2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_security_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('credential_id', sa.String(length=1364), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sign_count', sa.BigInteger(), nullable=False),
        sa.Column('transports', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_user_security_key_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_security_key')),
        sa.UniqueConstraint('credential_id', name=op.f('uq_user_security_key_credential_id')),
    )
    with op.batch_alter_table('user_security_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_security_key_user_id'), ['user_id'],
                              unique=False)
    op.create_table(
        'security_key_challenge',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('challenge', sa.LargeBinary(), nullable=False),
        sa.Column('expires_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_security_key_challenge_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_security_key_challenge')),
    )
    with op.batch_alter_table('security_key_challenge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_key_challenge_user_id'), ['user_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_security_key_challenge_expires_at'),
                              ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('security_key_challenge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_security_key_challenge_expires_at'))
        batch_op.drop_index(batch_op.f('ix_security_key_challenge_user_id'))
    op.drop_table('security_key_challenge')
    with op.batch_alter_table('user_security_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_security_key_user_id'))
    op.drop_table('user_security_key')
