"""attempt compact case scores for the item analysis

Revision ID: 6ab502a69065
Revises: e41a7c2d9f10
Create Date: 2026-12-01 06:40:00.000000

"""
import hashlib

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6ab502a69065'
down_revision = 'e41a7c2d9f10'
branch_labels = None
depends_on = None


def _compact(cases):
    """(case set key, scores) of stored per-case scores: the rule of
    app/quizzes/item_analysis.compact_scores, restated so that this migration never
    changes."""
    ids = sorted(int(case_id) for case_id in cases)
    key = hashlib.blake2s(",".join(str(c) for c in ids).encode("ascii"),
                          digest_size=8).hexdigest()
    if any(cases[str(c)] not in (0, 1, None) for c in ids):
        return key, None
    return key, "".join("1" if cases[str(c)] == 1 else "0" for c in ids)


def upgrade():
    # Plain ALTER TABLE (SQLite >= 3.35 too): no table copy that could lose the partial
    # unique index on open attempts.
    op.add_column('attempt', sa.Column('case_set', sa.String(length=16), nullable=True))
    op.add_column('attempt', sa.Column('case_scores', sa.Text(), nullable=True))

    # The attempts that already ended, from their stored per-case scores.
    attempt = sa.table('attempt', sa.column('id', sa.Integer), sa.column('state', sa.String),
                       sa.column('metrics', sa.JSON), sa.column('case_set', sa.String),
                       sa.column('case_scores', sa.Text))
    bind = op.get_bind()
    rows = []
    for attempt_id, stored in bind.execute(
            sa.select(attempt.c.id, attempt.c.metrics)
            .where(attempt.c.state.in_(('submitted', 'timed_out')),
                   attempt.c.metrics.is_not(None))):
        cases = (stored or {}).get('cases')
        if cases:
            key, scores = _compact(cases)
            rows.append({'attempt_id': attempt_id, 'set_key': key, 'scores': scores})
    if rows:
        bind.execute(attempt.update().where(attempt.c.id == sa.bindparam('attempt_id'))
                     .values(case_set=sa.bindparam('set_key'),
                             case_scores=sa.bindparam('scores')), rows)


def downgrade():
    op.drop_column('attempt', 'case_scores')
    op.drop_column('attempt', 'case_set')
