"""peer standings: each trainee's latest ended attempt per exercise and a histogram of
their accuracies, and per case each reader's calls and the readers' summed shares, so that
a result page's peer figures read a few rows

Revision ID: 5c1e8a2f7d90
Revises: b3d7e1f9a2c4
Create Date: 2026-12-05 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c1e8a2f7d90'
down_revision = 'b3d7e1f9a2c4'
branch_labels = None
depends_on = None

ENDED_STATES = ('submitted', 'timed_out')


def upgrade():
    # Plain ALTER TABLE (SQLite >= 3.35 has ADD/DROP COLUMN): a batch copy of the attempt
    # table would drop the old one, and with foreign keys on that deletes every answer.
    op.add_column('attempt', sa.Column('accuracy', sa.Float(), nullable=True))
    op.create_table(
        'peer_standing',
        sa.Column('exercise_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=True),
        sa.Column('accuracy', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempt.id'],
                                name=op.f('fk_peer_standing_attempt_id_attempt')),
        sa.ForeignKeyConstraint(['exercise_id'], ['exercise.id'],
                                name=op.f('fk_peer_standing_exercise_id_exercise'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_peer_standing_user_id_user_account')),
        sa.PrimaryKeyConstraint('exercise_id', 'user_id', name=op.f('pk_peer_standing')),
    )
    op.create_table(
        'peer_accuracy',
        sa.Column('exercise_id', sa.Integer(), nullable=False),
        sa.Column('accuracy', sa.Float(), nullable=False),
        sa.Column('readers', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['exercise_id'], ['exercise.id'],
                                name=op.f('fk_peer_accuracy_exercise_id_exercise'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('exercise_id', 'accuracy', name=op.f('pk_peer_accuracy')),
    )
    # Fill them for the attempts that already ended: the accuracy out of the stored scores,
    # then each trainee's latest ended attempt per exercise, then the histogram.
    attempt = sa.table(
        'attempt',
        sa.column('id', sa.Integer), sa.column('exercise_id', sa.Integer),
        sa.column('user_id', sa.Integer), sa.column('number', sa.Integer),
        sa.column('state', sa.String), sa.column('metrics', sa.JSON),
        sa.column('accuracy', sa.Float),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(attempt.c.id, attempt.c.metrics).where(
        attempt.c.metrics.is_not(None))).all()
    values = [{'key': attempt_id, 'value': ((stored or {}).get('metrics') or {}).get('accuracy')}
              for attempt_id, stored in rows]
    values = [v for v in values if v['value'] is not None]
    if values:
        bind.execute(attempt.update().where(attempt.c.id == sa.bindparam('key'))
                     .values(accuracy=sa.bindparam('value')), values)
    rank = sa.func.row_number().over(
        partition_by=(attempt.c.exercise_id, attempt.c.user_id),
        order_by=(attempt.c.number.desc(), attempt.c.id.desc())).label('rank')
    ranked = sa.select(attempt.c.exercise_id, attempt.c.user_id, attempt.c.id,
                       attempt.c.accuracy, rank).where(
        attempt.c.state.in_(ENDED_STATES)).subquery()
    standing = sa.table('peer_standing', sa.column('exercise_id'), sa.column('user_id'),
                        sa.column('attempt_id'), sa.column('accuracy'))
    bind.execute(standing.insert().from_select(
        ['exercise_id', 'user_id', 'attempt_id', 'accuracy'],
        sa.select(ranked.c.exercise_id, ranked.c.user_id, ranked.c.id, ranked.c.accuracy)
        .where(ranked.c.rank == 1)))
    histogram = sa.table('peer_accuracy', sa.column('exercise_id'), sa.column('accuracy'),
                         sa.column('readers'))
    bind.execute(histogram.insert().from_select(
        ['exercise_id', 'accuracy', 'readers'],
        sa.select(standing.c.exercise_id, standing.c.accuracy, sa.func.count())
        .where(standing.c.accuracy.is_not(None))
        .group_by(standing.c.exercise_id, standing.c.accuracy)))


    _peer_calls(bind, attempt)


def _peer_calls(bind, attempt):
    """Per case and reader, the calls of their ended attempts; attempts scored before calls
    were kept get them from whether the decision was right and the case's reference (on a
    TB-suggestive case a right decision is a TB-suggestive call, on any other a wrong one)."""
    case_calls = op.create_table(
        'peer_case_calls',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('called', sa.Integer(), nullable=False),
        sa.Column('answered', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['teaching_case.id'],
                                name=op.f('fk_peer_case_calls_case_id_teaching_case'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_peer_case_calls_user_id_user_account')),
        sa.PrimaryKeyConstraint('case_id', 'user_id', name=op.f('pk_peer_case_calls')),
    )
    case_share = op.create_table(
        'peer_case_share',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('readers', sa.Integer(), nullable=False),
        sa.Column('share_sum', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['teaching_case.id'],
                                name=op.f('fk_peer_case_share_case_id_teaching_case'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('case_id', name=op.f('pk_peer_case_share')),
    )
    case = sa.table('teaching_case', sa.column('id', sa.Integer),
                    sa.column('reference_tb_positive', sa.Boolean))
    reference = dict(bind.execute(sa.select(case.c.id, case.c.reference_tb_positive)).all())
    counts = {}
    kept = []
    for attempt_id, user_id, stored in bind.execute(
            sa.select(attempt.c.id, attempt.c.user_id, attempt.c.metrics).where(
                attempt.c.state.in_(ENDED_STATES), attempt.c.metrics.is_not(None))).all():
        calls = stored.get('calls')
        if calls is None:
            calls = {}
            for key, correct in (stored.get('cases') or {}).items():
                tb = reference.get(int(key))
                calls[key] = (None if correct is None or tb is None
                              else int(correct) if tb else 1 - int(correct))
            kept.append({'key': attempt_id, 'value': {**stored, 'calls': calls}})
        for key, call in calls.items():
            entry = counts.setdefault((int(key), user_id), [0, 0])
            if call is not None:
                entry[0] += call
                entry[1] += 1
    if kept:
        bind.execute(attempt.update().where(attempt.c.id == sa.bindparam('key'))
                     .values(metrics=sa.bindparam('value')), kept)
    rows = [{'case_id': case_id, 'user_id': user_id, 'called': c, 'answered': a}
            for (case_id, user_id), (c, a) in sorted(counts.items())]
    if rows:
        bind.execute(case_calls.insert(), rows)
    shares = {}
    for row in rows:
        if row['answered']:
            entry = shares.setdefault(row['case_id'], [0, 0.0])
            entry[0] += 1
            entry[1] += row['called'] / row['answered']
    if shares:
        bind.execute(case_share.insert(), [
            {'case_id': case_id, 'readers': n, 'share_sum': total}
            for case_id, (n, total) in sorted(shares.items())])


def downgrade():
    op.drop_table('peer_case_share')
    op.drop_table('peer_case_calls')
    op.drop_table('peer_accuracy')
    op.drop_table('peer_standing')
    op.drop_column('attempt', 'accuracy')  # not a batch copy: see upgrade
