"""Self-service password reset by e-mail.

Asking for a link always gets the same answer, whether or not an account matches, so the
page cannot be used to find out who has an account. The link follows the account-link
rules (app.auth.links): signed, expiring, single use, only the newest works.
"""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import gettext
from sqlalchemy import select

from app.audit.security_log import identifier_hash
from app.audit.services import record
from app.auth.links import LinkError, LinkProblem, LinkPurpose, make_link_token, user_for_link
from app.auth.models import User
from app.auth.services import AccountError, check_password_policy, set_password
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.mail import MailError, in_language_of, mail_configured, recipient_datetime, send_mail
from app.urls import external_url

RESET_SUBJECT = N_("Reset your CXR Academy password")

# Plain English; translated for the reader when the link is refused.
_REASONS = {
    LinkProblem.EXPIRED: N_(
        "This password reset link has expired. Ask for a new one."),
    LinkProblem.INVALID: N_(
        "This password reset link is not valid."),
    LinkProblem.DEACTIVATED: N_(
        "This account is deactivated, so its password cannot be reset. "
        "Ask your administrator."),
    LinkProblem.REPLACED: N_(
        "A newer password reset link has been sent for this account: use the "
        "link in the most recent e-mail, or ask for a new one."),
    LinkProblem.USED: N_(
        "This password reset link has already been used. Sign in with your new "
        "password, or ask for a new link."),
}


class ResetLinkError(ValueError):
    """The reset link cannot be used; the message says why, for its owner."""

    def __init__(self, message: str, problem: LinkProblem) -> None:
        super().__init__(message)
        self.problem = problem


class ResetUnavailable(RuntimeError):
    """No mail server is configured: only an administrator can help."""


def reset_available() -> bool:
    return mail_configured()


def reset_link_minutes() -> int:
    return int(LinkPurpose.PASSWORD_RESET.max_age.total_seconds() // 60)


def request_password_reset(identifier: str) -> None:
    """E-mail a reset link to the active account with this user name or e-mail, if any.

    Returns nothing either way (no account enumeration). A mail server that refuses is
    logged for the administrator, not shown to the requester.
    """
    if not reset_available():
        raise ResetUnavailable
    ident = identifier.strip().lower()
    user = (
        db.session.scalar(select(User).where((User.username == ident) | (User.email == ident)))
        if ident
        else None
    )
    if user is None or not user.active:
        # A keyed hash of the typed text (perhaps a password in the wrong box): equal texts
        # give equal hashes, so an administrator still sees probing; the object stays empty
        # so the log does not confirm an account either.
        record("password_reset.request", matched=False,
               identifier_hash=identifier_hash(ident[:64]))
        db.session.commit()
        return
    link = external_url(
        "auth.reset_password_page", token=make_link_token(user, LinkPurpose.PASSWORD_RESET)
    )
    with in_language_of(user):  # the account's language, not the requesting browser's
        body = render_template(
            "auth/password_reset_mail.txt", user=user, link=link, minutes=reset_link_minutes(),
            until=recipient_datetime(user, utcnow() + LinkPurpose.PASSWORD_RESET.max_age),
        )
        subject = gettext(RESET_SUBJECT)
    emailed = True
    try:
        send_mail(user.email, subject, body)
    except MailError as exc:
        emailed = False
        current_app.logger.warning("password reset e-mail for user %s not sent: %s", user.id, exc)
    record(
        "password_reset.request",
        object_type="user",
        object_id=user.id,
        matched=True,
        emailed=emailed,
    )
    db.session.commit()


def user_for_reset(token: str) -> User:
    try:
        return user_for_link(token, LinkPurpose.PASSWORD_RESET)
    except LinkError as exc:
        raise ResetLinkError(gettext(_REASONS[exc.problem]), exc.problem) from None


def reset_password(token: str, password: str) -> User:
    """Set the new password with a reset link: the link is used up, every session of the
    user ends, and the change is audited. Raises ResetLinkError or AccountError."""
    user = user_for_reset(token)
    check_password_policy(password, user.username, user.email, user.full_name)
    try:
        set_password(user, password, via=LinkPurpose.PASSWORD_RESET.value)
    except AccountError:
        db.session.rollback()
        raise
    return user
