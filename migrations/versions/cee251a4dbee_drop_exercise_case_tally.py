"""drop exercise case tallies: nothing reads them since the item analysis

Revision ID: cee251a4dbee
Revises: 6ab502a69065
Create Date: 2026-12-05 07:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'cee251a4dbee'
down_revision = '6ab502a69065'
branch_labels = None
depends_on = None


def upgrade():
    # The trainers' case statistics come from the attempts' compact case scores
    # (attempt.case_set, attempt.case_scores); the running sums were written on every
    # attempt end and read by nothing.
    op.drop_table('exercise_case_tally')


def downgrade():
    # The table comes back empty: nothing reads it at any revision from 6ab502a69065 on
    # (the statistics read the compact scores), so no `rescore` is needed to refill it.
    op.create_table('exercise_case_tally',
    sa.Column('exercise_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('sum_x', sa.Float(), nullable=False),
    sa.Column('sum_y', sa.Float(), nullable=False),
    sa.Column('sum_xy', sa.Float(), nullable=False),
    sa.Column('sum_yy', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['teaching_case.id'], name=op.f('fk_exercise_case_tally_case_id_teaching_case')),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercise.id'], name=op.f('fk_exercise_case_tally_exercise_id_exercise'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('exercise_id', 'case_id', name=op.f('pk_exercise_case_tally'))
    )
