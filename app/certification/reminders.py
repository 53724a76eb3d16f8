"""`flask --app app certs remind`, run daily: e-mail holders 90, 30 and 7 days before their
certificate expires and once after, each reminder once (recorded after the SMTP server took
it, so a failed send is retried the next day)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import force_locale, format_date, gettext
from sqlalchemy import select

from app.certification.models import Certificate, CertificateReminder
from app.db_types import utcnow
from app.extensions import db
from app.i18n import language_of
from app.mail import MailError, send_mail, timezone_of
from app.urls import external_url

THRESHOLDS = (7, 30, 90)  # days before expiry


def due_kind(certificate: Certificate, now: datetime) -> str | None:
    """The one reminder due now: the nearest threshold reached, or "expired"."""
    if now >= certificate.expires_at:
        return "expired"
    days_left = (certificate.expires_at - now).days
    for threshold in THRESHOLDS:
        if days_left < threshold:
            return str(threshold)
    return None


def _reminder(certificate: Certificate, kind: str) -> tuple[str, str]:
    """(subject, body) in the holder's language."""
    with force_locale(language_of(certificate.user)):
        # The day in the holder's time zone: the job that sends reminders has none of its own.
        expires = certificate.expires_at
        aware = expires if expires.tzinfo is not None else expires.replace(tzinfo=UTC)
        local = aware.astimezone(ZoneInfo(timezone_of(certificate.user)))
        body = render_template(
            "mail/certificate_reminder.txt",
            certificate=certificate,
            expires_on=format_date(local.date(), "long"),
            kind=kind,
            verify_url=external_url("verify.show", code=certificate.code),
        )
        subject = (
            gettext("Your CXR Academy certificate has expired")
            if kind == "expired"
            else gettext("Your CXR Academy certificate expires in under %(days)s days",
                         days=kind)
        )
    return subject, body


def send_reminders(now: datetime | None = None) -> tuple[int, int]:
    """(sent, failed)."""
    now = now or utcnow()
    sent = failed = 0
    certificates = db.session.scalars(
        select(Certificate).where(Certificate.revoked_at.is_(None)).order_by(Certificate.id)
    ).all()
    latest: dict[tuple[int, int], Certificate] = {}
    for certificate in certificates:  # a renewed certificate silences the one it replaces
        key = (certificate.user_id, certificate.programme_id)
        if key not in latest or certificate.expires_at > latest[key].expires_at:
            latest[key] = certificate
    for certificate in latest.values():
        kind = due_kind(certificate, now)
        if kind is None or db.session.get(CertificateReminder, (certificate.id, kind)):
            continue
        subject, body = _reminder(certificate, kind)
        try:
            send_mail(certificate.user.email, subject, body)
        except MailError:
            failed += 1
            continue
        db.session.add(CertificateReminder(certificate_id=certificate.id, kind=kind, sent_at=now))
        db.session.commit()
        sent += 1
    return sent, failed
