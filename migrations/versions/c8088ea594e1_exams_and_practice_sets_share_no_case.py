"""exams and practice sets share no case; review after closing needs a closing date

Data only: existing rows are brought under the rules the services now enforce.

1. A case that is in an exam, or in the exam bank, leaves every practice set and stays in
   its exams (the exam is what certifies; the practice set only loses a case). A practice
   set left without cases is unpublished, so that nobody starts an empty one.
2. In-progress attempts at those practice sets lose the case from their case order, with
   their not yet scored answer to it (and the reading clock, if it was on that case); an
   attempt left without cases is abandoned. Ended attempts keep their cases, answers and
   scores: they are history. (A trainee whose ended practice attempt showed the key of an
   exam case cannot start that exam: see quizzes/disclosure.py, seen_keys.)
3. A review setting "after the exercise closes" on an exercise without a closing date
   becomes "never": it used to mean "right after the attempt", with a resit still open;
   the trainer meant "not yet", and there is no closing date that would ever come.

Downgrade changes nothing: removed links and settings are not restored.

Revision ID: c8088ea594e1
Revises: fa47f6aeb7eb
Create Date: 2026-12-05 06:40:00.000000

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = 'c8088ea594e1'
down_revision = 'fa47f6aeb7eb'
branch_labels = None
depends_on = None

exercise = sa.table(
    "exercise", sa.column("id", sa.Integer), sa.column("kind", sa.String),
    sa.column("published", sa.Boolean), sa.column("review", sa.JSON),
    sa.column("closes_at", app.db_types.UTCDateTime()))
exercise_case = sa.table(
    "exercise_case", sa.column("exercise_id", sa.Integer), sa.column("case_id", sa.Integer))
teaching_case = sa.table(
    "teaching_case", sa.column("id", sa.Integer), sa.column("exam_bank", sa.Boolean))
attempt = sa.table(
    "attempt", sa.column("id", sa.Integer), sa.column("exercise_id", sa.Integer),
    sa.column("state", sa.String), sa.column("case_order", sa.JSON),
    sa.column("current_case_id", sa.Integer),
    sa.column("current_since", app.db_types.UTCDateTime()),
    sa.column("ended_at", app.db_types.UTCDateTime()))
attempt_answer = sa.table(
    "attempt_answer", sa.column("attempt_id", sa.Integer), sa.column("case_id", sa.Integer))


def _separate_exam_cases(conn: sa.Connection) -> None:
    exam_cases = set(conn.execute(
        sa.select(exercise_case.c.case_id)
        .join(exercise, exercise.c.id == exercise_case.c.exercise_id)
        .where(exercise.c.kind == "exam")).scalars())
    exam_cases |= set(conn.execute(
        sa.select(teaching_case.c.id).where(teaching_case.c.exam_bank.is_(True))).scalars())
    if not exam_cases:
        return
    practice_sets = conn.execute(
        sa.select(exercise.c.id).where(exercise.c.kind == "practice")).scalars().all()
    now = datetime.now(UTC)
    for exercise_id in practice_sets:
        cases = set(conn.execute(sa.select(exercise_case.c.case_id).where(
            exercise_case.c.exercise_id == exercise_id)).scalars())
        leaving = cases & exam_cases
        if not leaving:
            continue
        conn.execute(sa.delete(exercise_case).where(
            exercise_case.c.exercise_id == exercise_id,
            exercise_case.c.case_id.in_(sorted(leaving))))
        if not cases - leaving:
            conn.execute(sa.update(exercise).where(exercise.c.id == exercise_id)
                         .values(published=False))
        in_progress = conn.execute(sa.select(
            attempt.c.id, attempt.c.case_order, attempt.c.current_case_id)
            .where(attempt.c.exercise_id == exercise_id, attempt.c.state == "in_progress")).all()
        for attempt_id, order, current in in_progress:
            removed = [c for c in order or [] if c in leaving]
            if not removed:
                continue
            conn.execute(sa.delete(attempt_answer).where(
                attempt_answer.c.attempt_id == attempt_id,
                attempt_answer.c.case_id.in_(removed)))
            kept = [c for c in order if c not in leaving]
            values: dict = {"case_order": kept}
            if current in leaving:
                values.update(current_case_id=None, current_since=None)
            if not kept:
                values.update(state="abandoned", ended_at=now, current_case_id=None,
                              current_since=None)
            conn.execute(sa.update(attempt).where(attempt.c.id == attempt_id).values(**values))


def _no_closing_without_a_date(conn: sa.Connection) -> None:
    rows = conn.execute(sa.select(exercise.c.id, exercise.c.review)
                        .where(exercise.c.closes_at.is_(None))).all()
    for exercise_id, review in rows:
        if review and "after_close" in review.values():
            fixed = {item: "never" if when == "after_close" else when
                     for item, when in review.items()}
            conn.execute(sa.update(exercise).where(exercise.c.id == exercise_id)
                         .values(review=fixed))


def upgrade():
    conn = op.get_bind()
    _separate_exam_cases(conn)
    _no_closing_without_a_date(conn)


def downgrade():
    pass
