"""sign-in failures counted per account in the database

Revision ID: a3c5e7f9b1d2
Revises: e9a4b7c2d615
Create Date: 2026-12-05 15:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'a3c5e7f9b1d2'
down_revision = 'e9a4b7c2d615'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_in_failures',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_started_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('locked_until', app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_failures')),
    )


def downgrade():
    op.drop_table('sign_in_failures')
