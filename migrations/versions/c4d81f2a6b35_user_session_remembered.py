"""sign-in sessions remember whether "remember this device" was chosen

Revision ID: c4d81f2a6b35
Revises: b7e3c1a9d254
Create Date: 2026-12-05 13:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4d81f2a6b35'
down_revision = 'b7e3c1a9d254'
branch_labels = None
depends_on = None


def upgrade():
    # Sessions started before were all 12-hour ones without the choice: not remembered.
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remembered', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade():
    op.drop_column('user_session', 'remembered')
