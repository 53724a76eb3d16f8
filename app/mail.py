"""Outgoing e-mail through the SMTP server configured for the install.

Written on the standard library's smtplib rather than Flask-Mail: Flask-Mail (0.10) has no
connection timeout, and a blackholed SMTP server must not hang a web request.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from flask import current_app
from flask_babel import force_locale

from app.i18n import country_timezone, is_timezone_name, language_of


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server."""


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


@contextmanager
def in_language_of(recipient: Any) -> Iterator[str]:
    """Texts written inside (subject, body) are in the recipient's language, whoever's
    request sends them: an administrator in Paris invites a radiologist in Lima in Spanish."""
    language = language_of(recipient)
    with force_locale(language):
        yield language


def timezone_of(recipient: Any) -> str:
    """The recipient's time zone: their setting, else their clinic's country's, else UTC."""
    if recipient.timezone and is_timezone_name(recipient.timezone):
        return str(recipient.timezone)
    clinic = recipient.clinic
    return country_timezone(clinic.country_code if clinic is not None else None)


def recipient_datetime(recipient: Any, moment: datetime) -> str:
    """``moment`` as the recipient reads it: their language, their zone, with its offset
    (the reader's clock and the sender's may differ)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    zone, language = ZoneInfo(timezone_of(recipient)), language_of(recipient)
    local = aware.astimezone(zone)
    day = format_date(local.date(), "long", locale=language)
    time = format_time(local, "short", tzinfo=zone, locale=language)
    pattern = Locale.parse(language).datetime_formats["long"]
    offset = format_datetime(local, "ZZZZ", tzinfo=zone, locale=language)
    return f"{pattern.format(time, day)} {offset}"  # as the pages write it (app.i18n)


def send_mail(to: str, subject: str, body: str) -> None:
    """Send a plain-text message; raises MailError when the SMTP server refuses or is away."""
    cfg = current_app.config
    message = EmailMessage()
    message["From"] = cfg["MAIL_SENDER"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)

    host, port, timeout = cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), float(cfg["MAIL_TIMEOUT"])
    try:
        if cfg["MAIL_USE_SSL"]:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if cfg["MAIL_USE_TLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.get("MAIL_USERNAME"):
                smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"] or "")
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        # The reason names the server problem only: never the recipient or the body.
        raise MailError(f"{type(exc).__name__}: {exc}") from None
