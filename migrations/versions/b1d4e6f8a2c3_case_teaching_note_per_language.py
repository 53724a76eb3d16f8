"""teaching notes per language: case_teaching_note (case, language, text) replaces
teaching_case.teaching_notes; existing notes become English ones

Revision ID: b1d4e6f8a2c3
Revises: f3a9c1e7b5d2
Create Date: 2026-12-06 04:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b1d4e6f8a2c3'
down_revision = 'f3a9c1e7b5d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'case_teaching_note',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.CheckConstraint("language IN ('en', 'fr', 'es')",
                           name=op.f('ck_case_teaching_note_known_language')),
        sa.ForeignKeyConstraint(['case_id'], ['teaching_case.id'],
                                name=op.f('fk_case_teaching_note_case_id_teaching_case'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('case_id', 'language', name=op.f('pk_case_teaching_note')),
    )
    # Notes written before they carried a language were written in English.
    op.execute("INSERT INTO case_teaching_note (case_id, language, text) "
               "SELECT id, 'en', teaching_notes FROM teaching_case "
               "WHERE teaching_notes IS NOT NULL AND teaching_notes <> ''")
    # A plain DROP COLUMN (SQLite 3.35+): batch mode would copy the table, which SQLite's
    # foreign keys from the reads, images and exercise items refuse while cases exist.
    op.drop_column('teaching_case', 'teaching_notes')


def downgrade():
    op.add_column('teaching_case', sa.Column('teaching_notes', sa.Text(), nullable=False,
                                             server_default=''))
    # One note per case comes back: the English one, else the first in language order.
    op.execute("UPDATE teaching_case SET teaching_notes = COALESCE(("
               "SELECT n.text FROM case_teaching_note n WHERE n.case_id = teaching_case.id "
               "ORDER BY CASE WHEN n.language = 'en' THEN 0 ELSE 1 END, n.language LIMIT 1"
               "), '')")
    op.drop_table('case_teaching_note')
