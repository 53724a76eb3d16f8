"""Certification programmes, their requirements, and the certificates they issue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
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
