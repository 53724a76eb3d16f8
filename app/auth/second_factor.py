"""Second factor at sign-in: TOTP (RFC 6238, pyotp) and one-time recovery codes.

Sign-in runs in two steps. A right password for a user who needs the second factor does not
sign them in: it only holds them, in the session, for the second step (a code from their
authenticator or a recovery code; or, for a privileged user not yet enrolled, enrolment).
Only a passed second step starts the server-side session and marks it as such, so no
privileged page is ever served to a session that skipped the step.

Authenticator keys are stored encrypted (app.field_encryption) under keys outside the
database; ``secret_of`` is the one place they are opened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
from flask import current_app, session
from flask_babel import gettext
from sqlalchemy import CursorResult, delete, or_, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from app.audit import security_log
from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.auth.second_factor_models import RecoveryCode, SecondFactor
from app.auth.security_keys import has_security_key, remove_all_keys
from app.auth.sessions import end_all_sessions, start_session
from app.db_types import utcnow
from app.extensions import db
from app.field_encryption import UndecryptableField, decrypt, encrypt, is_first_key, reencrypt
from app.i18n import N_, clear_session_keeping_language

PRIVILEGED_ROLES = (Role.TRAINER, Role.PROGRAMME_LEAD, Role.ADMIN)
ISSUER = "CXR Academy"
RECOVERY_CODE_COUNT = 10

# Session keys: the user held between the two steps, where they were going, since when;
# and the mark that this session's sign-in passed the second factor.
_PENDING_USER = "2fa_user"
_PENDING_NEXT = "2fa_next"
_PENDING_SINCE = "2fa_since"
_PENDING_REMEMBER = "2fa_remember"
PASSED = "2fa_passed"


class SecondFactorError(Exception):
    """A refusal with a sentence for the user and the HTTP status to answer it with."""

    status = 401

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.sentence = sentence  # plain English: code compares it, logs keep it
        if status is not None:
            self.status = status

    @property
    def shown(self) -> str:
        """The sentence in the reader's language (every sentence is a marked constant)."""
        return gettext(self.sentence)


class SecondFactorLocked(SecondFactorError):
    """Too many wrong codes: the sign-in is abandoned and must start again."""

    status = 429


class SecondFactorUnreadable(SecondFactorError):
    """The stored key opens with none of the configured FIELD_ENCRYPTION_KEYS."""

    status = 409


WRONG_CODE = N_("That code is not right. Enter the current code from your authenticator app.")
TOO_MANY_WRONG = N_(
    "Too many wrong codes. Sign in again with your password in 15 minutes, "
    "or ask your administrator to reset your second factor."
)
UNREADABLE = N_(
    "Your authenticator codes cannot be checked: this portal no longer has the key your "
    "second factor was stored under. Ask your administrator to reset your second factor "
    "(a recovery code still works)."
)
ALREADY_ON = N_("A second factor is already set up for this account.")
# How keys were stored before they were encrypted (base32); a Fernet token never looks so.
_PLAIN_SECRET = re.compile(r"^[A-Z2-7]{16,128}=*$")


# ---- who needs it ---------------------------------------------------------------------------


def required_for(user: User) -> bool:
    """Trainers, programme leads and administrators must use a second factor."""
    return bool(current_app.config["REQUIRE_2FA"]) and user.has_role(*PRIVILEGED_ROLES)


def factor_of(user: User) -> SecondFactor | None:
    return db.session.get(SecondFactor, user.id)


def is_enrolled(user: User) -> bool:
    """An authenticator app confirmed with a code, or a security key (security_keys.py)."""
    factor = factor_of(user)
    return (factor is not None and factor.enrolled_at is not None) or has_security_key(user)


def step_needed(user: User) -> bool:
    """Enrolled users (trainees who opted in too) and privileged users pass a second step."""
    return is_enrolled(user) or required_for(user)


def session_passed() -> bool:
    return bool(session.get(PASSED))


# ---- the key, encrypted at rest -------------------------------------------------------------


def _field_keys() -> list[str]:
    return current_app.config["FIELD_ENCRYPTION_KEYS"]


