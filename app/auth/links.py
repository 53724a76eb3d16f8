"""Signed, single-use, time-limited account links: invitations and password resets.

A link's token is signed with the app's secret (itsdangerous, one salt per purpose so an
invitation cannot serve as a reset link) and carries:

- the user id;
- a random nonce, of which only a hash is stored per user and purpose (``AccountLink``): a
  new link overwrites it, so only the newest link works, and using it stamps ``used_at``;
- a fingerprint of the current password hash, so any password change (from a link, the
  account page or the command line) retires every outstanding link.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.audit import security_log
from app.auth.models import AccountLink, User
from app.db_types import utcnow
from app.extensions import db


class LinkPurpose(StrEnum):
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (a purpose, not a password)

    @property
    def max_age(self) -> timedelta:
        key = "INVITATION_MAX_AGE" if self is LinkPurpose.INVITATION else "PASSWORD_RESET_MAX_AGE"
        value: timedelta = current_app.config[key]
        return value


# Kept from before the nonce was added, so the salt (and the meaning of old tokens) is stable.
_SALTS = {
    LinkPurpose.INVITATION: "cxr-academy.invitation",
    LinkPurpose.PASSWORD_RESET: "cxr-academy.password-reset",
}


class LinkProblem(StrEnum):
    EXPIRED = "expired"
    INVALID = "invalid"
    USED = "used"
    REPLACED = "replaced"
    DEACTIVATED = "deactivated"


@dataclass
class LinkError(ValueError):
    """The link cannot be used; ``problem`` says why (the caller words it for its user)."""

    problem: LinkProblem

    def __str__(self) -> str:
        return self.problem.value


def _serializer(purpose: LinkPurpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALTS[purpose])


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def password_fingerprint(user: User) -> str:
    return _hash(user.password_hash or "unset")[:16]


def make_link_token(user: User, purpose: LinkPurpose) -> str:
    """A new token for ``user``; older tokens of this purpose stop working (caller commits)."""
    nonce = secrets.token_urlsafe(16)
    row = db.session.get(AccountLink, (user.id, purpose.value))
    if row is None:
        row = AccountLink(user_id=user.id, purpose=purpose.value)
        db.session.add(row)
    row.nonce_hash = _hash(nonce)
    row.issued_at = utcnow()
    row.used_at = None
    return _serializer(purpose).dumps({"u": user.id, "n": nonce, "f": password_fingerprint(user)})


def retire_link(user: User, purpose: LinkPurpose) -> None:
    """Make the user's outstanding link of ``purpose``, if any, invalid (the caller commits)."""
    row = db.session.get(AccountLink, (user.id, purpose.value))
    if row is not None:
        db.session.delete(row)


def user_for_link(token: str, purpose: LinkPurpose) -> User:
    """The user the token was made for, if it is still good; raises LinkError otherwise
    (and logs the refusal: forged or stale links are what a SIEM watches for)."""
    try:
        return _user_for_link(token, purpose)
    except LinkError as exc:
        security_log.emit("link.refused", outcome="failure", purpose=purpose.value,
                          problem=exc.problem.value)
        raise


def _user_for_link(token: str, purpose: LinkPurpose) -> User:
    try:
        payload = _serializer(purpose).loads(token, max_age=int(purpose.max_age.total_seconds()))
    except SignatureExpired:
        raise LinkError(LinkProblem.EXPIRED) from None
    except BadSignature:
        raise LinkError(LinkProblem.INVALID) from None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("u"), int)
        or not isinstance(payload.get("n"), str)
    ):
        raise LinkError(LinkProblem.INVALID)
    user = db.session.get(User, payload["u"])
    row = db.session.get(AccountLink, (payload["u"], purpose.value))
    if user is None or row is None:
        raise LinkError(LinkProblem.INVALID)
    if not user.active:
        raise LinkError(LinkProblem.DEACTIVATED)
    if row.nonce_hash != _hash(payload["n"]):
        raise LinkError(LinkProblem.REPLACED)
    if row.used_at is not None or payload.get("f") != password_fingerprint(user):
        raise LinkError(LinkProblem.USED)
    return user


def mark_link_used(user: User, purpose: LinkPurpose) -> None:
    """Stamp the user's current link of ``purpose`` as used (the caller commits)."""
    row = db.session.get(AccountLink, (user.id, purpose.value))
    if row is not None:
        row.used_at = utcnow()
