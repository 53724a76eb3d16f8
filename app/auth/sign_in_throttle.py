"""Failed sign-ins counted per account, in the database, whatever identifier was typed.

The user name and the e-mail address (in any case, with stray spaces) of one account share
one counter, and every app server sees it. After ``LOGIN_ACCOUNT_MAX_FAILURES`` failures
within ``LOGIN_ACCOUNT_WINDOW`` the account is locked: a password alone no longer signs in
(app.auth.sign_in says what still does), and every further failure keeps it locked for
another window. An identifier that names no account is counted and locked the same way, so
neither the answers nor the lock tell anyone whether an account exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import unicodedata
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import CursorResult, and_, case, delete, literal, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from app.audit.services import record
from app.auth.models import User
from app.auth.sign_in_throttle_models import SignInFailures
from app.db_types import UTCDateTime, utcnow
from app.extensions import db

# Longer than any user name or e-mail address (the form refuses more), so that normalising
# a hostile request never costs more than this.
MAX_IDENTIFIER = 254


def normalise_identifier(typed: str) -> str:
    """What was typed, as the account columns hold it: compatibility-normalised (full-width
    letters, ligatures), without any white space (none is allowed in a user name or an
    e-mail address), lower case."""
    text = unicodedata.normalize("NFKC", typed[: MAX_IDENTIFIER * 4])
    return "".join(text.split()).lower()[:MAX_IDENTIFIER]


def user_for_identifier(typed: str) -> User | None:
    """The account (active or not) whose user name or e-mail address this is, if any."""
    ident = normalise_identifier(typed)
    if not ident:
        return None
    candidates = {ident}
    if "@" in ident:
        # The form e-mail addresses are stored in (e.g. an internationalised domain).
        with contextlib.suppress(EmailNotValidError):
            candidates.add(validate_email(ident, check_deliverability=False).normalized.lower())
    return db.session.scalar(
        select(User).where(User.username.in_(candidates) | User.email.in_(candidates))
    )


def counter_key(user: User | None, typed: str) -> str:
    """The counter of ``user``, or of the normalised identifier when it names no account:
    a keyed hash, so the table never holds what was typed (perhaps a password in the wrong
    box) and cannot be matched against a list of guesses without the portal's key."""
    subject = f"user:{user.id}" if user is not None else "name:" + normalise_identifier(typed)
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, b"sign-in-failures\0" + subject.encode(), hashlib.sha256).hexdigest()


def is_locked(key: str) -> bool:
    until = db.session.scalar(select(SignInFailures.locked_until).where(SignInFailures.key == key))
    return until is not None and until > utcnow()


def note_failure(key: str, user: User | None) -> bool:
    """Count one failed sign-in against ``key`` and commit; True when the account is (now)
    locked. The first failure that reaches the limit records ``login.locked`` for a real
    account.

    One conditional UPDATE does the counting, so two app servers counting at once never lose
    a failure (a row lock on PostgreSQL, the single writer on SQLite).
    """
    cfg = current_app.config
    window = cfg["LOGIN_ACCOUNT_WINDOW"]
    limit = int(cfg["LOGIN_ACCOUNT_MAX_FAILURES"])
    now = utcnow()
    now_v = literal(now, UTCDateTime())
    until_v = literal(now + window, UTCDateTime())
    cutoff_v = literal(now - window, UTCDateTime())
    row = SignInFailures
    first = _insert_missing(key, now)
    locked = and_(row.locked_until.is_not(None), row.locked_until > now_v)
    stale = row.window_started_at <= cutoff_v
    db.session.execute(
        update(row)
        .where(row.key == key)
        .values(
            failures=case((locked, row.failures + 1), (stale, 1), else_=row.failures + 1),
            window_started_at=case((and_(not_(locked), stale), now_v),
                                   else_=row.window_started_at),
            # Failures while locked keep it locked: guessing stays bounded however long it goes on.
            locked_until=case((locked, until_v), else_=row.locked_until),
        )
        .execution_options(synchronize_session=False)
    )
    newly: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(row)
        .where(row.key == key, row.failures >= limit,
               or_(row.locked_until.is_(None), row.locked_until <= now_v))
        .values(locked_until=until_v)
        .execution_options(synchronize_session=False)
    )
    if newly.rowcount and user is not None:
        record("login.locked", actor=user, object_type="user", object_id=user.id,
               failures=limit, minutes=int(window.total_seconds() // 60))
    db.session.commit()
    if first:  # a new row: the moment to drop old ones, so the table stays small
        _forget_stale(now)
    return is_locked(key)


def clear(key: str) -> None:
    """Forget the failures of ``key`` (a sign-in passed); the caller commits."""
    db.session.execute(delete(SignInFailures).where(SignInFailures.key == key))


def clear_for_user(user: User) -> None:
    """Lift the lock of ``user`` (a new password was set); the caller commits."""
    clear(counter_key(user, ""))


def _insert_missing(key: str, now: Any) -> bool:
    """Make sure ``key`` has a row (another server may add it at the same moment); True when
    this call added it."""
    dialect = db.session.get_bind().dialect.name
    values = {"key": key, "failures": 0, "window_started_at": now}
    if dialect == "postgresql":
        statement: Any = postgresql.insert(SignInFailures)
    elif dialect == "sqlite":
        statement = sqlite.insert(SignInFailures)
    else:  # pragma: no cover - the portal runs on these two
        raise RuntimeError(f"no sign-in failure counter for {dialect}")
    added: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        statement.values(**values).on_conflict_do_nothing())
    return bool(added.rowcount)


def _forget_stale(now: Any) -> None:
    """Rows past their window and not locked count for nothing: drop them, so that guessed
    identifiers do not pile up. Housekeeping in its own transaction, after the count is
    committed: if it collides with another server doing the same, it is simply skipped."""
    window = current_app.config["LOGIN_ACCOUNT_WINDOW"]
    row = SignInFailures
    try:
        db.session.execute(
            delete(row).where(
                row.window_started_at <= literal(now - window, UTCDateTime()),
                or_(row.locked_until.is_(None), row.locked_until <= literal(now, UTCDateTime())),
            )
        )
        db.session.commit()
    except DBAPIError:
        db.session.rollback()
