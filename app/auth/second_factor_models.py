"""The second factor of an account: a TOTP secret (encrypted) and one-time recovery codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class SecondFactor(db.Model):  # type: ignore[name-defined]
    """A user's authenticator (RFC 6238 TOTP). ``enrolled_at`` is None while the user has
    been shown the secret but has not yet proved it with a code."""

    __tablename__ = "user_second_factor"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    # The base32 key authenticator apps take, encrypted under FIELD_ENCRYPTION_KEYS
    # (app.field_encryption): whoever has only the database or a backup cannot make codes.
    encrypted_secret: Mapped[str] = mapped_column(Text)
    # "Replace authenticator": the new key, encrypted likewise, until a code from the new app
    # proves it; the old key keeps working until then.
    replacement_secret: Mapped[str | None] = mapped_column(Text)
    replacement_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The newest accepted 30-second time step: a code of this step or an older one is refused,
    # so a code seen over a shoulder or in a proxy log cannot be played again.
    last_time_step: Mapped[int | None] = mapped_column(Integer)
    # Wrong codes since the last right one; too many end the sign-in (start over).
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """A one-time recovery code, kept as salted SHA-256 (the codes are random and long, so a
    slow password hash would add nothing but latency to ten comparisons)."""

    __tablename__ = "second_factor_recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
