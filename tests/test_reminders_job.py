"""Expiry reminders as a background job: the workers queue the day's run by themselves (a
Huey periodic task, once a day whatever the number of workers), an administrator may
"Send reminders now" from the jobs page, and `certs remind` queues the job and waits; each
run's sent and failed counts are its summary. Without a mail server nothing is queued from
the page or the command line, and the day's run fails saying why."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.certification.models import Certificate
from app.db_types import utcnow
from app.extensions import db
from app.jobs.models import Job
from app.jobs.queue import huey_of
from tests.conftest import login, post_hand_built
from tests.forms import submit_form
from tests.realservers import free_port
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import TB, _exercise, _take, programme  # noqa: F401
from tests.test_jobs import queue, wait_finished, worker  # noqa: F401 (fixtures)
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)


@pytest.fixture
def due(programme, make_user):  # noqa: F811
    """A certificate expiring in 20 days: its 30-day reminder is due."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Ada Reader")
    _take(_exercise(programme, "practice"), trainee, TB)
    _take(_exercise(programme, "exam"), trainee, TB)
    certificate = db.session.scalars(select(Certificate)).one()
    certificate.expires_at = utcnow() + timedelta(days=20)
    db.session.commit()
    return trainee


def _jobs() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def _job(url: str) -> Job:
    db.session.expire_all()
    return db.session.get_one(Job, int(url.rsplit("/", 1)[1]))


def test_an_admin_sends_reminders_now_from_the_jobs_page(
        app, client, login_as, make_user, due, smtp_inbox, queue, worker):  # noqa: F811
    login_as(Role.ADMIN)
    response = submit_form(client, "/jobs/", button="Send reminders now")
    assert response.status_code == 303
    job_url = response.headers["Location"]
    status = wait_finished(client, job_url)
    assert status["kind"] == "reminders" and status["status"] == "done"
    assert (status["done"], status["total"]) == (1, 1)
    assert _job(job_url).summary == {"sent": 1, "failed": 0}
    [message] = smtp_inbox.messages
    assert message["To"] == due.email and "under 30 days" in message["Subject"]
    html = client.get(job_url).get_data(as_text=True)
    assert "1 reminders sent, 0 failed." in html and "1 / 1</span> reminders" in html
    assert "Expiry reminders" in client.get("/jobs/").get_data(as_text=True)

    # Sent once: the next run has nothing to send.
    again = submit_form(client, "/jobs/", button="Send reminders now").headers["Location"]
    wait_finished(client, again)
    assert _job(again).summary == {"sent": 0, "failed": 0} and len(smtp_inbox.messages) == 1

    trainer = app.test_client()
    login(trainer, make_user(Role.TRAINER).username)
    assert trainer.get(job_url).status_code == 404
    assert "Send reminders now" not in trainer.get("/jobs/").get_data(as_text=True)
    refused = post_hand_built(trainer, "/certification/reminders/send", page="/jobs/")
    assert refused.status_code == 403
    trainee = app.test_client()
    login(trainee, due.username)
    assert trainee.get(job_url).status_code == 403


def test_without_a_mail_server_nothing_is_queued_and_the_days_run_says_why(
        app, client, login_as, due, queue):  # noqa: F811
    login_as(Role.ADMIN)
    refused = submit_form(client, "/jobs/", button="Send reminders now")
    assert refused.status_code == 409
    assert "No mail server is configured (MAIL_SERVER)" in refused.get_data(as_text=True)
    result = app.test_cli_runner().invoke(args=["certs", "remind"])
    assert result.exit_code != 0 and "no SMTP server is configured" in result.output
    assert _jobs() == 0

    huey_of(app)
    app.extensions["huey_periodic_daily_reminders"].call_local()
    job = db.session.scalars(select(Job)).one()
    assert job.kind == "reminders" and job.created_by_id is None
    from app.jobs.services import run_job

    run_job(job.id)  # a worker takes it
    db.session.expire_all()
    job = db.session.get_one(Job, job.id)
    assert job.status == "failed" and "No mail server is configured" in (job.error or "")
    assert "No mail server is configured" in client.get(f"/jobs/{job.id}").get_data(
        as_text=True)


def test_the_workers_send_the_days_reminders_once_by_themselves(
        app, client, login_as, due, smtp_inbox, queue, worker):  # noqa: F811
    task = app.extensions["huey_periodic_daily_reminders"]
    due_at = task.task_class().validate_datetime
    hour = app.config["REMINDERS_HOUR"]
    # Once a day, at the configured hour (Huey's clock: UTC).
    assert huey_of(app).utc
    assert due_at(datetime(2026, 3, 1, hour, 0))
    assert not due_at(datetime(2026, 3, 1, hour, 1))
    assert not due_at(datetime(2026, 3, 1, (hour + 1) % 24, 0))

    # Two workers keeping the schedule in the same minute: one job.
    task.call_local()
    task.call_local()
    [job] = db.session.scalars(select(Job)).all()
    login_as(Role.ADMIN)
    wait_finished(client, f"/jobs/{job.id}")
    assert _job(f"/jobs/{job.id}").summary == {"sent": 1, "failed": 0}
    assert len(smtp_inbox.messages) == 1
    # The day's job is there: the schedule queues no other today.
    task.call_local()
    assert _jobs() == 1


def test_the_command_waits_for_the_job_with_the_same_output_and_exit_codes(
        app, due, smtp_inbox, queue, worker):  # noqa: F811
    runner = app.test_cli_runner()
    result = runner.invoke(args=["certs", "remind"])
    assert result.exit_code == 0, result.output
    assert "1 reminders sent, 0 failed (retried next run)" in result.output
    job = db.session.scalars(select(Job)).one()
    assert (job.kind, job.status, job.created_by_id) == ("reminders", "done", None)

    # The SMTP server away: the reminder fails, is retried next run, the exit code says so.
    certificate = db.session.scalars(select(Certificate)).one()
    certificate.expires_at = utcnow() + timedelta(days=5)  # the 7-day reminder is due
    db.session.commit()
    app.config["MAIL_PORT"] = free_port()
    failed = runner.invoke(args=["certs", "remind"])
    assert failed.exit_code == 1
    assert "0 reminders sent, 1 failed (retried next run)" in failed.output


@pytest.mark.parametrize(("key", "value", "message"), [
    ("REMINDERS_HOUR", 24, "REMINDERS_HOUR must be an hour of the day"),
    ("REMINDERS_HOUR", "six", "REMINDERS_HOUR must be an hour of the day"),
    ("LIBRARY_EXPORT_KEEP_DAYS", 0, "LIBRARY_EXPORT_KEEP_DAYS must be a number of days"),
])
def test_a_schedule_setting_out_of_range_stops_the_app_at_start(database_url, tmp_path,
                                                                key, value, message):
    from app import create_app
    from tests.conftest import base_config

    with pytest.raises(ValueError, match=message):
        create_app({**base_config(database_url, tmp_path), key: value})