def seal_secret(secret: str) -> str:
    """``secret`` as stored: encrypted under the first FIELD_ENCRYPTION_KEYS key."""
    return encrypt(_field_keys(), secret)


def open_secret(stored: str, user_id: int | None = None) -> str:
    """The base32 key of a stored value; a value stored before keys were encrypted (an
    offline migration) is taken as it is. Raises SecondFactorUnreadable."""
    if _PLAIN_SECRET.match(stored):
        return stored
    try:
        return decrypt(_field_keys(), stored)
    except UndecryptableField:
        # For the administrator: the portal runs without the key these were stored under.
        current_app.logger.error(
            "the second factor of user %s opens with none of FIELD_ENCRYPTION_KEYS "
            "(instance/field_key): restore the old key or reset the user's second factor",
            user_id)
        raise SecondFactorUnreadable(UNREADABLE) from None


def secret_of(factor: SecondFactor) -> str:
    """The authenticator key of ``factor``. A key still stored in clear is encrypted on this
    first use (the caller commits)."""
    secret = open_secret(factor.encrypted_secret, factor.user_id)
    if secret == factor.encrypted_secret:
        factor.encrypted_secret = seal_secret(secret)
    return secret


# ---- the state between the two steps --------------------------------------------------------


def hold_for_second_step(user: User, next_url: str | None, *, remember: bool = False) -> None:
    """After a right password: remember the user for the second step, not signed in
    (the caller commits)."""
    # Only the first step: "login" is recorded when the second step passes, so the log never
    # says "signed in" of someone who only knew the password.
    record("login.password", actor=user, object_type="user", object_id=user.id)
    clear_session_keeping_language()  # nothing else from before the password step carries over
    session[_PENDING_USER] = user.id
    session[_PENDING_NEXT] = next_url or ""
    session[_PENDING_SINCE] = int(time.time())
    session[_PENDING_REMEMBER] = remember  # "remember this device", asked with the password


def pending_user() -> User | None:
    """The user held for the second step, if the hold is still fresh and the account usable."""
    user_id = session.get(_PENDING_USER)
    since = session.get(_PENDING_SINCE)
    if not isinstance(user_id, int) or not isinstance(since, int):
        return None
    max_age = current_app.config["SECOND_FACTOR_STEP_MAX_AGE"].total_seconds()
    if time.time() - since > max_age:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    return user


def pending_next() -> str | None:
    return session.get(_PENDING_NEXT) or None


def abandon_pending() -> None:
    for key in (_PENDING_USER, _PENDING_NEXT, _PENDING_SINCE, _PENDING_REMEMBER):
        session.pop(key, None)


def complete_sign_in(user: User, how: str) -> None:
    """Start the real session, marked as having passed the second factor (caller commits)."""
    start_session(user, remember=session.get(_PENDING_REMEMBER) is True)
    session[PASSED] = True
    record("login", actor=user, object_type="user", object_id=user.id, second_factor=how)


@dataclass(frozen=True)
class KeysEncrypted:
    rewritten: int  # now under the first key (were in clear, or under an older key)
    current: int  # already under the first key
    unreadable: list[str]  # user names whose key no configured key opens


def encrypt_all_secrets() -> KeysEncrypted:
    """Put every stored authenticator key (and key awaiting confirmation) under the first
    FIELD_ENCRYPTION_KEYS key: keys still in clear after an offline migration, and keys
    under an older key after a new one was put first, so the old one can then be dropped."""
    keys = _field_keys()
    rewritten = current = 0
    unreadable: list[str] = []
    for factor in db.session.scalars(select(SecondFactor).order_by(SecondFactor.user_id)):
        try:
            changed = False
            for column in ("encrypted_secret", "replacement_secret"):
                stored = getattr(factor, column)
                if stored is None or is_first_key(keys, stored):
                    continue
                plain = _PLAIN_SECRET.match(stored)
                setattr(factor, column,
                        seal_secret(stored) if plain else reencrypt(keys, stored))
                changed = True
        except UndecryptableField:
            user = db.session.get(User, factor.user_id)
            unreadable.append(user.username if user else str(factor.user_id))
            continue
        if changed:
            rewritten += 1
        else:
            current += 1
    db.session.commit()
    return KeysEncrypted(rewritten, current, unreadable)


