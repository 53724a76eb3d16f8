"""The programme lead's view per clinic: how many trainees are certified, expiring, expired,
in progress or not started, and how they do in the programme's exams. A fixed number of
aggregate queries, however many users, attempts and certificates there are."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.auth.models import Clinic, User, UserRole
from app.certification.models import Certificate, Programme
from app.certification.services import EXPIRED, VALID, status
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.models import Attempt, AttemptState

EXPIRING_DAYS = 90
COLUMNS = (
    "country",
    "clinic",
    "enrolled",
    "certified",
    "expiring_90_days",
    "expired",
    "in_progress",
    "not_started",
    "exam_attempts",
    "exam_pass_rate",
)


@dataclass
class ClinicRow:
    clinic: Clinic
    enrolled: int = 0
    certified: int = 0
    expiring: int = 0
    expired: int = 0
    in_progress: int = 0
    not_started: int = 0
    exam_attempts: int = 0
    exam_passed: int = 0

    @property
    def exam_pass_rate(self) -> float | None:
        return self.exam_passed / self.exam_attempts if self.exam_attempts else None


def clinic_rows(
    programme: Programme, countries: list[str] | None, now: datetime | None = None
) -> list[ClinicRow]:
    """``countries``: the lead's scope (None = all)."""
    now = now or utcnow()
    clinics_query = select(Clinic).order_by(Clinic.country_code, Clinic.name)
    if countries is not None:
        clinics_query = clinics_query.where(Clinic.country_code.in_(countries))
    rows = {c.id: ClinicRow(c) for c in db.session.scalars(clinics_query)}
    if not rows:
        return []
    users_query = select(User.id, User.clinic_id).where(User.active, User.clinic_id.in_(rows))
    if programme.eligible_roles:
        users_query = users_query.where(
            User.id.in_(select(UserRole.user_id).where(UserRole.role.in_(programme.eligible_roles)))
        )
    clinic_of = dict(db.session.execute(users_query).all())
    certificates: dict[int, Certificate] = {}
    for cert in db.session.scalars(
        select(Certificate).where(
            Certificate.programme_id == programme.id,
            Certificate.revoked_at.is_(None),
            Certificate.user_id.in_(clinic_of),
        )
    ):
        if (
            cert.user_id not in certificates
            or cert.expires_at > certificates[cert.user_id].expires_at
        ):
            certificates[cert.user_id] = cert
    exercise_ids = [r.exercise_id for r in programme.requirements]
    started = set(
        db.session.scalars(
            select(Attempt.user_id)
            .where(Attempt.exercise_id.in_(exercise_ids), Attempt.user_id.in_(clinic_of))
            .distinct()
        )
    )
    exam_ids = [r.exercise_id for r in programme.requirements if r.kind != "practice"]
    exams = db.session.execute(
        select(
            User.clinic_id,
            func.count(Attempt.id),
            func.sum(func.coalesce(Attempt.passed.cast(db.Integer), 0)),
        )
        .join(User, User.id == Attempt.user_id)
        .where(
            Attempt.exercise_id.in_(exam_ids),
            User.clinic_id.in_(rows),
            Attempt.state.in_((AttemptState.SUBMITTED.value, AttemptState.TIMED_OUT.value)),
        )
        .group_by(User.clinic_id)
    ).all()
    soon = now + timedelta(days=EXPIRING_DAYS)
    for user_id, clinic_id in clinic_of.items():
        row = rows[clinic_id]
        row.enrolled += 1
        cert = certificates.get(user_id)
        state = status(cert, now) if cert else None
        if state == VALID:
            row.certified += 1
            if cert.expires_at <= soon:
                row.expiring += 1
        elif state == EXPIRED:
            row.expired += 1
        elif user_id in started:
            row.in_progress += 1
        else:
            row.not_started += 1
    for clinic_id, attempts, passed in exams:
        rows[clinic_id].exam_attempts = int(attempts)
        rows[clinic_id].exam_passed = int(passed or 0)
    return list(rows.values())


def _values(r: ClinicRow) -> list[object]:
    return [r.clinic.country_code, r.clinic.name, r.enrolled, r.certified, r.expiring,
            r.expired, r.in_progress, r.not_started, r.exam_attempts, r.exam_pass_rate]


def rows_csv(rows: list[ClinicRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        values = _values(r)
        values[-1] = "" if r.exam_pass_rate is None else f"{r.exam_pass_rate:.3f}"
        writer.writerow(values)
    return out.getvalue()


def rows_xlsx(rows: list[ClinicRow], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Clinics"
    sheet.append([title])
    sheet.append(list(COLUMNS))
    for r in rows:
        sheet.append(_values(r))
    for cell in sheet["J"][2:]:
        cell.number_format = "0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def programmes() -> list[Programme]:
    return list(
        db.session.scalars(select(Programme).where(Programme.active).order_by(Programme.id))
    )
