"""Telling trainees what happened to their certification when it was not their own doing
(a certificate issued or put under review after re-scoring, a lead's decision): a notice on
their "my certification" page, and an e-mail where a mail server is configured."""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from sqlalchemy import select

from app.auth.models import User
from app.certification.models import Certificate, CertificationNotice, Programme
from app.db_types import utcnow
from app.extensions import db
from app.mail import MailError, mail_configured, send_mail

SHOWN = 20  # notices on the page, newest first


def notify(
    user: User,
    subject: str,
    body: str,
    *,
    programme: Programme | None = None,
    certificate: Certificate | None = None,
) -> CertificationNotice:
    """Add a notice to the current transaction (the caller commits, then ``deliver``)."""
    notice = CertificationNotice(
        user=user,
        subject=subject[:200],
        body=body,
        programme_id=programme.id if programme else None,
        certificate_id=certificate.id if certificate else None,
    )
    db.session.add(notice)
    return notice


def deliver(notice_ids: Iterable[int]) -> tuple[int, int]:
    """E-mail committed notices to their trainees; (sent, failed). Without a mail server
    nothing is sent and the notices stay on the page. Sent after the commit, so that a slow
    or absent mail server never holds a transaction (and its locks) open; a notice whose
    e-mail failed keeps ``emailed_at`` empty."""
    if not mail_configured():
        return 0, 0
    sent = failed = 0
    for notice_id in notice_ids:
        notice = db.session.get(CertificationNotice, notice_id)
        if notice is None or notice.emailed_at is not None:
            continue
        try:
            send_mail(notice.user.email, notice.subject, notice.body)
        except MailError as exc:
            current_app.logger.warning("certification notice %s not e-mailed: %s",
                                       notice.id, exc)
            failed += 1
            continue
        notice.emailed_at = utcnow()
        db.session.commit()
        sent += 1
    return sent, failed


def notices_for(user: User) -> list[CertificationNotice]:
    return list(
        db.session.scalars(
            select(CertificationNotice)
            .where(CertificationNotice.user_id == user.id)
            .order_by(CertificationNotice.created_at.desc(), CertificationNotice.id.desc())
            .limit(SHOWN)
        )
    )