def unreadable_secret_count() -> int:
    """Second factors whose key opens with none of the configured keys (after a restore
    into an instance without the old instance/field_key). 0 on a schema older than the
    encrypted column: its upgrade encrypts under this instance's key."""
    try:
        stored = db.session.scalars(text("SELECT encrypted_secret FROM user_second_factor")).all()
    except SQLAlchemyError:
        db.session.rollback()
        return 0
    count = 0
    for value in stored:
        if _PLAIN_SECRET.match(value):
            continue
        try:
            decrypt(_field_keys(), value)
        except UndecryptableField:
            count += 1
    return count


# ---- enrolment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_data_uri: str


def begin_enrolment(user: User) -> Enrolment:
    """A secret for ``user`` to add to an authenticator; the same one until confirmed, so a
    reloaded page does not invalidate what was already scanned."""
    factor = factor_of(user)
    if factor is not None and factor.enrolled_at is not None:
        raise SecondFactorError(ALREADY_ON, 409)
    secret = None
    if factor is not None:
        try:
            secret = secret_of(factor)
        except SecondFactorUnreadable:
            secret = None  # never confirmed, so nothing is lost: offer a new key
    if factor is None or secret is None:
        secret = pyotp.random_base32()
        if factor is None:
            factor = SecondFactor(user_id=user.id, failed_count=0)
            db.session.add(factor)
        factor.encrypted_secret = seal_secret(secret)
    db.session.commit()
    return enrolment_for(user, secret)


def enrolment_for(user: User, secret: str) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return Enrolment(secret, uri, qr_data_uri(uri))


def qr_data_uri(text: str) -> str:
    """An inline SVG QR code (the CSP allows data: images; nothing leaves the portal)."""
    # Imported here, for the one page that draws it: qrcode loads Pillow and lxml.
    import qrcode  # type: ignore[import-untyped]
    import qrcode.image.svg  # type: ignore[import-untyped]

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Finish enrolment with a code from the new authenticator; returns the recovery codes,
    which are shown this once and kept only as hashes."""
    factor = factor_of(user)
    if factor is None:
        raise SecondFactorError(N_("Start the set-up again: no secret is waiting for a code."), 409)
    if factor.enrolled_at is not None:
        raise SecondFactorError(ALREADY_ON, 409)
    step = matching_step(secret_of(factor), code)
    if step is None:
        raise SecondFactorError(WRONG_CODE)
    factor.last_time_step = step
    factor.enrolled_at = utcnow()
    factor.failed_count = 0
    codes = new_recovery_codes(user)
    record("second_factor.enrol", actor=user, object_type="user", object_id=user.id)
    db.session.commit()
    return codes


def enrol_with_secret(user: User, secret: str) -> None:
    """Enrol ``user`` with a known secret (demo seeding, tests); no recovery codes."""
    db.session.execute(delete(SecondFactor).where(SecondFactor.user_id == user.id))
    db.session.add(SecondFactor(user_id=user.id, encrypted_secret=seal_secret(secret),
                                enrolled_at=utcnow(), failed_count=0))
    db.session.commit()


# ---- the second step ------------------------------------------------------------------------


def verify_second_step(user: User, code: str) -> str:
    """Accept a current TOTP code (never one already used) or an unused recovery code;
    returns which ("code", "recovery code").

    Wrong codes are counted per account; the ``SECOND_FACTOR_MAX_FAILURES``-th raises
    SecondFactorLocked, and for ``SECOND_FACTOR_LOCKOUT`` afterwards even a right code is
    refused, so guessing six digits needs the password again and again, slowly.
    """
    return check_code(user, code, purpose="sign-in")


def check_code(user: User, code: str, *, purpose: str) -> str:
    """``verify_second_step`` for any use of the second factor (``purpose`` is recorded with
    a spent recovery code); the same count of wrong codes throttles every use."""
    factor = factor_of(user)
    if factor is None or factor.enrolled_at is None:
        raise SecondFactorError(N_("This account has no second factor set up."), 409)
    cfg = current_app.config
    now = utcnow()
    if factor.failed_count >= cfg["SECOND_FACTOR_MAX_FAILURES"]:
        if factor.last_failed_at and now - factor.last_failed_at < cfg["SECOND_FACTOR_LOCKOUT"]:
            security_log.emit("second_factor.refused_locked", outcome="failure", user=user)
            raise SecondFactorLocked(TOO_MANY_WRONG)
        factor.failed_count = 0
    cleaned = _clean(code)
    if cleaned.isdigit() and len(cleaned) == 6:
        step = matching_step(secret_of(factor), cleaned)
        if step is not None and _claim_time_step(factor, step):
            return "code"
    elif _use_recovery_code(user, cleaned):
        factor.failed_count = 0
        record("second_factor.recovery_code", actor=user, object_type="user", object_id=user.id,
               remaining=remaining_recovery_codes(user), purpose=purpose)
        return "recovery code"
    factor.failed_count += 1
    factor.last_failed_at = now
    record("second_factor.failed", actor=user, object_type="user", object_id=user.id)
    if factor.failed_count >= cfg["SECOND_FACTOR_MAX_FAILURES"]:
        record("second_factor.locked", actor=user, object_type="user", object_id=user.id,
               failures=factor.failed_count)
    db.session.commit()
    if factor.failed_count >= cfg["SECOND_FACTOR_MAX_FAILURES"]:
        raise SecondFactorLocked(TOO_MANY_WRONG)
    raise SecondFactorError(WRONG_CODE)


def _claim_time_step(factor: SecondFactor, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was. One conditional UPDATE,
    so two requests racing with the same code cannot both pass."""
    claimed: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(SecondFactor)
        .where(
            SecondFactor.user_id == factor.user_id,
            or_(SecondFactor.last_time_step.is_(None), SecondFactor.last_time_step < step),
        )
        .values(last_time_step=step, failed_count=0)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(factor)
    return bool(claimed.rowcount)


