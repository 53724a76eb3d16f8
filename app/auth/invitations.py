"""Signed, expiring invitation links with which an invitee sets a password.

The token carries a fingerprint of the user's current password hash, so it stops working
once used (and a later invitation or password change also retires earlier links).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import current_app, render_template
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.audit.services import record
from app.auth.models import User
from app.extensions import db
from app.mail import MailError, mail_configured, send_mail
from app.urls import external_url

_SALT = "cxr-academy.invitation"


class InvitationError(ValueError):
    """The link cannot be used; the message says why, for the invitee."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    return hashlib.sha256((user.password_hash or "unset").encode()).hexdigest()[:16]


def invitation_token(user: User) -> str:
    return _serializer().dumps({"u": user.id, "f": _fingerprint(user)})


def invitation_url(user: User) -> str:
    return external_url("auth.accept_invitation", token=invitation_token(user))


@dataclass(frozen=True)
class Invitation:
    link: str
    emailed: bool
    mail_error: str | None = None


def issue_invitation(user: User) -> Invitation:
    """Make a fresh invitation link, e-mail it when mail is configured, audit it."""
    link = invitation_url(user)
    emailed, error = False, None
    if mail_configured():
        body = render_template(
            "mail/invitation.txt",
            user=user,
            link=link,
            days=current_app.config["INVITATION_MAX_AGE"].days,
        )
        try:
            send_mail(user.email, "Your CXR Academy account", body)
            emailed = True
        except MailError as exc:
            error = str(exc)
            current_app.logger.warning("invitation e-mail for user %s not sent: %s", user.id, error)
    record("user.invite", object_type="user", object_id=user.id, emailed=emailed)
    db.session.commit()
    return Invitation(link, emailed, error)


def user_for_invitation(token: str) -> User:
    max_age = current_app.config["INVITATION_MAX_AGE"].total_seconds()
    try:
        payload = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvitationError(
            "This invitation link has expired. Ask your administrator for a new one."
        ) from None
    except BadSignature:
        raise InvitationError("This invitation link is not valid.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        raise InvitationError("This invitation link is not valid.")
    user = db.session.get(User, payload["u"])
    if user is None or not user.active:
        raise InvitationError("This invitation link is not valid.")
    if payload.get("f") != _fingerprint(user):
        raise InvitationError(
            "This invitation link has already been used. Sign in, or ask your "
            "administrator for a new link."
        )
    return user
