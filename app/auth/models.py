"""Accounts and organisation: clinics (panel sites), users, roles, sessions."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.roles import Role
from app.db_types import UTCDateTime, utcnow
from app.extensions import db

_ROLE_VALUES = ", ".join(f"'{r.value}'" for r in Role)


class Clinic(db.Model):
    """A panel site where trainees work."""

    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    city: Mapped[str] = mapped_column(String(120))
    # ISO 3166-1 alpha-2, upper case.
    country_code: Mapped[str] = mapped_column(String(2), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="clinic")

    def __repr__(self) -> str:
        return f"<Clinic {self.id} {self.name}>"


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    # None until the invitee sets a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinic.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A programme lead sees every country, or only those in ``lead_countries``.
    lead_all_countries: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The reader's own choices (app.i18n); None: chosen per request (browser, clinic).
    language: Mapped[str | None] = mapped_column(String(8))
    # An IANA (zoneinfo) name, e.g. "Africa/Nairobi"; None: the clinic's country's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))

    clinic: Mapped[Clinic | None] = relationship(back_populates="users", lazy="joined")
    role_links: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    lead_country_links: Mapped[list[LeadCountry]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(link.role) for link in self.role_links)

    def has_role(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def lead_countries(self) -> list[str]:
        return sorted(link.country_code for link in self.lead_country_links)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"


class UserRole(db.Model):
    __tablename__ = "user_role"
    __table_args__ = (CheckConstraint(f"role IN ({_ROLE_VALUES})", name="known_role"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_links")


class LeadCountry(db.Model):
    """A country in a programme lead's scope."""

    __tablename__ = "lead_country"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)

    user: Mapped[User] = relationship(back_populates="lead_country_links")


class UserSession(db.Model):
    """A server-side login session. The browser's signed cookie carries only a random token
    whose hash is stored here; ending the row ends the session even for a copied cookie."""

    __tablename__ = "user_session"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "Remember this device" was ticked: a persistent cookie, and for trainees no idle end.
    remembered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship()


class AccountLink(db.Model):
    """The newest e-mailed link of one purpose (invitation, password reset) for a user.

    Only a hash of the link's random nonce is kept: a new link overwrites it, which retires
    every older link of that purpose, and using the link stamps ``used_at``.
    """

    __tablename__ = "account_link"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    nonce_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