def _clean(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()[:64]


def matching_step(secret: str, code: str) -> int | None:
    """The time step whose code this is: the current one, or one either side for clock drift
    (RFC 6238 section 5.2)."""
    code = _clean(code)
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // totp.interval
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# ---- recovery codes -------------------------------------------------------------------------


def _hash_code(salt: str, code: str) -> str:
    return hashlib.sha256((salt + code).encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace ``user``'s recovery codes with ten new ones (60 random bits each)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(alphabet) for _ in range(12))
        salt = secrets.token_hex(16)
        db.session.add(RecoveryCode(user_id=user.id, salt=salt, code_hash=_hash_code(salt, raw)))
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return codes


def _use_recovery_code(user: User, cleaned: str) -> bool:
    if len(cleaned) != 12:
        return False
    unused = db.session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for row in unused:
        if hmac.compare_digest(row.code_hash, _hash_code(row.salt, cleaned)):
            # Conditional, so a code raced in two requests is spent by one of them only.
            spent: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
                update(RecoveryCode)
                .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return bool(spent.rowcount)
    return False


def remaining_recovery_codes(user: User) -> int:
    return len(
        db.session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


# ---- reset by an administrator --------------------------------------------------------------


def reset_second_factor(user: User, *, actor: User | None = None) -> bool:
    """Remove ``user``'s authenticator, recovery codes and security keys and sign them out
    everywhere; they enrol again at their next sign-in. Returns False when there was nothing
    to reset."""
    factor = factor_of(user)
    had_codes = remaining_recovery_codes(user) > 0
    had_keys = remove_all_keys(user) > 0
    if factor is None and not had_codes and not had_keys:
        return False
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(SecondFactor).where(SecondFactor.user_id == user.id))
    end_all_sessions(user)
    record("second_factor.reset", actor=actor, object_type="user", object_id=user.id)
    db.session.commit()
    return True
