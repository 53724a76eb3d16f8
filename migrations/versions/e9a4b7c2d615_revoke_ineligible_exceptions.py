"""Revoke certificates granted as exceptions to readers outside the programme's roles

An exception waives a programme's requirements, never who the programme is for; before
this was refused, a lead could grant e.g. the radiologist programme to a radiographer,
and the certificate verified publicly as valid. Such certificates are revoked with a
reason (kept, not deleted: the record of what was issued stays). The downgrade leaves
them revoked: nothing says they should verify again.

Revision ID: e9a4b7c2d615
Revises: c4d8e2f1a7b3
Create Date: 2026-12-05 13:30:00.000000

"""
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e9a4b7c2d615'
down_revision = 'c4d8e2f1a7b3'
branch_labels = None
depends_on = None

REASON = ("Granted as an exception to a reader whose role is not eligible for this "
          "programme; exceptions waive requirements, not eligibility.")


def upgrade():
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT c.id, c.user_id, p.eligible_roles FROM certificate c "
        "JOIN programme p ON p.id = c.programme_id "
        "WHERE c.exception_reason IS NOT NULL AND c.revoked_at IS NULL"
    )).all()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as naive UTC there (app.db_types)
    for certificate_id, user_id, eligible in rows:
        # JSON comes back parsed on PostgreSQL and as text on SQLite.
        roles = json.loads(eligible) if isinstance(eligible, str) else (eligible or [])
        if not roles:
            continue  # open to every role
        held = {r for (r,) in bind.execute(
            sa.text("SELECT role FROM user_role WHERE user_id = :u"), {"u": user_id})}
        if held & set(roles):
            continue
        bind.execute(
            sa.text("UPDATE certificate SET revoked_at = :now, revoke_reason = :reason "
                    "WHERE id = :id").bindparams(
                sa.bindparam("now", type_=sa.DateTime(timezone=True))),
            {"now": now, "reason": REASON, "id": certificate_id},
        )


def downgrade():
    pass
