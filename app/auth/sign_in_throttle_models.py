"""The sign-in failure counter of an account (or of an identifier that names none)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import UTCDateTime
from app.extensions import db


class SignInFailures(db.Model):  # type: ignore[name-defined]
    """Failed sign-ins counted per account, in the database so that every app server sees
    the same count.

    ``key`` is a keyed hash (HMAC-SHA-256 under the portal's secret key) of the account's id,
    or, when what was typed names no account, of the normalised identifier: what was typed is
    never kept in clear (it might be a password typed into the wrong box), and an identifier
    that names nobody is counted and locked exactly like an account, so the counter says
    nothing about who has one.
    """

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Failures since ``window_started_at`` (the first failure of the current window).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # While in the future a password alone does not sign in; each further failure moves it on.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
