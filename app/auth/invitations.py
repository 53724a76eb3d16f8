"""Signed, expiring invitation links with which an invitee sets a password.

The token rules (single use, only the newest link works, a password change retires it) are
those of every account link: see app.auth.links. A new invitation also retires an
outstanding password reset link.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, render_template
from flask_babel import gettext

from app.audit.services import record
from app.auth.links import (
    LinkError,
    LinkProblem,
    LinkPurpose,
    make_link_token,
    retire_link,
    user_for_link,
)
from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.mail import MailError, in_language_of, mail_configured, recipient_datetime, send_mail
from app.urls import external_url

INVITATION_SUBJECT = N_("Your CXR Academy account")

# Plain English; translated for the reader when the link is refused.
_REASONS = {
    LinkProblem.EXPIRED: N_(
        "This invitation link has expired. Ask your administrator for a new one."),
    LinkProblem.INVALID: N_(
        "This invitation link is not valid."),
    LinkProblem.DEACTIVATED: N_(
        "This invitation link is not valid: the account is deactivated. "
        "Ask your administrator."),
    LinkProblem.REPLACED: N_(
        "A newer invitation link has been made for this account: use the "
        "newest one, or ask your administrator for a new link."),
    LinkProblem.USED: N_(
        "This invitation link has already been used. Sign in, or ask your "
        "administrator for a new link."),
}


class InvitationError(ValueError):
    """The link cannot be used; the message says why, for the invitee."""


def invitation_token(user: User) -> str:
    """A new invitation token; every earlier link to set this account's password stops
    working: older invitations and an outstanding password reset link (the caller commits).
    An administrator re-inviting someone is starting over, e.g. after a lost or leaked link."""
    retire_link(user, LinkPurpose.PASSWORD_RESET)
    return make_link_token(user, LinkPurpose.INVITATION)


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
        max_age = current_app.config["INVITATION_MAX_AGE"]
        with in_language_of(user):  # the invitee's language, not the administrator's
            body = render_template(
                "mail/invitation.txt",
                user=user,
                link=link,
                days=max_age.days,
                until=recipient_datetime(user, utcnow() + max_age),
            )
            subject = gettext(INVITATION_SUBJECT)
        try:
            send_mail(user.email, subject, body)
            emailed = True
        except MailError as exc:
            error = str(exc)
            current_app.logger.warning("invitation e-mail for user %s not sent: %s", user.id, error)
    record("user.invite", object_type="user", object_id=user.id, emailed=emailed)
    db.session.commit()
    return Invitation(link, emailed, error)


def user_for_invitation(token: str) -> User:
    try:
        return user_for_link(token, LinkPurpose.INVITATION)
    except LinkError as exc:
        raise InvitationError(gettext(_REASONS[exc.problem])) from None
