"""Moving through an attempt: its cases by their place in it (1..N), the navigator's tiles
(answered, flagged for review, the current case), the flag itself and the summary shown
before submitting.

A trainee's pages and their JSON name a case only by its position in the attempt; the
library's case id stays on the server (case_id_at maps one to the other)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext

from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.quizzes.models import Attempt, AttemptAnswer
from app.quizzes.results import answered_case_ids
from app.quizzes.services import AttemptError, _answer, _check_active, _lock


@dataclass(frozen=True, slots=True)
class Tile:
    """One case of the attempt as the navigator shows it."""

    position: int
    answered: bool
    flagged: bool
    current: bool

    @property
    def status(self) -> str:
        """The tile's state in words (screen readers, and the tile's tooltip)."""
        words = [gettext("answered") if self.answered else gettext("not answered")]
        if self.flagged:
            words.append(gettext("flagged for review"))
        if self.current:
            words.append(gettext("current case"))
        return ", ".join(words)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the trainee is shown before submitting: how many cases are answered, and which
    are not answered or flagged for review (by position)."""

    total: int
    answered: int
    unanswered: list[int]
    flagged: list[int]


def case_id_at(attempt: Attempt, position: int) -> int:
    """The library case at 1-based ``position`` of the attempt."""
    if not 1 <= position <= len(attempt.case_order):
        raise AttemptError(N_("there is no such case in this attempt"), 404)
    return attempt.case_order[position - 1]


def _flagged_ids(attempt: Attempt) -> set[int]:
    return {answer.case_id for answer in attempt.answers if answer.flagged}


def tiles(attempt: Attempt, current: int | None = None) -> list[Tile]:
    """Every case of the attempt in its order, ``current`` (a position) marked."""
    answered = answered_case_ids(attempt)
    flagged = _flagged_ids(attempt)
    return [Tile(position, case_id in answered, case_id in flagged, position == current)
            for position, case_id in enumerate(attempt.case_order, 1)]


def is_answered(attempt: Attempt, position: int) -> bool:
    """Is the case at ``position`` answered, as the scoring counts it?"""
    case_id = case_id_at(attempt, position)
    return case_id in answered_case_ids(attempt, [case_id])


def summary(attempt: Attempt) -> Summary:
    shown = tiles(attempt)
    return Summary(
        total=len(shown),
        answered=sum(tile.answered for tile in shown),
        unanswered=[tile.position for tile in shown if not tile.answered],
        flagged=[tile.position for tile in shown if tile.flagged],
    )


def set_flag(attempt: Attempt, user: User, position: int, flagged: bool,
             now: datetime | None = None) -> AttemptAnswer:
    """Flag the case at ``position`` for review (or clear the flag) in an attempt in
    progress. Scores ignore flags; an answer made final by its feedback can still be
    flagged."""
    now = now or utcnow()
    if attempt.user_id == user.id:
        _lock(attempt)  # a save of the same case at the same moment creates its row once
    _check_active(attempt, user, now)
    answer = _answer(attempt, case_id_at(attempt, position))
    answer.flagged = flagged
    db.session.commit()
    return answer
