"""Case imports as background jobs on a real Huey consumer (SQLite queue): the upload page
answers at once and a worker imports; the job page's status, per-file results and who may
see or cancel a job; a worker killed mid-job and another started finish the job with every
file imported exactly once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions
from app.cases.models import Case, CaseImage
from app.db_types import utcnow
from app.extensions import db
from app.jobs.case_import import start_path_import
from app.jobs.lifecycle import spool_dir
from app.jobs.models import Job, JobItem
from app.jobs.queue import BackgroundWorker, huey_of
from app.jobs.services import init_jobs
from tests.conftest import login, post_hand_built
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form

REPO = Path(__file__).resolve().parents[1]


def dicom(seed: int, size: int = 48) -> bytes:
    return to_bytes(cr_dataset(seed=seed, rows=size, columns=size))


@pytest.fixture
def queue(app: Flask, tmp_path: Path) -> str:
    """The app on a real SQLite queue (not immediate mode): nothing runs until a consumer
    takes the job."""
    url = f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    app.config["JOB_QUEUE_URL"] = url
    app.config["JOB_STALE_AFTER"] = 1
    init_jobs(app)
    return url


@pytest.fixture
def worker(app: Flask, queue: str) -> Iterator[BackgroundWorker]:
    running = BackgroundWorker(app).start()
    yield running
    running.stop()


@pytest.fixture
def trainer(login_as):
    return login_as(Role.TRAINER)


def upload(client, *files: tuple[bytes, str], **kwargs):
    return submit_form(client, "/cases/upload", button="Import", fields={
        "files": [(io.BytesIO(data), name) for data, name in files]}, **kwargs)


def wait_finished(client, job_url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"{job_url}/status").get_json()
        if status["finished"]:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{job_url} did not finish: {status}")


def test_upload_answers_at_once_and_a_worker_imports(app, client, trainer, queue):
    response = upload(client, (dicom(1), "one.dcm"), (b"not dicom", "notes.txt"))
    assert response.status_code == 303
    job_url = response.headers["Location"]
    assert job_url.startswith("/jobs/")
    # Answered before any import: the job waits for a worker, the files for it on disk.
    job = db.session.scalars(select(Job)).one()
    assert job.status == "queued" and db.session.scalar(select(func.count(Case.id))) == 0
    page = client.get(job_url)
    assert page.status_code == 200 and "queued" in page.get_data(as_text=True)
    assert "job_progress.js" in page.get_data(as_text=True)

    running = BackgroundWorker(app).start()
    try:
        status = wait_finished(client, job_url)
    finally:
        running.stop()
    assert status["status"] == "done" and (status["done"], status["total"]) == (2, 2)
    by_name = {item["name"]: item for item in status["items"]}
    assert by_name["one.dcm"]["status"] == "imported" and by_name["one.dcm"]["case_id"]
    assert by_name["notes.txt"]["status"] == "rejected"
    assert "not a DICOM file" in by_name["notes.txt"]["reason"]
    # Only the results not yet shown, when the page says how many it has.
    assert client.get(f"{job_url}/status?after=1").get_json()["items"][0]["position"] == 1
    html = client.get(job_url).get_data(as_text=True)
    assert html.count('data-testid="file-result"') == 2 and "De-identification:" in html
    # The uploaded originals are gone with the job's end; names are kept encrypted only.
    assert not spool_dir(job.id).exists()
    stored = db.session.scalars(select(JobItem.name_encrypted)).all()
    assert stored and not any("one.dcm" in value for value in stored)
    listing = client.get("/jobs/").get_data(as_text=True)
    assert f"Job {job.id}" in listing


def test_trainer_sees_own_jobs_admin_all_others_nothing(app, client, trainer, make_user,
                                                         queue, worker):
    job_url = upload(client, (dicom(2), "a.dcm")).headers["Location"]
    wait_finished(client, job_url)
    job_id = int(job_url.rsplit("/", 1)[1])

    other = app.test_client()
    login(other, make_user(Role.TRAINER).username)
    for path in (job_url, f"{job_url}/status"):
        refused = other.get(path)
        assert refused.status_code == 404
        assert f"There is no job {job_id} of yours" in refused.get_data(as_text=True)
    assert f"Job {job_id}" not in other.get("/jobs/").get_data(as_text=True)

    trainee = app.test_client()
    login(trainee, make_user(Role.TRAINEE_RADIOLOGIST).username)
    for path in ("/jobs/", job_url, f"{job_url}/status"):
        assert trainee.get(path).status_code == 403

    admin = app.test_client()
    login(admin, make_user(Role.ADMIN).username)
    listing = admin.get("/jobs/").get_data(as_text=True)
    assert "All jobs" in listing and f"Job {job_id}" in listing and trainer.username in listing
    assert admin.get(job_url).status_code == 200
    assert admin.get(f"{job_url}/status").get_json()["status"] == "done"


def test_admin_cancels_a_queued_job_and_no_worker_runs_it(app, client, trainer, make_user,
                                                         queue):
    job_url = upload(client, (dicom(3), "a.dcm")).headers["Location"]
    # The trainer is offered no cancel button, and a hand-built cancel is refused.
    assert "Cancel this job" not in client.get(job_url).get_data(as_text=True)
    assert post_hand_built(client, f"{job_url}/cancel", page=job_url).status_code == 403

    admin = app.test_client()
    login(admin, make_user(Role.ADMIN).username)
    response = submit_form(admin, job_url, button="Cancel this job", follow_redirects=True)
    assert response.status_code == 200 and "was cancelled" in response.get_data(as_text=True)
    job = db.session.scalars(select(Job)).one()
    db.session.refresh(job)
    assert job.status == "cancelled" and not spool_dir(job.id).exists()

    running = BackgroundWorker(app).start()
    try:
        time.sleep(1.5)
    finally:
        running.stop()
    db.session.refresh(job)
    assert job.status == "cancelled" and db.session.scalar(select(func.count(Case.id))) == 0
    # Cancelling again: only a queued job can be.
    again = post_hand_built(admin, f"{job_url}/cancel", page="/jobs/")
    assert again.status_code == 409
    assert "Only a queued job can be cancelled" in again.get_data(as_text=True)


def test_bad_requests_are_refused_with_a_reason(app, client, trainer, queue):
    empty = upload(client, (b"", "empty.dcm"))
    assert empty.status_code == 400
    assert "empty.dcm is empty: nothing was imported" in empty.get_data(as_text=True)

    not_zip = upload(client, (b"just some text", "studies.zip"))
    assert not_zip.status_code == 400
    assert "studies.zip is not a .zip archive" in not_zip.get_data(as_text=True)

    none = submit_form(client, "/cases/upload", button="Import", fields={})
    assert none.status_code == 400
    assert db.session.scalar(select(func.count(Job.id))) == 0  # nothing was queued

    unknown = client.get("/jobs/999999")
    assert unknown.status_code == 404 and "There is no job 999999" in unknown.get_data(
        as_text=True)
    assert client.get("/jobs/999999/status").status_code == 404
    job_url = upload(client, (dicom(4), "a.dcm")).headers["Location"]
    bad_after = client.get(f"{job_url}/status?after=-1")
    assert bad_after.status_code == 400
    assert "must be a whole number" in bad_after.get_data(as_text=True)


def test_an_archive_is_decompressed_once_counting_included(app, tmp_path, monkeypatch):
    """The job lists the archive to count its files first; only the import decompresses."""
    import zipfile

    from app.cases import ingest

    archive = tmp_path / "three.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for seed in (21, 22, 23):
            zf.writestr(f"{seed}.dcm", dicom(seed))
    reads: list[str] = []
    real_read = ingest.read_member

    def counted(zip_file, member, limits):
        reads.append(member.name)
        return real_read(zip_file, member, limits)

    monkeypatch.setattr(ingest, "read_member", counted)
    job = start_path_import([archive], actor=None, options=ImportOptions())
    db.session.refresh(job)
    assert job.status == "done" and (job.progress_total, job.progress_done) == (3, 3)
    assert sorted(reads) == ["21.dcm", "22.dcm", "23.dcm"]
    assert {i.status for i in db.session.scalars(select(JobItem))} == {"imported"}


def test_command_line_import_waits_for_its_job_on_the_worker(app, queue, worker, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(dicom(7))
    (folder / "b.txt").write_bytes(b"not dicom")
    result = app.test_cli_runner().invoke(args=["cases", "import", str(folder)])
    assert result.exit_code == 1, result.output  # one file refused
    assert "imported   " in result.output and "a.dcm -> case" in result.output
    assert "refused    " in result.output and "not a DICOM file" in result.output
    assert "1 imported, 0 duplicate, 1 refused" in result.output
    job = db.session.scalars(select(Job)).one()
    assert job.status == "done" and job.created_by_id is None and job.runs == 1


def test_the_demo_command_consumes_the_queue_while_it_serves(app, queue, monkeypatch,
                                                           tmp_path):
    """`cxr-academy demo` needs no separate worker: a job queued while it serves is done."""
    from app import cli as cli_module

    (tmp_path / "library" / "cases").mkdir(parents=True)
    app.config["DEMO_LIBRARY_PATH"] = str(tmp_path / "library")
    (tmp_path / "a.dcm").write_bytes(dicom(11))
    seen: dict[str, str] = {}

    def serve(host, port, application, **kwargs):
        with application.app_context():
            job = start_path_import([tmp_path / "a.dcm"], actor=None, options=ImportOptions())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                db.session.expire_all()
                seen["status"] = db.session.get(Job, job.id).status
                if seen["status"] in ("done", "failed"):
                    return
                time.sleep(0.2)

    monkeypatch.setattr(cli_module, "run_simple", serve)
    result = app.test_cli_runner().invoke(args=["demo", "--port", "5998"])
    assert result.exit_code == 0, result.output
    assert seen == {"status": "done"}


def test_a_job_that_fails_says_why_and_keeps_the_files_done(app, client, trainer,
                                                            monkeypatch):
    from app.jobs import services

    def broken(job):
        raise RuntimeError("the storage went away")

    monkeypatch.setitem(services.KINDS, "case_import",
                        services.KINDS["case_import"]._replace(run=broken))
    page = upload(client, (dicom(8), "a.dcm"), follow_redirects=True)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "failed" in html and "The job stopped on an unexpected error (RuntimeError)" in html
    job = db.session.scalars(select(Job)).one()
    assert job.status == "failed" and job.finished_at is not None
    assert not spool_dir(job.id).exists()


# ---- a worker killed mid-job -----------------------------------------------------------------


def _worker_process(app: Flask, queue: str) -> subprocess.Popen:
    cfg = app.config
    env = {
        **os.environ,
        "CXR_ACADEMY_INSTANCE_PATH": app.instance_path,
        "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": cfg["SQLALCHEMY_DATABASE_URI"],
        "CXR_ACADEMY_JOB_QUEUE_URL": queue,
        "CXR_ACADEMY_JOB_STALE_AFTER": "1",
        "CXR_ACADEMY_SECRET_KEY": cfg["SECRET_KEY"],
        "CXR_ACADEMY_DEID_SECRET": cfg["DEID_SECRET"],
        "CXR_ACADEMY_FIELD_ENCRYPTION_KEYS": ",".join(cfg["FIELD_ENCRYPTION_KEYS"]),
        "CXR_ACADEMY_IMAGE_STORAGE_PATH": cfg["IMAGE_STORAGE_PATH"],
    }
    # Its own process group: the kill takes the worker's sandboxed parsing child with it,
    # as a machine's restart would.
    # `cxr-academy worker`, from this checkout (python -c puts the working folder first).
    return subprocess.Popen([sys.executable, "-c", "from app.cli import main; main()", "worker"],
                            cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _job(job_id: int) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def kill_once_done(worker: subprocess.Popen, job_id: int, *, at_least: int) -> None:
    """Kill ``worker`` (SIGKILL, no clean-up of its own) as soon as job ``job_id`` has
    ``at_least`` units done: a worker lost mid-job."""
    try:
        deadline = time.monotonic() + 120
        while _job(job_id).progress_done < at_least:
            assert worker.poll() is None, worker.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)



def test_a_worker_killed_mid_job_and_another_started_import_every_file_once(
        app, queue, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    files = 12
    for n in range(files):
        (folder / f"{n:02}.dcm").write_bytes(dicom(100 + n, size=256))
    job_id = start_path_import([folder], actor=None, options=ImportOptions(source="test")).id

    kill_once_done(_worker_process(app, queue), job_id, at_least=2)
    interrupted = _job(job_id)
    assert interrupted.status == "running" and 2 <= interrupted.progress_done < files

    time.sleep(1.5)  # the heartbeat is now older than JOB_STALE_AFTER
    second = _worker_process(app, queue)
    try:
        deadline = time.monotonic() + 120
        while not _job(job_id).finished:
            assert time.monotonic() < deadline and second.poll() is None
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGINT)
        try:
            output = second.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
            output = second.communicate()[0]
    job = _job(job_id)
    assert job.status == "done", (job.error, output)
    assert job.runs == 2 and "Taking up again jobs whose worker stopped" in output
    items = db.session.scalars(select(JobItem).where(JobItem.job_id == job_id)
                               .order_by(JobItem.position)).all()
    assert [i.position for i in items] == list(range(files))
    assert [i.status for i in items] == ["imported"] * files
    assert job.progress_done == job.progress_total == files
    # Every file exactly once in the library: one image each, none twice.
    assert db.session.scalar(select(func.count(CaseImage.id))) == files
    assert len({i.image_id for i in items}) == files


def test_a_running_worker_takes_up_a_job_whose_worker_died(app, client, trainer, queue):
    job_url = upload(client, (dicom(9), "a.dcm")).headers["Location"]
    job = db.session.scalars(select(Job)).one()
    huey = huey_of(app)
    assert huey.dequeue() is not None  # a worker took the message, then died with it
    job.status = "running"
    job.heartbeat_at = utcnow()  # still beating when this worker starts: not taken up
    db.session.commit()
    running = BackgroundWorker(app).start()
    try:
        time.sleep(1)
        assert client.get(f"{job_url}/status").get_json()["done"] == 0
        job.heartbeat_at = utcnow() - timedelta(seconds=5)  # then the other worker dies
        db.session.commit()
        # The minutely check of the worker already running.
        app.extensions["huey_recover"].call_local()
        status = wait_finished(client, job_url)
    finally:
        running.stop()
    assert status["status"] == "done" and status["items"][0]["status"] == "imported"


def test_an_unknown_queue_address_stops_the_app_at_start(database_url, tmp_path):
    from app import create_app
    from tests.conftest import base_config

    with pytest.raises(ValueError, match="JOB_QUEUE_URL must be redis://"):
        create_app({**base_config(database_url, tmp_path), "JOB_QUEUE_URL": "amqp://queue"})
    # A good address opens nothing until a job is queued.
    create_app({**base_config(database_url, tmp_path),
                "JOB_QUEUE_URL": f"sqlite:///{tmp_path / 'q.sqlite3'}"})
    assert not (tmp_path / "q.sqlite3").exists()
