"""reference read versions count per scheme: a case may have a diagnostic and an
image-quality reference read by the same expert

Revision ID: 4f9c2a7d81e3
Revises: cee251a4dbee
Create Date: 2026-12-05 09:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '4f9c2a7d81e3'
down_revision = 'cee251a4dbee'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reference_read', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reference_read_case_id', type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_reference_read_case_id'),
            ['case_id', 'author_id', 'kind', 'scheme_key', 'version'])


def downgrade():
    # Fails (as it should) while an expert has reads of one case in two schemes with the
    # same version number: delete the image-quality reads first.
    with op.batch_alter_table('reference_read', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reference_read_case_id', type_='unique')
        batch_op.create_unique_constraint(
            batch_op.f('uq_reference_read_case_id'), ['case_id', 'author_id', 'kind', 'version'])
