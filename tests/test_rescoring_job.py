"""Re-scoring as a background job: started with the exercise statistics page's button (or
`quizzes rescore`), run by a worker on a real SQLite queue, progress counted in attempts,
the outcome (attempts, changed verdicts, what followed for certificates) on the job's
page; a job whose worker died is taken up again and ends with the same outcome, every
certificate listed once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.certification.models import CertificateReview
from app.db_types import utcnow
from app.extensions import db
from app.jobs.models import Job, JobVerdictChange
from app.jobs.queue import BackgroundWorker, huey_of
from app.jobs.services import run_job
from app.quizzes.rescoring_job import start_rescoring
from tests.conftest import login, post_hand_built
from tests.forms import submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_jobs import queue, wait_finished, worker  # noqa: F401 (fixtures)
from tests.test_rescore_certificates import (
    NORMAL,
    _by_title,
    _certified,
    _correct_reference,
    programme,  # noqa: F401 (fixture)
)


@pytest.fixture
def three_certified(programme, cases, make_user, make_clinic):  # noqa: F811
    """Three certified trainees; then case 1's reference read is corrected, so each exam
    attempt (a TB read of case 1) fails when re-scored."""
    trainees = [_certified(make_user, make_clinic) for _ in range(3)]
    _correct_reference(cases[0], NORMAL)
    return trainees


def _jobs() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def test_the_exercise_page_starts_a_rescoring_a_worker_runs(
        app, client, login_as, three_certified, queue, worker):  # noqa: F811
    login_as(Role.TRAINER)
    exam = _by_title("Exam")
    page = f"/training/manage/{exam.id}/statistics"
    response = submit_form(client, page, button="Re-score ended attempts")
    assert response.status_code == 303
    job_url = response.headers["Location"]
    assert job_url.startswith("/jobs/")

    status = wait_finished(client, job_url)
    assert status["kind"] == "rescoring" and status["status"] == "done"
    assert (status["done"], status["total"]) == (3, 3)  # the exam's three attempts
    job = db.session.get_one(Job, int(job_url.rsplit("/", 1)[1]))
    db.session.refresh(job)
    assert job.summary is not None
    assert (job.summary["exercise_id"], job.summary["attempts"], job.summary["changed"]) == (
        exam.id, 3, 3)
    assert len([line for line in job.summary["consequences"]
                if "listed for the programme lead" in line]) == 3
    html = client.get(job_url).get_data(as_text=True)
    assert "3 attempts re-scored, 3 with a changed pass/fail verdict" in html
    assert "3 / 3</span> attempts" in html and 'data-testid="file-result"' not in html
    assert "listed for the programme lead" in html
    listing = client.get("/jobs/").get_data(as_text=True)
    assert f"Job {job.id}" in listing and "Re-scoring" in listing and "3 / 3 attempts" in listing
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 3
    # The page's script and an API client read the same summary with the status.
    assert status["summary"] == job.summary
    api = client.get(f"/api/v1/jobs/{job.id}").get_json()
    assert api["summary"] == job.summary
    [listed] = [j for j in client.get("/api/v1/jobs").get_json() if j["id"] == job.id]
    assert listed["summary"]["attempts"] == 3


def test_others_see_nothing_trainees_are_refused_unknown_exercises_queue_nothing(
        app, client, login_as, make_user, three_certified, queue):  # noqa: F811
    login_as(Role.TRAINER)
    exam = _by_title("Exam")
    job_url = submit_form(client, f"/training/manage/{exam.id}/statistics",
                          button="Re-score ended attempts").headers["Location"]

    other = app.test_client()
    login(other, make_user(Role.TRAINER).username)
    assert other.get(job_url).status_code == 404
    assert other.get(f"{job_url}/status").status_code == 404

    trainee = app.test_client()
    login(trainee, make_user(Role.TRAINEE_RADIOLOGIST).username)
    assert trainee.get(job_url).status_code == 403
    refused = post_hand_built(trainee, f"/training/manage/{exam.id}/rescore", page="/training/")
    assert refused.status_code == 403

    before = _jobs()
    unknown = post_hand_built(client, "/training/manage/4040/rescore",
                              page=f"/training/manage/{exam.id}/statistics")
    assert unknown.status_code == 404
    assert "There is no exercise 4040" in unknown.get_data(as_text=True)
    expired = client.post(f"/training/manage/{exam.id}/rescore", data={"csrf_token": "stale"})
    assert expired.status_code == 400 and "security token" in expired.get_data(as_text=True)
    assert _jobs() == before  # nothing queued

    admin = app.test_client()
    login(admin, make_user(Role.ADMIN).username)
    assert admin.get(job_url).status_code == 200


def test_the_command_waits_for_the_job_and_prints_as_before(
        app, three_certified, queue, worker):  # noqa: F811
    result = app.test_cli_runner().invoke(args=["quizzes", "rescore"])
    assert result.exit_code == 0, result.output
    # Practice and exam attempts of three trainees; the exam verdicts changed.
    assert "6 attempts re-scored, 3 with a changed pass/fail verdict" in result.output
    assert result.output.count("listed for the programme lead") == 3
    job = db.session.scalars(select(Job)).one()
    assert job.kind == "rescoring" and job.status == "done" and job.created_by_id is None
    assert (job.progress_done, job.progress_total) == (6, 6)

    unknown = app.test_cli_runner().invoke(args=["quizzes", "rescore", "--exercise", "4040"])
    assert unknown.exit_code != 0 and "there is no exercise 4040" in unknown.output
    assert _jobs() == 1  # nothing more queued


class WorkerKilled(BaseException):
    """The worker's process ending mid-job (not an error the job could record)."""


