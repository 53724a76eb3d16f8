"""library search indexes: each filter with the case id (pages read newest first from the
index, counts from the index alone), a tag's and a finding's cases in id order, and the
cases awaiting a pixel review

Revision ID: 8e2b4d6f1a37
Revises: 5c1e8a2f7d90
Create Date: 2026-12-05 22:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8e2b4d6f1a37'
down_revision = '5c1e8a2f7d90'
branch_labels = None
depends_on = None

PENDING = sa.text('pixel_review_needed AND pixel_reviewed_at IS NULL')
# SQLite compares booleans to 1, as its library query is written.
PENDING_SQLITE = sa.text('pixel_review_needed = 1 AND pixel_reviewed_at IS NULL')
# (table, old single-column index, its column, new index)
REPLACED = (
    ('teaching_case', 'ix_teaching_case_status', 'status', 'ix_teaching_case_status_id'),
    ('teaching_case', 'ix_teaching_case_reference_classification', 'reference_classification',
     'ix_teaching_case_reference_classification_id'),
    ('teaching_case', 'ix_teaching_case_reference_tb_positive', 'reference_tb_positive',
     'ix_teaching_case_reference_tb_positive_id'),
    ('case_tag', 'ix_case_tag_tag', 'tag', 'ix_case_tag_tag_case_id'),
    ('case_finding', 'ix_case_finding_finding', 'finding', 'ix_case_finding_finding_case_id'),
)


def _id(table):
    return 'id' if table == 'teaching_case' else 'case_id'


def upgrade():
    for table, old, column, new in REPLACED:
        op.drop_index(old, table_name=table)
        op.create_index(new, table, [column, _id(table)], unique=False)
    op.create_index('ix_teaching_case_difficulty_id', 'teaching_case', ['difficulty', 'id'],
                    unique=False)
    op.create_index('ix_teaching_case_source_id', 'teaching_case', ['source', 'id'],
                    unique=False)
    op.create_index('ix_teaching_case_pixel_review_pending', 'teaching_case', ['id'],
                    unique=False, sqlite_where=PENDING_SQLITE, postgresql_where=PENDING)


def downgrade():
    op.drop_index('ix_teaching_case_pixel_review_pending', table_name='teaching_case')
    op.drop_index('ix_teaching_case_source_id', table_name='teaching_case')
    op.drop_index('ix_teaching_case_difficulty_id', table_name='teaching_case')
    for table, old, column, new in reversed(REPLACED):
        op.drop_index(new, table_name=table)
        op.create_index(old, table, [column], unique=False)
