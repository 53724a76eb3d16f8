"""Exercises and the trainees' attempts at them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.cases.models import Case
from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class ExerciseKind(StrEnum):
    PRACTICE = "practice"  # immediate feedback, unlimited attempts
    EXAM = "exam"  # timed, attempt limit, cool-down, feedback as review settings allow


class AttemptState(StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    TIMED_OUT = "timed_out"
    ABANDONED = "abandoned"


# An attempt that has ended with scores: submitted, or timed out at its deadline.
ENDED_STATES = (AttemptState.SUBMITTED.value, AttemptState.TIMED_OUT.value)


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Exercise(db.Model):
    __tablename__ = "exercise"
    __table_args__ = (CheckConstraint(f"kind IN ({_values(ExerciseKind)})", name="known_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))
    scheme_key: Mapped[str] = mapped_column(String(64))
    scheme_version: Mapped[int] = mapped_column(Integer)
    time_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    cooldown_hours: Mapped[int] = mapped_column(Integer, default=0)
    opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    shuffle: Mapped[bool] = mapped_column(Boolean, default=True)
    # What a trainee sees, when: {"correctness": "immediate"|"after_submit"|"never", ...}
    review: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Pass criteria, all of which must hold: [{"metric": "sensitivity", "minimum": 0.9}, ...]
    criteria: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Who it is for: {"roles": [...], "clinics": [...], "countries": [...]}; empty = everyone
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    cases: Mapped[list[ExerciseCase]] = relationship(
        back_populates="exercise", cascade="all, delete-orphan", order_by="ExerciseCase.position"
    )


class ExerciseCase(db.Model):
    __tablename__ = "exercise_case"

    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercise.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("teaching_case.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)

    exercise: Mapped[Exercise] = relationship(back_populates="cases")
    case: Mapped[Case] = relationship()


class Attempt(db.Model):
    """One trainee's attempt at an exercise. At most one is in progress per trainee and
    exercise (a partial unique index), so two tabs starting at once share it."""

    __tablename__ = "attempt"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(AttemptState)})", name="known_state"),
        Index(
            "uq_attempt_open",
            "exercise_id",
            "user_id",
            unique=True,
            sqlite_where=text("state = 'in_progress'"),
            postgresql_where=text("state = 'in_progress'"),
        ),
        # The programme dashboards' lookups: exam attempts per clinic, and each reader's
        # latest ended exam, answered from the index alone.
        Index("ix_attempt_exercise_state_user", "exercise_id", "state", "user_id", "ended_at",
              "passed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercise.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=AttemptState.IN_PROGRESS.value)
    number: Mapped[int] = mapped_column(Integer, default=1)
    case_order: Mapped[list[int]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Scores fixed when the attempt ends (re-computed by `quizzes rescore` when a reference
    # read changes): the metrics of scoring.score_attempt and the pass/fail verdict.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    # Copies of the two headline metrics as columns, so that programme dashboards can
    # aggregate them over many thousands of attempts without reading the JSON.
    sensitivity: Mapped[float | None] = mapped_column(Float)
    specificity: Mapped[float | None] = mapped_column(Float)
    # The metric of the anonymous peer comparison, as a column for the same reason
    # (standings.py keeps each trainee's latest one counted per exercise).
    accuracy: Mapped[float | None] = mapped_column(Float)
    # The per-case scores again, compactly (scoring.items.compact_scores: "1"/"0" per case
    # in ascending case id, and a key naming that set of cases), so that the trainers' case
    # statistics read an exercise's attempts as one string instead of parsing the JSON.
    case_set: Mapped[str | None] = mapped_column(String(16))
    case_scores: Mapped[str | None] = mapped_column(Text)
    # The case the trainee has open and since when: reading time is measured on the server.
    current_case_id: Mapped[int | None] = mapped_column(Integer)
    current_since: Mapped[datetime | None] = mapped_column(UTCDateTime())

    exercise: Mapped[Exercise] = relationship()
    user: Mapped[User] = relationship()
    answers: Mapped[list[AttemptAnswer]] = relationship(
        back_populates="attempt", cascade="all, delete-orphan"
    )


class AttemptAnswer(db.Model):
    __tablename__ = "attempt_answer"

    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempt.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("teaching_case.id"), primary_key=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    marks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Incremented by every acknowledged save; the page shows it as "saved".
    revision: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(default=0.0)
    saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Practice sets: the trainee asked for this case's feedback; the answer is final.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The trainee flagged the case to come back to it before submitting (the navigator and
    # the submission summary list it). Scoring ignores it.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    attempt: Mapped[Attempt] = relationship(back_populates="answers")


class PeerStanding(db.Model):  # type: ignore[name-defined]
    """Each trainee's latest ended attempt at an exercise (by attempt number) and its
    accuracy: what the anonymous peer comparison counts for them (standings.py)."""

    __tablename__ = "peer_standing"

    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercise.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    # None: the row was just created and counts nothing yet (standings.refresh_standing).
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempt.id"))
    accuracy: Mapped[float | None] = mapped_column(Float)


class PeerAccuracy(db.Model):  # type: ignore[name-defined]
    """How many trainees' standings (PeerStanding) hold each accuracy at an exercise: the
    running histogram a result page reads its percentile from, a few rows per exercise
    (one per distinct accuracy) however many attempts ended."""

    __tablename__ = "peer_accuracy"

    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercise.id", ondelete="CASCADE"), primary_key=True)
    accuracy: Mapped[float] = mapped_column(Float, primary_key=True)
    readers: Mapped[int] = mapped_column(Integer)


class PeerCaseCalls(db.Model):  # type: ignore[name-defined]
    """One trainee's sputum decisions on one case over their ended attempts (every
    exercise holding it): how many called it TB-suggestive, of how many answered
    (peers.py keeps it up to date as attempts end and are re-scored)."""

    __tablename__ = "peer_case_calls"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    called: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)


class PeerCaseShare(db.Model):  # type: ignore[name-defined]
    """Per case, over the trainees with an answered call (PeerCaseCalls.answered > 0): how
    many they are and the sum of their shares of TB-suggestive calls, so that a result page
    reads one row per case instead of every ended attempt."""

    __tablename__ = "peer_case_share"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), primary_key=True)
    readers: Mapped[int] = mapped_column(Integer)
    share_sum: Mapped[float] = mapped_column(Float)
