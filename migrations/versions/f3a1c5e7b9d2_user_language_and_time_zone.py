"""user language and time zone: each reader's own choice of the portal's language and of
the time zone their pages show times in (both optional)

Revision ID: f3a1c5e7b9d2
Revises: 8e2b4d6f1a37
Create Date: 2026-12-06 00:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3a1c5e7b9d2'
down_revision = '8e2b4d6f1a37'
branch_labels = None
depends_on = None


# Plain ALTER TABLE (SQLite >= 3.35 has ADD/DROP COLUMN): a batch copy of user_account
# would drop the table its sessions, roles and attempts refer to.
def upgrade():
    op.add_column('user_account', sa.Column('language', sa.String(length=8), nullable=True))
    op.add_column('user_account', sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade():
    op.drop_column('user_account', 'timezone')
    op.drop_column('user_account', 'language')
