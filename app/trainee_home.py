"""A trainee's home page (on the home blueprint, where app/home.py sends trainees): where
they stand in each certification programme, the certificates they hold, the attempts they
can resume and their latest results. A fixed number of queries, however long the trainee's
history. Kept apart from app/home.py, which the sign-in imports: the case library reaches
sign-in, and must not reach attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import render_template
from flask_login import current_user  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from app.auth.decorators import roles_required
from app.auth.models import User
from app.auth.roles import Role
from app.certification.history import Step, programme_steps
from app.certification.models import Certificate, Programme
from app.certification.services import REVOKED, status
from app.db_types import utcnow
from app.extensions import db
from app.home import bp
from app.quizzes import review_rules
from app.quizzes.models import ENDED_STATES, Attempt, AttemptState
from app.quizzes.services import expire_overdue_attempts

RECENT_RESULTS = 5


@dataclass(frozen=True)
class ProgrammeProgress:
    programme: Programme
    steps: list[Step]
    certificate: Certificate | None  # the one held now (not revoked), newest expiry first

    @property
    def done(self) -> int:
        return sum(1 for step in self.steps if step.met and step.requirement.kind != "renewal")

    @property
    def needed(self) -> int:
        return sum(1 for step in self.steps if step.requirement.kind != "renewal")


@dataclass(frozen=True)
class HeldCertificate:
    certificate: Certificate
    status: str  # valid, expired or revoked (certification.services.status)
    days_left: int | None  # until expiry, for a valid certificate


@dataclass(frozen=True)
class OpenAttempt:
    attempt: Attempt
    resume_position: int  # the first case without a saved read (1 when all have one)
    answered: int


@dataclass(frozen=True)
class RecentResult:
    attempt: Attempt
    score_shown: bool  # the exercise's review rules show the score now
    accuracy: float | None
    passed: bool | None


@dataclass(frozen=True)
class TraineeHome:
    programmes: list[ProgrammeProgress]
    certificates: list[HeldCertificate]
    open_attempts: list[OpenAttempt]
    recent: list[RecentResult]


def trainee_home(user: User, now: datetime | None = None) -> TraineeHome:
    now = now or utcnow()
    expire_overdue_attempts(now, user=user)  # an exam past its time shows as a result
    certificates = list(db.session.scalars(
        select(Certificate).where(Certificate.user_id == user.id)
        .options(joinedload(Certificate.programme))
        .order_by(Certificate.expires_at.desc())))
    current: dict[int, Certificate] = {}
    for certificate in certificates:
        if certificate.revoked_at is None and certificate.programme_id not in current:
            current[certificate.programme_id] = certificate
    programmes = [ProgrammeProgress(p, steps, current.get(p.id))
                  for p, steps in programme_steps(user)]
    held = []
    for certificate in certificates:
        state = status(certificate, now)
        days = (certificate.expires_at - now).days if state not in (REVOKED, "expired") else None
        held.append(HeldCertificate(certificate, state, days))

    open_attempts = []
    for attempt in db.session.scalars(
            select(Attempt).where(Attempt.user_id == user.id,
                                  Attempt.state == AttemptState.IN_PROGRESS.value)
            .options(joinedload(Attempt.exercise), selectinload(Attempt.answers))
            .order_by(Attempt.started_at.desc(), Attempt.id.desc())):
        saved = {a.case_id for a in attempt.answers if a.answers or a.marks}
        first_open = next((n for n, case_id in enumerate(attempt.case_order, 1)
                           if case_id not in saved), 1)
        open_attempts.append(OpenAttempt(attempt, first_open, len(saved)))
    recent = []
    for attempt in db.session.scalars(
            select(Attempt).where(Attempt.user_id == user.id, Attempt.state.in_(ENDED_STATES))
            .options(joinedload(Attempt.exercise))
            .order_by(Attempt.ended_at.desc(), Attempt.id.desc()).limit(RECENT_RESULTS)):
        shown = review_rules.visible(attempt, "score", now=now)
        metrics = ((attempt.metrics or {}).get("metrics") or {}) if shown else {}
        recent.append(RecentResult(attempt, shown, metrics.get("accuracy"),
                                   attempt.passed if shown else None))
    return TraineeHome(programmes, held, open_attempts, recent)


@bp.route("/home")
@roles_required(Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER)
def trainee() -> str:
    return render_template("trainee_home.html", home=trainee_home(current_user))