def test_a_rescoring_whose_worker_died_is_taken_up_and_ends_the_same(
        app, client, login_as, three_certified, queue, monkeypatch):  # noqa: F811
    from app.quizzes import rescoring

    # One attempt per transaction in this process, to lose a run between two committed
    # transactions (a process of a shared run that dies is tested below).
    monkeypatch.setattr(rescoring, "BATCH", 1)
    app.config["RESCORING_PROCESSES"] = 1
    trainer = login_as(Role.TRAINER)
    exam = _by_title("Exam")
    job = start_rescoring(exam.id, actor=trainer)
    job_id = job.id

    real_finalise = rescoring.finalise
    finalised = []

    def finalise_then_die(attempt, **options):
        if len(finalised) == 2:
            raise WorkerKilled
        finalised.append(attempt.id)
        return real_finalise(attempt, **options)

    monkeypatch.setattr(rescoring, "finalise", finalise_then_die)
    assert huey_of(app).dequeue() is not None  # a worker takes the message...
    with pytest.raises(WorkerKilled):
        run_job(job_id)  # ... and dies with it, two attempts in
    db.session.rollback()
    monkeypatch.setattr(rescoring, "finalise", real_finalise)

    db.session.expire_all()
    job = db.session.get_one(Job, job_id)
    # Two attempts re-scored and counted, each with its verdict change, in its batch's
    # transaction; the third neither.
    assert (job.status, job.progress_done, job.progress_total) == ("running", 2, 3)
    kept = db.session.scalars(select(JobVerdictChange).where(JobVerdictChange.job_id == job_id)
                              .order_by(JobVerdictChange.attempt_id)).all()
    assert [(c.attempt_id, c.passed_before, c.passed_after) for c in kept] == [
        (attempt_id, True, False) for attempt_id in finalised]
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 0

    job.heartbeat_at = utcnow() - timedelta(seconds=5)  # it beats no more
    db.session.commit()
    running = BackgroundWorker(app).start()  # a worker starting takes it up
    try:
        status = wait_finished(client, f"/jobs/{job_id}")
    finally:
        running.stop()
    db.session.expire_all()
    job = db.session.get_one(Job, job_id)
    assert status["status"] == "done" and job.runs == 2
    assert (job.progress_done, job.progress_total) == (3, 3)
    # The verdicts the lost run changed are not lost: the same outcome as one run.
    assert (job.summary["attempts"], job.summary["changed"]) == (3, 3)
    assert len([line for line in job.summary["consequences"]
                if "listed for the programme lead" in line]) == 3
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 3


def test_changes_of_a_lost_run_and_the_run_that_finished_it_merge_per_attempt():
    from app.quizzes.results import VerdictChange, merge_changes

    earlier = [VerdictChange(1, 10, 5, True, False), VerdictChange(2, 11, 5, False, True)]
    later = [VerdictChange(2, 11, 5, True, False),  # changed back: no change in the end
             VerdictChange(3, 12, 5, None, True)]
    assert merge_changes(earlier, later) == [VerdictChange(1, 10, 5, True, False),
                                             VerdictChange(3, 12, 5, None, True)]
    assert merge_changes([], later) == later and merge_changes(earlier, []) == earlier


def test_a_rescoring_shared_between_processes_counts_every_attempt_once(
        app, client, login_as, three_certified, queue, worker, monkeypatch):  # noqa: F811
    """One attempt per batch, two processes (forked on PostgreSQL): the worker's job counts
    each attempt and keeps each verdict change once, and the job's own row stays usable."""
    from app.quizzes import rescoring

    monkeypatch.setattr(rescoring, "BATCH", 1)
    app.config["RESCORING_PROCESSES"] = 2
    trainer = login_as(Role.TRAINER)
    job = start_rescoring(_by_title("Exam").id, actor=trainer)
    status = wait_finished(client, f"/jobs/{job.id}")
    assert status["status"] == "done", status["error"]
    assert (status["done"], status["total"]) == (3, 3)
    assert (status["summary"]["attempts"], status["summary"]["changed"]) == (3, 3)
    assert db.session.scalar(select(func.count(JobVerdictChange.id)).where(
        JobVerdictChange.job_id == job.id)) == 3
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 3
