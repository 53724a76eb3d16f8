"""account links: the newest invitation or password-reset link per user; exception actors

Revision ID: e41a7c2d9f10
Revises: c8088ea594e1
Create Date: 2026-12-05 07:00:00.000000

Links issued before this revision carry no nonce and stop working: an administrator makes
a new invitation, a user asks for a new reset link.

Certificates granted by exception were logged ("certificate.issue") as issued by their
holder; the lead who granted the exception (the actor of the matching
"certificate.exception" event) becomes the actor of those events.
"""
from alembic import op
import sqlalchemy as sa
import app.db_types

# revision identifiers, used by Alembic.
revision = 'e41a7c2d9f10'
down_revision = 'c8088ea594e1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('account_link',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('issued_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', app.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_account_link_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'purpose', name=op.f('pk_account_link'))
    )
    op.execute(
        """
        UPDATE audit_event SET actor_id = (
            SELECT granted.actor_id FROM audit_event AS granted
            WHERE granted.action = 'certificate.exception'
              AND granted.object_id = audit_event.object_id
            ORDER BY granted.id LIMIT 1
        )
        WHERE action = 'certificate.issue' AND EXISTS (
            SELECT 1 FROM audit_event AS granted
            WHERE granted.action = 'certificate.exception'
              AND granted.object_id = audit_event.object_id
        )
        """
    )


def downgrade():
    # The corrected actors stay: they are the truth, not a schema change.
    op.drop_table('account_link')
