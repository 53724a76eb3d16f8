"""Authenticator keys encrypted at rest; a replacement key awaiting its first code

The TOTP key of each second factor was stored in clear, so a copy of the database or of a
backup could make codes. The column becomes ``encrypted_secret`` and every key in it is
encrypted under the first of the portal's FIELD_ENCRYPTION_KEYS (default: the key generated
into instance/field_key, created by this upgrade if missing); the keys never enter the
database. ``flask db upgrade`` runs inside the portal, so the keys are at hand: on an empty
database there is nothing to encrypt; on an existing install every row is encrypted here.

Offline (``flask db upgrade --sql``) the generated script cannot encrypt: the keys stay in
clear until ``cxr-academy users encrypt-2fa-keys`` is run (each one is also encrypted the
first time it is used). The downgrade decrypts them back into ``secret`` and refuses, naming
the user, when a key cannot be decrypted with the configured keys.

Revision ID: a3f7c9e1d2b4
Revises: a3c5e7f9b1d2
Create Date: 2026-12-05 15:10:00.000000

"""
import re

import sqlalchemy as sa
from alembic import context, op
from flask import current_app

import app.db_types
from app.field_encryption import UndecryptableField, decrypt, encrypt

# revision identifiers, used by Alembic.
revision = 'a3f7c9e1d2b4'
down_revision = 'a3c5e7f9b1d2'
branch_labels = None
depends_on = None

# A key stored in clear (base32); an encrypted one (a Fernet token) never matches.
PLAIN = re.compile(r"^[A-Z2-7]{16,128}=*$")


def _rows(bind):
    return bind.execute(sa.text(
        "SELECT user_id, encrypted_secret FROM user_second_factor ORDER BY user_id")).all()


def _store(bind, user_id, value):
    bind.execute(sa.text("UPDATE user_second_factor SET encrypted_secret = :v "
                         "WHERE user_id = :u"), {"v": value, "u": user_id})


def upgrade():
    with op.batch_alter_table('user_second_factor', schema=None) as batch_op:
        batch_op.alter_column('secret', new_column_name='encrypted_secret',
                              existing_type=sa.String(length=64), type_=sa.Text(),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('replacement_secret', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('replacement_started_at',
                                      app.db_types.UTCDateTime(timezone=True), nullable=True))
    if context.is_offline_mode():
        return  # no keys in a SQL script: `cxr-academy users encrypt-2fa-keys` afterwards
    keys = current_app.config["FIELD_ENCRYPTION_KEYS"]
    bind = op.get_bind()
    for user_id, stored in _rows(bind):
        if PLAIN.match(stored):
            _store(bind, user_id, encrypt(keys, stored))


def downgrade():
    if not context.is_offline_mode():
        keys = current_app.config["FIELD_ENCRYPTION_KEYS"]
        bind = op.get_bind()
        opened = []  # every row first: one that cannot be opened leaves all as they were
        for user_id, stored in _rows(bind):
            if PLAIN.match(stored):
                continue
            try:
                opened.append((user_id, decrypt(keys, stored)))
            except UndecryptableField:
                raise RuntimeError(
                    f"the second factor of user {user_id} cannot be decrypted with "
                    "FIELD_ENCRYPTION_KEYS: put the key it was stored under back, or reset it "
                    "(cxr-academy users reset-2fa), before downgrading") from None
        for user_id, secret in opened:
            _store(bind, user_id, secret)
    with op.batch_alter_table('user_second_factor', schema=None) as batch_op:
        batch_op.drop_column('replacement_started_at')
        batch_op.drop_column('replacement_secret')
        batch_op.alter_column('encrypted_secret', new_column_name='secret',
                              existing_type=sa.Text(), type_=sa.String(length=64),
                              existing_nullable=False)
