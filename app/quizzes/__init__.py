"""Reading exercises and exams, scored against reference reads."""

from flask import Blueprint

bp = Blueprint("quizzes", __name__, url_prefix="/training")


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
