"""Reading exercises and exams, scored against reference reads."""

from datetime import datetime

from flask import Blueprint

from app.auth.sessions import keep_signed_in_while

bp = Blueprint("quizzes", __name__, url_prefix="/training")


def has_open_timed_exam(user_id: int, now: datetime) -> bool:
    """A timed attempt in progress before its deadline: its trainee must not be signed out
    mid-exam by the idle or 12-hour rule (the deadline ends the exam instead)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.quizzes.models import Attempt, AttemptState

    found = db.session.scalar(
        select(Attempt.id)
        .where(
            Attempt.user_id == user_id,
            Attempt.state == AttemptState.IN_PROGRESS.value,
            Attempt.deadline_at > now,
        )
        .limit(1)
    )
    return found is not None


keep_signed_in_while(has_open_timed_exam)


@bp.app_template_global()
def same_answer(mine: object, reference: object) -> bool:
    from app.quizzes.wording import same_answer as same

    return same(mine, reference)


@bp.app_template_global()
def grade_meaning(grade: str) -> str:
    from app.quizzes.wording import grade_meaning as meaning

    return meaning(grade)


@bp.app_template_filter("reader_words")
def reader_words(text: str, labels: dict[str, str] | None = None) -> str:
    """A scoring phrase with the scheme's labels instead of option keys."""
    from app.quizzes.wording import plain

    return plain(text, labels)


@bp.app_template_filter("grade_reason")
def grade_reason(text: str, labels: dict[str, str] | None = None) -> str:
    """A discrepancy grade's reason in the reader's language, with the scheme's labels."""
    from app.quizzes.wording import grade_reason as in_words

    return in_words(text, labels)


@bp.app_template_filter("statistics_note")
def statistics_note(note: str | None) -> str:
    """An item-analysis note (why a figure is missing) in the reader's language."""
    from app.quizzes.wording import statistics_note as note_words

    return note_words(note)


@bp.app_template_filter("local_number")
def local_number(text: str) -> str:
    """A number the template wrote ('%.2f'|format) with the reader's decimal sign."""
    from app.quizzes.wording import local_number as in_language

    return in_language(text)
