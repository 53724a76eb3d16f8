"""Server-side login sessions behind Flask-Login.

The signed session cookie holds a random token; the database holds its hash. A cookie
copied before logout (or before deactivation or a password change) names a session row
that has ended, so the user loader refuses it.

A session ends after IDLE_TIMEOUT without a request and SESSION_LIFETIME after sign-in,
with two exceptions:

- while its user has a timed exam in progress, neither applies (the exam's deadline ends
  the exam instead): a trainee is never signed out mid-exam. An open exam page also saves
  every 15 seconds, which counts as activity like any request;
- "remember this device" on a trainee-only account: a persistent cookie and no idle end,
  up to REMEMBER_DEVICE_LIFETIME. An account with any other role (trainer, lead,
  administrator) keeps both limits even on a remembered device.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app, g, session
from flask_babel import gettext
from flask_login import login_user, logout_user
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.audit.services import record
from app.auth.models import User, UserSession
from app.auth.roles import TRAINEE_ROLES
from app.db_types import utcnow
from app.extensions import commit_keeping_loaded, db
from app.i18n import N_, clear_session_keeping_language

SESSION_KEY = "sid"
# Set on ``g`` when this request's session just ended for want of activity, so that the
# sign-in page can say why.
IDLE_ENDED = "session_ended_idle"
IDLE_MESSAGE = N_(
    "You were signed out after %(minutes)s minutes without activity. Sign in again.")
# Refresh last_seen_at at most this often, not on every request: the idle end may come up
# to this much early, never late.
_TOUCH_INTERVAL = timedelta(minutes=1)


# g: the personal API token a request signed in with (app.api sets it; the token was made in
# a session that passed the second factor). Kept here, below both, so that the sign-in rules
# can ask without the accounts area depending on the API.
API_TOKEN = "api_token"  # noqa: S105 (a key name, no secret)


def signed_in_by_token() -> bool:
    return g.get(API_TOKEN) is not None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _trainee_only(user: User) -> bool:
    return bool(user.roles) and user.roles <= TRAINEE_ROLES


def start_session(user: User, *, remember: bool = False) -> None:
    """Log ``user`` in with a fresh server-side session (the caller commits)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    cfg = current_app.config
    lifetime = cfg["SESSION_LIFETIME"]
    if remember and _trainee_only(user):
        lifetime = cfg["REMEMBER_DEVICE_LIFETIME"]
    db.session.add(
        UserSession(
            token_hash=_hash(token),
            user=user,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            remembered=remember,
        )
    )
    clear_session_keeping_language()  # nothing else carried over (session fixation)
    session[SESSION_KEY] = token
    # Only a remembered device gets a cookie that outlives the browser.
    session.permanent = remember
    login_user(user)


def idle_message() -> str:
    minutes = int(current_app.config["IDLE_TIMEOUT"].total_seconds() // 60)
    return gettext(IDLE_MESSAGE, minutes=minutes)


def remember_hint() -> str:
    """What "remember this device" does, for the sign-in page."""
    cfg = current_app.config
    days = cfg["REMEMBER_DEVICE_LIFETIME"].days
    minutes = int(cfg["IDLE_TIMEOUT"].total_seconds() // 60)
    return gettext(
        "Only on a device nobody else uses: trainees stay signed in for up to %(days)s days, "
        "also after the browser closes. Otherwise you are signed out when the browser "
        "closes or after %(minutes)s minutes without activity (trainers, programme leads "
        "and administrators always are).", days=days, minutes=minutes)


# Checks "does this user have an exam open that must not be interrupted?", registered by
# the training area (app.quizzes): accounts do not import the areas built on them.
_KEEP_SIGNED_IN: list[Callable[[int, datetime], bool]] = []


def keep_signed_in_while(check: Callable[[int, datetime], bool]) -> None:
    """Register ``check(user_id, now)``: while it is true the user's session neither idles
    out nor expires."""
    if check not in _KEEP_SIGNED_IN:
        _KEEP_SIGNED_IN.append(check)


def _kept_signed_in(user_id: int, now: datetime) -> bool:
    return any(check(user_id, now) for check in _KEEP_SIGNED_IN)


def _over_time(row: UserSession, now: datetime) -> str | None:
    """Why the session is over ("idle" or "expired"), or None; ignores exams."""
    cfg = current_app.config
    privileged = not _trainee_only(row.user)
    expires_at = row.expires_at
    if privileged:  # a role gained after sign-in does not inherit a remembered lifetime
        expires_at = min(expires_at, row.created_at + cfg["SESSION_LIFETIME"])
    if expires_at <= now:
        return "expired"
    if (privileged or not row.remembered) and now - row.last_seen_at > cfg["IDLE_TIMEOUT"]:
        return "idle"
    return None


def load_user(user_id: str) -> User | None:
    """Flask-Login user loader: the user only if the cookie names a live session."""
    token = session.get(SESSION_KEY)
    if not token or not user_id.isdigit():
        return None
    # One statement on every request: the session row, its user (with the clinic) and the
    # user's roles; lead countries only where they are asked for.
    user_options = joinedload(UserSession.user, innerjoin=True)
    row = db.session.scalars(
        select(UserSession).where(UserSession.token_hash == _hash(token)).options(
            user_options.joinedload(User.role_links),
            user_options.lazyload(User.lead_country_links))
    ).unique().one_or_none()
    now = utcnow()
    if (
        row is None
        or row.user_id != int(user_id)
        or row.ended_at is not None
        or not row.user.active
    ):
        return None
    over = _over_time(row, now)
    if over is not None and not _kept_signed_in(row.user_id, now):
        _end_for_time(row, over, now)
        session.pop(SESSION_KEY, None)
        if over == "idle":
            g.setdefault(IDLE_ENDED, True)
        return None
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        row.last_seen_at = now
        # What was just read stays loaded: the request goes on with this user.
        commit_keeping_loaded()
    return row.user


def _end_for_time(row: UserSession, reason: str, now: datetime) -> None:
    """End ``row`` for idleness or age and log it, once: of two requests racing on the same
    expired session only the one whose UPDATE still finds it open records the event."""
    ended = db.session.execute(
        update(UserSession)
        .where(UserSession.id == row.id, UserSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount == 1:  # type: ignore[attr-defined]
        record("session.ended", actor=row.user, object_type="user", object_id=row.user_id,
               reason=reason)
    db.session.commit()


def end_current_session() -> None:
    token = session.get(SESSION_KEY)
    if token:
        db.session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _hash(token), UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )
    logout_user()
    clear_session_keeping_language()


def end_all_sessions(user: User, *, keep_current: bool = False) -> None:
    """End every live session of ``user`` (the caller commits)."""
    stmt = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    token = session.get(SESSION_KEY) if keep_current else None
    if token:
        stmt = stmt.where(UserSession.token_hash != _hash(token))
    db.session.execute(stmt.values(ended_at=utcnow()))
