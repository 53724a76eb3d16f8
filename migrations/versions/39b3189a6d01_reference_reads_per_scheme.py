"""reference reads per scheme: a case's image-quality read beside its radiologists' read

Revision ID: 39b3189a6d01
Revises: cee251a4dbee
Create Date: 2026-12-05 09:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '39b3189a6d01'
down_revision = 'cee251a4dbee'
branch_labels = None
depends_on = None


def upgrade():
    # One author may hold a version 1 read of a case in two schemes (the diagnostic read
    # and the image-quality read).
    with op.batch_alter_table('reference_read', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_reference_read_case_id'), type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_reference_read_case_id'),
            ['case_id', 'author_id', 'kind', 'scheme_key', 'version'])


def downgrade():
    with op.batch_alter_table('reference_read', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_reference_read_case_id'), type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_reference_read_case_id'), ['case_id', 'author_id', 'kind', 'version'])
