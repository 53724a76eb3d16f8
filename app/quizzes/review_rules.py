"""What a trainee may see of the answer key, and when (an exercise's review settings).

Each of score, correctness, reference read and teaching notes is shown: immediately (per
case, in practice sets, once the trainee asks for a case's feedback), after the attempt is
submitted or timed out, after the exercise closes (which needs a closing date), or never.
These are the exercise's own rules; disclosure.py adds what the trainee's other attempts
withhold.
"""

from __future__ import annotations

from datetime import datetime

from app.db_types import utcnow
from app.i18n import N_
from app.quizzes.models import ENDED_STATES, Attempt, Exercise, ExerciseKind

ITEMS = ("score", "correctness", "reference", "teaching_notes")
WHEN = ("immediate", "after_submit", "after_close", "never")
LABELS = {
    "immediate": N_("immediately, case by case (practice sets)"),
    "after_submit": N_("after the attempt"),
    "after_close": N_("after the exercise closes"),
    "never": N_("never"),
}
DEFAULTS = {
    ExerciseKind.PRACTICE.value: {"score": "after_submit", "correctness": "immediate",
                                  "reference": "immediate", "teaching_notes": "immediate"},
    ExerciseKind.EXAM.value: {"score": "after_submit", "correctness": "never",
                              "reference": "never", "teaching_notes": "never"},
}


def setting(exercise: Exercise, item: str) -> str:
    value = (exercise.review or {}).get(item)
    return value if value in WHEN else DEFAULTS[exercise.kind][item]


def clean(kind: str, review: dict[str, str] | None) -> dict[str, str]:
    """Validated settings; "immediate" only exists for practice sets."""
    out = {}
    for item in ITEMS:
        value = (review or {}).get(item) or DEFAULTS[kind][item]
        if value not in WHEN:
            raise ValueError(f"unknown review setting {value!r} for {item}")
        if value == "immediate" and kind != ExerciseKind.PRACTICE.value:
            raise ValueError("only practice sets can show feedback immediately")
        out[item] = value
    return out


def _ended(attempt: Attempt) -> bool:
    return attempt.state in ENDED_STATES


def visible(attempt: Attempt, item: str, *, case_checked: bool = False,
            now: datetime | None = None) -> bool:
    when = setting(attempt.exercise, item)
    if when == "never":
        return False
    if when == "immediate":
        return _ended(attempt) or case_checked
    if when == "after_submit":
        return _ended(attempt)
    closes = attempt.exercise.closes_at
    # No closing date (rows from before it was required): the exercise never closes, so
    # what waits for it is never shown, rather than shown at once.
    return _ended(attempt) and closes is not None and (now or utcnow()) >= closes


def immediate_feedback(exercise: Exercise) -> bool:
    return any(setting(exercise, item) == "immediate" for item in ITEMS)
