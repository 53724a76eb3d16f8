"""A reader's history for the programme lead: certificates, progress per programme and their
attempts with scores, a page at a time. A fixed number of queries, however long the history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import joinedload, selectinload

from app.auth.models import User
from app.auth.roles import Role
from app.certification.models import Certificate, Programme, Requirement
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt, AttemptState


@dataclass(frozen=True)
class Step:
    requirement: Requirement
    # When the latest attempt that meets it ended; for a renewal step, only a pass inside
    # the current certificate's renewal window counts (services.issue_if_met).
    met_at: datetime | None
    # Renewal steps: the window of the certificate held now (None: no valid certificate,
    # so nothing to renew yet).
    window_from: datetime | None = None
    due_at: datetime | None = None

    @property
    def met(self) -> bool:
        return self.met_at is not None


@dataclass(frozen=True)
class ReaderHistory:
    certificates: list[Certificate]
    programmes: list[tuple[Programme, list[Step]]]
    attempts: list[Attempt]  # this page, newest first
    total_attempts: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total_attempts // self.per_page))


def reader_history(user: User, page: int = 1, per_page: int = 50) -> ReaderHistory:
    certificates = list(
        db.session.scalars(
            select(Certificate)
            .where(Certificate.user_id == user.id)
            .options(joinedload(Certificate.programme))
            .order_by(Certificate.issued_at.desc())
        )
    )
    mine = Attempt.user_id == user.id
    total = db.session.scalar(select(func.count(Attempt.id)).where(mine)) or 0
    attempts = list(
        db.session.scalars(
            select(Attempt)
            .where(mine)
            .options(joinedload(Attempt.exercise))
            .order_by(Attempt.started_at.desc(), Attempt.id.desc())
            .limit(per_page)
            .offset((max(page, 1) - 1) * per_page)
        )
    )
    progress = programme_steps(user)
    return ReaderHistory(certificates, progress, attempts, total, max(page, 1), per_page)


def programme_steps(user: User) -> list[tuple[Programme, list[Step]]]:
    """Each active programme open to the user's roles, and each requirement with when it was
    last met: a practice set submitted, an exam passed. Three queries, however many
    attempts (the rule of services.progress, aggregated by the database)."""
    ended = Attempt.state.in_(ENDED_STATES)
    last = {
        exercise_id: (submitted, passed)
        for exercise_id, submitted, passed in db.session.execute(
            select(
                Attempt.exercise_id,
                func.max(case((Attempt.state == AttemptState.SUBMITTED.value, Attempt.ended_at))),
                func.max(case((Attempt.passed.is_(True), Attempt.ended_at))),
            )
            .where(Attempt.user_id == user.id, ended)
            .group_by(Attempt.exercise_id)
        )
    }
    now = utcnow()
    held: dict[int, datetime] = {
        programme_id: expires
        for programme_id, expires in db.session.execute(
            select(Certificate.programme_id, func.max(Certificate.expires_at))
            .where(Certificate.user_id == user.id, Certificate.revoked_at.is_(None))
            .group_by(Certificate.programme_id)
        )
        if expires is not None and expires > now
    }
    programmes = db.session.scalars(
        select(Programme)
        .where(Programme.active)
        .options(selectinload(Programme.requirements).joinedload(Requirement.exercise))
        .order_by(Programme.id)
    ).all()
    def step(p: Programme, r: Requirement) -> Step:
        met_at = last.get(r.exercise_id, (None, None))[0 if r.kind == "practice" else 1]
        if r.kind != "renewal":
            return Step(r, met_at)
        expires = held.get(p.id)
        if expires is None:
            return Step(r, None)
        window_from = expires - timedelta(days=p.renewal_window_days)
        in_window = met_at if met_at is not None and met_at >= window_from else None
        return Step(r, in_window, window_from, expires)

    return [
        (p, [step(p, r) for r in p.requirements])
        for p in programmes
        if not p.eligible_roles or user.has_role(*(Role(r) for r in p.eligible_roles))
    ]
