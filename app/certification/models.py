"""Certification programmes, their requirements, and the certificates they issue."""

from __future__ import annotations

from datetime import datetime
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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.db_types import UTCDateTime, utcnow
from app.extensions import db
from app.quizzes.models import Exercise


class Programme(db.Model):
    __tablename__ = "programme"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    eligible_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    validity_days: Mapped[int] = mapped_column(Integer, default=730)
    renewal_window_days: Mapped[int] = mapped_column(Integer, default=90)
    cme_hours: Mapped[float] = mapped_column(default=0.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Real-world QC concordance (app.qc). The target major-discrepancy rate the readers'
    # CUSUM charts and the funnel plot are drawn against (None: app.qc.scope's default).
    qc_target_rate: Mapped[float | None] = mapped_column(Float)
    # The ongoing criterion, all three or none: "major-discrepancy rate <= qc_max_rate over
    # the last qc_last_n QC reads, at least qc_min_reads of them". A reader outside it is
    # flagged to the lead (never revoked automatically).
    qc_max_rate: Mapped[float | None] = mapped_column(Float)
    qc_last_n: Mapped[int | None] = mapped_column(Integer)
    qc_min_reads: Mapped[int | None] = mapped_column(Integer)

    requirements: Mapped[list[Requirement]] = relationship(
        back_populates="programme", cascade="all, delete-orphan", order_by="Requirement.id"
    )


class Requirement(db.Model):
    """``practice``: an attempt submitted; ``exam``: an attempt passed (all its criteria);
    ``renewal``: the recertification exam, passed within the renewal window."""

    __tablename__ = "programme_requirement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programme.id", ondelete="CASCADE"), index=True
    )
    exercise_id: Mapped[int] = mapped_column(ForeignKey("exercise.id"))
    kind: Mapped[str] = mapped_column(String(16))

    programme: Mapped[Programme] = relationship(back_populates="requirements")
    exercise: Mapped[Exercise] = relationship()


class Certificate(db.Model):
    __tablename__ = "certificate"
    __table_args__ = (UniqueConstraint("code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    holder_name: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    cme_hours: Mapped[float] = mapped_column(default=0.0)
    # Which attempts and scores earned it, fixed at issue time.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    exception_reason: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    programme: Mapped[Programme] = relationship()
    user: Mapped[User] = relationship()


class CertificateReminder(db.Model):
    """A reminder e-mail sent (90, 30, 7 days before expiry, or after it): once each."""

    __tablename__ = "certificate_reminder"

    certificate_id: Mapped[int] = mapped_column(
        ForeignKey("certificate.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


REVIEW_STATES = ("open", "revoked", "kept", "withdrawn")


class CertificateReview(db.Model):
    """A certificate whose evidence no longer meets its programme's rule after the attempts
    behind it were re-scored. The certificate stays as it is until a programme lead decides:
    ``revoked`` (the lead confirmed) or ``kept`` (the lead dismissed it), each with a
    reason; ``withdrawn`` when a later re-scoring made the evidence meet the rule again."""

    __tablename__ = "certificate_review"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in REVIEW_STATES) + ")", name="known_state"
        ),
        # One open review per certificate.
        Index(
            "uq_certificate_review_open",
            "certificate_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(
        ForeignKey("certificate.id", ondelete="CASCADE"), index=True
    )
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="open")
    # Why the evidence no longer meets the rule, in words for the lead and the holder.
    reason: Mapped[str] = mapped_column(Text)
    # Per evidence attempt that no longer meets its requirement: the figures at issue and
    # after re-scoring, and the exercise's pass criteria.
    figures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)

    certificate: Mapped[Certificate] = relationship()
    decided_by: Mapped[User | None] = relationship()


class CertificationNotice(db.Model):
    """A message to a trainee about their certification (issued after re-scoring, under
    review, revoked or kept): shown on their "my certification" page, and e-mailed where a
    mail server is configured (``emailed_at`` once the server took it)."""

    __tablename__ = "certification_notice"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    programme_id: Mapped[int | None] = mapped_column(
        ForeignKey("programme.id", ondelete="CASCADE")
    )
    certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificate.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
