"""PACS endpoints: DICOMweb or DIMSE, credentials encrypted outside the database's keys

Revision ID: c4d8e2f6a913
Revises: b7e3f9a1c520
Create Date: 2026-12-05 16:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'c4d8e2f6a913'
down_revision = 'b7e3f9a1c520'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pacs_endpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('port', sa.Integer(), nullable=True),
        sa.Column('called_ae', sa.String(length=16), nullable=False),
        sa.Column('calling_ae', sa.String(length=16), nullable=False),
        sa.Column('credentials_encrypted', sa.Text(), nullable=True),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('dicomweb', 'dimse')",
                           name=op.f('ck_pacs_endpoint_kind_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pacs_endpoint')),
        sa.UniqueConstraint('name', name=op.f('uq_pacs_endpoint_name')),
    )


def downgrade():
    op.drop_table('pacs_endpoint')
