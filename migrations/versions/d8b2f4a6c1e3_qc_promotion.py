"""QC promotion: a QC record's link to the teaching case made from its study (and to the
PACS import making it), and candidate reference reads

Revision ID: d8b2f4a6c1e3
Revises: c5e7a9b1d3f6
Create Date: 2026-12-06 08:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd8b2f4a6c1e3'
down_revision = 'c5e7a9b1d3f6'
branch_labels = None
depends_on = None

BEFORE = "'expert', 'adjudication'"
AFTER = BEFORE + ", 'candidate'"


def _kinds(kinds: str) -> None:
    # SQLite cannot alter a constraint: the batch copies the table with the new one.
    with op.batch_alter_table('reference_read', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_reference_read_known_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_reference_read_known_kind'),
                                         f"kind IN ({kinds})")


def upgrade():
    _kinds(AFTER)
    with op.batch_alter_table('qc_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('promote_job_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_qc_record_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qc_record_promote_job_id'), ['promote_job_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_qc_record_case_id_teaching_case'),
                                    'teaching_case', ['case_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_qc_record_promote_job_id_job'),
                                    'job', ['promote_job_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('qc_record', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_qc_record_promote_job_id_job'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_qc_record_case_id_teaching_case'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_qc_record_promote_job_id'))
        batch_op.drop_index(batch_op.f('ix_qc_record_case_id'))
        batch_op.drop_column('promote_job_id')
        batch_op.drop_column('case_id')
    op.execute("DELETE FROM reference_read WHERE kind = 'candidate'")
    _kinds(BEFORE)
