"""flag for review: a trainee's mark on a case of an attempt to come back to it

Revision ID: dcb6199fb652
Revises: 4f9c2a7d81e3
Create Date: 2026-12-05 09:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'dcb6199fb652'
down_revision = '4f9c2a7d81e3'
branch_labels = None
depends_on = None


def upgrade():
    # Existing answers are not flagged.
    with op.batch_alter_table('attempt_answer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flagged', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('attempt_answer', schema=None) as batch_op:
        batch_op.drop_column('flagged')
