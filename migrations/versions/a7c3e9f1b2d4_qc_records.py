"""QC records: live reads re-read by the QC centre (study reference pseudonymised, both
reads, the discrepancy grade) and the imports that brought them

Revision ID: a7c3e9f1b2d4
Revises: b1d4e6f8a2c3
Create Date: 2026-12-06 03:50:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.db_types


# revision identifiers, used by Alembic.
revision = 'a7c3e9f1b2d4'
down_revision = 'b1d4e6f8a2c3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'qc_import_batch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=True),
        sa.Column('imported_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.CheckConstraint("source IN ('csv', 'xlsx', 'api', 'manual')",
                           name=op.f('ck_qc_import_batch_source_known')),
        sa.ForeignKeyConstraint(['imported_by_id'], ['user_account.id'],
                                name=op.f('fk_qc_import_batch_imported_by_id_user_account'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_import_batch')),
    )
    op.create_index(op.f('ix_qc_import_batch_imported_by_id'), 'qc_import_batch',
                    ['imported_by_id'], unique=False)
    op.create_table(
        'qc_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_pseudonym', sa.String(length=40), nullable=False),
        sa.Column('reader_id', sa.Integer(), nullable=False),
        sa.Column('clinic_id', sa.Integer(), nullable=False),
        sa.Column('read_date', sa.Date(), nullable=False),
        sa.Column('qc_date', sa.Date(), nullable=True),
        sa.Column('scheme_key', sa.String(length=64), nullable=False),
        sa.Column('scheme_version', sa.Integer(), nullable=False),
        sa.Column('primary_read', sa.JSON(), nullable=False),
        sa.Column('qc_read', sa.JSON(), nullable=False),
        sa.Column('primary_tb', sa.Boolean(), nullable=True),
        sa.Column('qc_tb', sa.Boolean(), nullable=True),
        sa.Column('grade', sa.String(length=2), nullable=False),
        sa.Column('qc_radiologist_id', sa.Integer(), nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('created_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("grade IN ('1', '2a', '2b', '3a', '3b')",
                           name=op.f('ck_qc_record_grade_known')),
        sa.ForeignKeyConstraint(['batch_id'], ['qc_import_batch.id'],
                                name=op.f('fk_qc_record_batch_id_qc_import_batch')),
        sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'],
                                name=op.f('fk_qc_record_clinic_id_clinic')),
        sa.ForeignKeyConstraint(['qc_radiologist_id'], ['user_account.id'],
                                name=op.f('fk_qc_record_qc_radiologist_id_user_account')),
        sa.ForeignKeyConstraint(['reader_id'], ['user_account.id'],
                                name=op.f('fk_qc_record_reader_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_record')),
        sa.UniqueConstraint('study_pseudonym', 'reader_id', name='uq_qc_record_study_reader'),
    )
    op.create_index(op.f('ix_qc_record_batch_id'), 'qc_record', ['batch_id'], unique=False)
    op.create_index('ix_qc_record_clinic_read_date', 'qc_record', ['clinic_id', 'read_date'],
                    unique=False)
    op.create_index(op.f('ix_qc_record_qc_radiologist_id'), 'qc_record',
                    ['qc_radiologist_id'], unique=False)
    op.create_index('ix_qc_record_reader_read_date', 'qc_record', ['reader_id', 'read_date'],
                    unique=False)


def downgrade():
    # Dropping a table drops its indexes on both databases.
    op.drop_table('qc_record')
    op.drop_table('qc_import_batch')
