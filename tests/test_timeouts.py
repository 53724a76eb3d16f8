"""An exam past its time limit ends the moment anything reads it (result page, attempt list,
my certification, the lead's page of that reader, the exam page), with its scores and
certificate; the demo server ends the others by itself."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import app.cli as cli_module
from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.certification.models import Certificate
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.services import start_attempt
from tests.test_attempts import cases, exam, exam_cases  # noqa: F401 (fixtures)
from tests.test_certification import TB, _exercise, _take, programme  # noqa: F401


def _overdue_attempt(exercise, trainee, answers=TB):
    """An attempt started long enough ago that its time limit has passed, every case
    answered while there was time; nothing has ended it yet (no cron ran)."""
    started = utcnow() - timedelta(minutes=(exercise.time_limit_minutes or 10) + 5)
    attempt = start_attempt(exercise, trainee, now=started)
    for case_id in attempt.case_order:
        save_answer(attempt, trainee, case_id, answers, [], now=started + timedelta(minutes=1))
    assert attempt.state == AttemptState.IN_PROGRESS.value
    return attempt


def _state(attempt_id: int) -> Attempt:
    db.session.expire_all()
    return db.session.get(Attempt, attempt_id)


def _timed_out_once(attempt_id: int) -> None:
    attempt = _state(attempt_id)
    assert attempt.state == AttemptState.TIMED_OUT.value
    assert attempt.ended_at == attempt.deadline_at
    assert attempt.metrics is not None  # scored
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "attempt.timed_out")) == 1


def test_the_result_page_of_an_attempt_past_its_time_shows_the_result(client, exam, login_as):  # noqa: F811
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _overdue_attempt(exam, trainee)
    page = client.get(f"/training/attempts/{attempt.id}/result")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "still in progress" not in text
    assert f"Attempt {attempt.number}: timed out at" in text
    _timed_out_once(attempt.id)
    client.get(f"/training/attempts/{attempt.id}/result")  # read again: ended once
    _timed_out_once(attempt.id)


def test_the_exam_page_past_its_time_leads_to_the_result(client, exam, login_as):  # noqa: F811
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _overdue_attempt(exam, trainee)
    page = client.get(f"/training/attempts/{attempt.id}/1")
    assert page.status_code == 302
    assert page.headers["Location"].endswith(f"/training/attempts/{attempt.id}/result")
    _timed_out_once(attempt.id)


def test_the_attempt_list_ends_attempts_past_their_time(client, exam, login_as):  # noqa: F811
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _overdue_attempt(exam, trainee)
    assert client.get("/training/").status_code == 200
    _timed_out_once(attempt.id)


@pytest.fixture
def timed_programme(programme):  # noqa: F811
    _exercise(programme, "exam").time_limit_minutes = 10
    db.session.commit()
    return programme


def test_my_certification_ends_an_exam_past_its_time_and_shows_the_certificate(
        client, timed_programme, login_as):
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    _take(_exercise(timed_programme, "practice"), trainee, TB)
    attempt = _overdue_attempt(_exercise(timed_programme, "exam"), trainee)
    assert db.session.scalars(select(Certificate)).all() == []
    page = client.get("/certification/mine").get_data(as_text=True)
    _timed_out_once(attempt.id)
    [certificate] = db.session.scalars(select(Certificate)).all()
    assert certificate.code in page
    assert certificate.evidence["requirements"][1]["attempt_id"] == attempt.id


def test_the_leads_reader_page_ends_that_readers_attempts_past_their_time(
        client, exam, make_user, make_clinic, login_as):  # noqa: F811
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country="KE"))
    attempt = _overdue_attempt(exam, trainee)
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    page = client.get(f"/certification/readers/{trainee.id}")
    assert page.status_code == 200
    _timed_out_once(attempt.id)
    assert "timed out" in page.get_data(as_text=True)


def test_the_demo_servers_expiry_worker_ends_attempts_nobody_reads(app, exam, make_user):  # noqa: F811
    from app.demo import ExpiryWorker

    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = _overdue_attempt(exam, trainee)
    db.session.remove()
    worker = ExpiryWorker(app, interval=0.05).start()
    try:
        assert worker.ran.wait(60), "no pass of the expiry worker"
    finally:
        worker.stop()
    assert not worker.running
    _timed_out_once(attempt.id)


def test_the_demo_command_serves_with_the_expiry_worker_running(app, monkeypatch, tmp_path):
    """`cxr-academy demo` starts the worker with the server and stops it with the server."""
    (tmp_path / "cases").mkdir()  # an empty library: the serving is under test
    app.config["DEMO_LIBRARY_PATH"] = str(tmp_path)
    seen: dict[str, object] = {}

    def serve(host, port, application, **kwargs):
        alive = [t for t in threading.enumerate() if t.name == "attempt-expiry"]
        seen.update(host=host, workers=len(alive))

    monkeypatch.setattr(cli_module, "run_simple", serve)
    result = app.test_cli_runner().invoke(args=["demo", "--port", "5999"])
    assert result.exit_code == 0, result.output
    assert seen == {"host": "127.0.0.1", "workers": 1}
    assert not [t for t in threading.enumerate() if t.name == "attempt-expiry"]
