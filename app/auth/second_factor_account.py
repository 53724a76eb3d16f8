"""A user's own second factor, on their account security page: what is on, new recovery
codes, turning it off, and moving it to a new authenticator app.

Every change needs a current code (from the authenticator, or a recovery code), counted
against the same limit of wrong codes as the sign-in; turning it off needs the password too.
Each function validates before it writes, records an audit event and commits; a refusal is a
``SecondFactorError`` with a sentence and an HTTP status, and leaves the database unchanged
(apart from counting a wrong code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from flask import session
from sqlalchemy import delete

from app.audit.services import record
from app.auth import second_factor as sf
from app.auth.models import User
from app.auth.passwords import verify_password
from app.auth.second_factor_models import RecoveryCode, SecondFactor
from app.auth.sessions import end_all_sessions
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_

# A new authenticator waits this long for its first code before the set-up starts over.
REPLACEMENT_MAX_AGE = timedelta(minutes=10)
# The session that started a replacement: only it is shown the new key (not another signed-in
# device of the same account).
_REPLACING = "2fa_replacing"

NOT_ON = N_("Two-step sign-in is not on for this account.")
WRONG_PASSWORD = N_("That password is not right. Enter the password you sign in with.")
REQUIRED = N_(
    "Your role (trainer, programme lead or administrator) must sign in with a second factor, "
    "so it cannot be turned off. Use “Replace authenticator” to move it to a new phone."
)
TOO_MANY_WRONG = N_(
    "Too many wrong codes. Try again in 15 minutes, or ask your administrator to reset your "
    "second factor."
)
NO_REPLACEMENT = N_("No new authenticator is waiting for a code. Start the replacement again.")


@dataclass(frozen=True)
class SecurityStatus:
    enrolled: bool
    enrolled_at: datetime | None
    required: bool
    recovery_codes_left: int
    # The stored key opens with the configured keys (else only a reset helps).
    readable: bool


def status_of(user: User) -> SecurityStatus:
    factor = sf.factor_of(user)
    enrolled = factor is not None and factor.enrolled_at is not None
    readable = True
    if enrolled and factor is not None:
        try:
            sf.open_secret(factor.encrypted_secret, user.id)
        except sf.SecondFactorUnreadable:
            readable = False
    return SecurityStatus(
        enrolled=enrolled,
        enrolled_at=factor.enrolled_at if enrolled and factor is not None else None,
        required=sf.required_for(user),
        recovery_codes_left=sf.remaining_recovery_codes(user) if enrolled else 0,
        readable=readable,
    )


def _confirm_code(user: User, code: str, purpose: str) -> None:
    """A current code of ``user``'s second factor, else a SecondFactorError (wrong codes are
    counted and committed, as at sign-in)."""
    if not sf.is_enrolled(user):
        raise sf.SecondFactorError(NOT_ON, 409)
    try:
        sf.check_code(user, code, purpose=purpose)
    except sf.SecondFactorLocked:
        raise sf.SecondFactorLocked(TOO_MANY_WRONG) from None


def regenerate_recovery_codes(user: User, code: str) -> list[str]:
    """Ten new recovery codes, shown once; the old ones stop working."""
    _confirm_code(user, code, "make new recovery codes")
    codes = sf.new_recovery_codes(user)
    record("second_factor.recovery_codes_regenerated", actor=user, object_type="user",
           object_id=user.id)
    db.session.commit()
    return codes


def turn_off(user: User, password: str, code: str) -> None:
    """Remove the second factor: only where the role does not require one, and with the
    password and a current code (whoever borrows a signed-in browser has neither)."""
    if not sf.is_enrolled(user):
        raise sf.SecondFactorError(NOT_ON, 409)
    if sf.required_for(user):
        raise sf.SecondFactorError(REQUIRED, 409)
    # The password first: a wrong one must not spend the code typed with it.
    if not verify_password(user.password_hash, password):
        record("second_factor.disable_refused", actor=user, object_type="user",
               object_id=user.id)
        db.session.commit()
        raise sf.SecondFactorError(WRONG_PASSWORD, 401)
    _confirm_code(user, code, "turn off two-step sign-in")
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(SecondFactor).where(SecondFactor.user_id == user.id))
    session.pop(_REPLACING, None)
    record("second_factor.disabled", actor=user, object_type="user", object_id=user.id)
    db.session.commit()


def begin_replacement(user: User, code: str) -> None:
    """After a current code: a new key for a new authenticator app, kept beside the old one
    until the new app proves it with a code (a mistake here locks nobody out)."""
    _confirm_code(user, code, "replace the authenticator")
    factor = sf.factor_of(user)
    assert factor is not None  # enrolled, checked above
    factor.replacement_secret = sf.seal_secret(pyotp.random_base32())
    factor.replacement_started_at = utcnow()
    session[_REPLACING] = user.id
    record("second_factor.replacement_started", actor=user, object_type="user",
           object_id=user.id)
    db.session.commit()


def _waiting_replacement(user: User) -> tuple[SecondFactor, str]:
    factor = sf.factor_of(user)
    if (factor is None or factor.replacement_secret is None
            or factor.replacement_started_at is None or session.get(_REPLACING) != user.id
            or utcnow() - factor.replacement_started_at > REPLACEMENT_MAX_AGE):
        raise sf.SecondFactorError(NO_REPLACEMENT, 409)
    return factor, sf.open_secret(factor.replacement_secret, user.id)


def replacement_enrolment(user: User) -> sf.Enrolment:
    """The new key to scan, while a replacement started in this session waits."""
    _factor, secret = _waiting_replacement(user)
    return sf.enrolment_for(user, secret)


def confirm_replacement(user: User, code: str) -> None:
    """A code from the new app: it replaces the old one, whose codes stop working, and every
    other session of the account ends (the old phone may be in someone else's hands)."""
    factor, secret = _waiting_replacement(user)
    step = sf.matching_step(secret, code)
    if step is None:
        raise sf.SecondFactorError(sf.WRONG_CODE, 401)
    factor.encrypted_secret = factor.replacement_secret  # type: ignore[assignment]
    factor.replacement_secret = None
    factor.replacement_started_at = None
    factor.last_time_step = step  # this code is spent
    factor.failed_count = 0
    session.pop(_REPLACING, None)
    end_all_sessions(user, keep_current=True)
    record("second_factor.replaced", actor=user, object_type="user", object_id=user.id)
    db.session.commit()


def cancel_replacement(user: User) -> None:
    factor = sf.factor_of(user)
    session.pop(_REPLACING, None)
    if factor is not None and factor.replacement_secret is not None:
        factor.replacement_secret = None
        factor.replacement_started_at = None
        db.session.commit()
