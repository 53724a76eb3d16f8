"""Personal API tokens: a user's key for programs that call /api/v1 on their behalf."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class TokenScope(StrEnum):
    READ = "read"  # GET requests only
    WRITE = "write"  # whatever the user's roles allow

    @property
    def label(self) -> str:
        return {"read": "Read only", "write": "Read and write"}[self.value]


class ApiToken(db.Model):  # type: ignore[name-defined]
    """Only a SHA-256 hash of the token is kept: a copy of the database does not let anyone
    call the API. ``prefix`` (shown in the list, part of the token itself) finds the row
    without scanning hashes. A token is 256 random bits, so one unsalted hash suffices."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()

    @property
    def scope_label(self) -> str:
        return TokenScope(self.scope).label
