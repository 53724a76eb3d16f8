"""Signing in with the form of the sign-in page: the password, counted per account, and what
still gets the owner in while the account is locked.

While an account is locked (app.auth.sign_in_throttle) a password alone is refused without
being checked. Its owner gets in with the password and a current authenticator code (or a
recovery code) given together, if the account has a second factor; otherwise through a
password reset link, which lifts the lock. Every refusal while locked gives one answer, so
the lock is no oracle for the password; the attempts stay counted, and wrong codes after a
right password also count against the second factor's own limit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.audit.services import record
from app.auth import second_factor
from app.auth import sign_in_throttle as throttle
from app.auth.models import User
from app.auth.services import note_sign_in, password_matches


class Outcome(enum.Enum):
    WRONG = "wrong"  # not locked: wrong user name or password
    LOCKED = "locked"  # locked (perhaps by this very failure): a password alone is refused
    LOCKED_WRONG = "locked-wrong"  # locked, password and code given: one of them is not right
    RIGHT = "right"  # not locked, right password: on to the second step, if any
    RIGHT_WITH_CODE = "right-with-code"  # locked, password and code both right: signed in


@dataclass(frozen=True)
class SignInAttempt:
    outcome: Outcome
    user: User | None = None
    how: str | None = None  # for RIGHT_WITH_CODE: "code" or "recovery code"


def check_sign_in(identifier: str, password: str, code: str = "") -> SignInAttempt:
    """Judge one submission of the sign-in form (failures are counted and committed; a
    success is not yet a session: the caller starts it)."""
    user = throttle.user_for_identifier(identifier)
    key = throttle.counter_key(user, identifier)
    if throttle.is_locked(key):
        return _while_locked(key, user, identifier, password, code.strip())
    # A failure's audit event is committed with its count (note_failure).
    if password_matches(user, identifier, password, commit=False) and user is not None:
        throttle.clear(key)
        note_sign_in(user, password)
        return SignInAttempt(Outcome.RIGHT, user)
    if throttle.note_failure(key, user):
        return SignInAttempt(Outcome.LOCKED)
    return SignInAttempt(Outcome.WRONG)


def _while_locked(key: str, user: User | None, identifier: str, password: str,
                  code: str) -> SignInAttempt:
    if not code:
        # Not even checked: whether the password was right must not show while locked.
        record("login.failed", object_type="user", object_id=user.id if user else None,
               username=identifier.strip().lower()[:64], locked=True)
        throttle.note_failure(key, user)
        return SignInAttempt(Outcome.LOCKED)
    how = None
    if password_matches(user, identifier, password, commit=False) and user is not None:
        how = _second_factor(user, code)
    if user is None or how is None:
        throttle.note_failure(key, user)
        return SignInAttempt(Outcome.LOCKED_WRONG)
    throttle.clear(key)
    note_sign_in(user, password)
    return SignInAttempt(Outcome.RIGHT_WITH_CODE, user, how)


def _second_factor(user: User, code: str) -> str | None:
    """Which kind of code passed, or None (no second factor, a wrong code, or too many)."""
    if not second_factor.is_enrolled(user):
        return None
    try:
        return second_factor.verify_second_step(user, code)
    except second_factor.SecondFactorError:  # SecondFactorLocked included: the same answer
        return None
