"""Server-side login sessions behind Flask-Login.

The signed session cookie holds a random token; the database holds its hash. A cookie
copied before logout (or before deactivation or a password change) names a session row
that has ended, so the user loader refuses it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, session
from flask_login import login_user, logout_user
from sqlalchemy import select, update

from app.auth.models import User, UserSession
from app.db_types import utcnow
from app.extensions import db

SESSION_KEY = "sid"
# Refresh last_seen_at at most this often, not on every request.
_TOUCH_INTERVAL = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> None:
    """Log ``user`` in with a fresh server-side session (the caller commits)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        UserSession(
            token_hash=_hash(token),
            user=user,
            created_at=now,
            last_seen_at=now,
            expires_at=now + current_app.config["SESSION_LIFETIME"],
        )
    )
    session.clear()  # no state carried over from before login (session fixation)
    session[SESSION_KEY] = token
    session.permanent = True
    login_user(user)


def load_user(user_id: str) -> User | None:
    """Flask-Login user loader: the user only if the cookie names a live session."""
    token = session.get(SESSION_KEY)
    if not token or not user_id.isdigit():
        return None
    row = db.session.execute(
        select(UserSession).where(UserSession.token_hash == _hash(token))
    ).scalar_one_or_none()
    now = utcnow()
    if (
        row is None
        or row.user_id != int(user_id)
        or row.ended_at is not None
        or row.expires_at <= now
        or not row.user.active
    ):
        return None
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        row.last_seen_at = now
        db.session.commit()
    return row.user


def end_current_session() -> None:
    token = session.get(SESSION_KEY)
    if token:
        db.session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _hash(token), UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )
    logout_user()
    session.clear()


def end_all_sessions(user: User, *, keep_current: bool = False) -> None:
    """End every live session of ``user`` (the caller commits)."""
    stmt = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    token = session.get(SESSION_KEY) if keep_current else None
    if token:
        stmt = stmt.where(UserSession.token_hash != _hash(token))
    db.session.execute(stmt.values(ended_at=utcnow()))
