"""Certificate expiry reminders as a job: app.certification.reminders.send_reminders run by
a worker, its sent and failed counts kept in the job's summary. The workers start one every
day by themselves (REMINDERS_HOUR, UTC); an administrator may start one at any time.

Taken up again after its worker died, the job simply runs again: each reminder is recorded
as sent in the transaction that follows the SMTP server's acceptance, and a reminder
recorded is never sent again."""

from __future__ import annotations

from datetime import datetime, time

from flask import Flask, current_app
from flask_babel import gettext
from sqlalchemy import select

from app.auth.models import User
from app.certification.reminders import send_reminders
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.jobs.lifecycle import JobError, finish, new_job, submit
from app.jobs.models import Job, JobKind, JobStatus
from app.jobs.queue import Periodic
from app.jobs.services import register_kind
from app.locking import lock_key
from app.mail import mail_configured

# English in the job's record; the administrator who asked reads it in their language.
NO_MAIL_SERVER = N_("No mail server is configured (MAIL_SERVER): no reminders were sent.")


class NoMailServer(JobError):
    """Nothing to send reminders with: this server's configuration, not the request, is
    what must change (409: the request is fine, the server's state refuses it)."""

    status = 409


def start_reminders(*, actor: User | None) -> Job:
    if not mail_configured():
        raise NoMailServer(gettext(NO_MAIL_SERVER))
    job = new_job(JobKind.REMINDERS, actor, {})
    submit(job)
    return job


def run_reminders(job: Job) -> None:
    if not mail_configured():
        finish(job, JobStatus.FAILED, NO_MAIL_SERVER)
        return
    job_id = job.id
    sent, failed = send_reminders()
    job = db.session.get_one(Job, job_id)
    job.summary = {"sent": sent, "failed": failed}
    job.progress_done = job.progress_total = sent + failed
    db.session.commit()


def summary_line(summary: dict[str, int]) -> str:
    """The outcome for the command line, in its language."""
    return gettext("%(sent)s reminders sent, %(failed)s failed (retried next run)",
                   sent=summary["sent"], failed=summary["failed"])


def start_daily_reminders() -> Job | None:
    """The day's run, queued by whichever worker comes first: every worker keeps the
    schedule (several servers share a Redis queue), and a second one finds the day's job
    already there. A day's job that failed is not repeated before the next day."""
    lock_key("job", 1)  # one worker decides at a time (held until commit)
    today = datetime.combine(utcnow().date(), time(), tzinfo=utcnow().tzinfo)
    already = db.session.scalar(select(Job.id).where(
        Job.kind == JobKind.REMINDERS.value, Job.created_by_id.is_(None),
        Job.created_at >= today).limit(1))
    if already is not None:
        db.session.commit()
        return None
    # new_job commits: the lock ends with the day's job recorded.
    job = new_job(JobKind.REMINDERS, None, {"daily": True})
    submit(job)
    current_app.logger.info("job %s: the day's expiry reminders", job.id)
    return job


def daily_reminders(app: Flask) -> Periodic:
    """The workers' daily schedule; a REMINDERS_HOUR that is no hour stops the app at start."""
    hour = app.config["REMINDERS_HOUR"]
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValueError(f"REMINDERS_HOUR must be an hour of the day (UTC), 0 to 23, not {hour!r}")
    return Periodic("daily_reminders", start_daily_reminders, minute="0", hour=str(hour))


def register_reminders() -> None:
    register_kind(JobKind.REMINDERS, run_reminders, N_("the reminders sent are recorded; the "
                  "others go out on the next run."), schedule=daily_reminders)
