"""Library export as a background job: an administrator starts it from the jobs page (or
`cases export-library`), a worker on a real SQLite queue writes the export as one zip in
the job's folder, downloadable by the job's owner and administrators for
LIBRARY_EXPORT_KEEP_DAYS days, then removed by the workers' periodic clean-up."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.library_files import load_library
from app.cases.models import Case
from app.db_types import utcnow
from app.extensions import db
from app.jobs.lifecycle import spool_dir
from app.jobs.models import Job
from app.quizzes.rescoring_job import start_rescoring
from tests.conftest import login, post_hand_built
from tests.forms import submit_form
from tests.test_jobs import dicom, queue, wait_finished, worker  # noqa: F401 (fixtures)
from tests.test_library_files import small_library  # noqa: F401 (fixture)
from tests.test_security_log import of


@pytest.fixture
def library(app, small_library):  # noqa: F811
    """Three published cases with their reference reads."""
    assert [r.status for r in load_library(small_library)] == ["loaded"] * 3
    return db.session.scalars(select(Case).order_by(Case.id)).all()


def _jobs() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def _export(client, status: str = "published"):
    return submit_form(client, "/jobs/", button="Export the library", fields={"status": status})


def _zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return sorted(archive.namelist())


def test_an_admin_exports_from_the_jobs_page_and_downloads_the_zip(
        app, client, login_as, library, queue, worker):  # noqa: F811
    admin = login_as(Role.ADMIN)
    response = _export(client)
    assert response.status_code == 303
    job_url = response.headers["Location"]
    status = wait_finished(client, job_url)
    assert status["kind"] == "library_export" and status["status"] == "done"
    assert (status["done"], status["total"]) == (3, 3)

    job = db.session.get_one(Job, int(job_url.rsplit("/", 1)[1]))
    db.session.refresh(job)
    assert job.created_by_id == admin.id
    assert job.summary is not None and (job.summary["cases"], job.summary["status"]) == (
        3, "published")
    html = client.get(job_url).get_data(as_text=True)
    assert "3 cases exported (published)" in html and "3 / 3</span> cases" in html
    assert f'href="/jobs/{job.id}/download"' in html and "kept until" in html

    download = client.get(f"/jobs/{job.id}/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert f"case-library-job-{job.id}.zip" in download.headers["Content-Disposition"]
    names = _zip_names(download.data)
    assert [n for n in names if n.startswith("cases/")] == [
        f"cases/case-{c.id:06d}.json" for c in library]
    assert len([n for n in names if n.startswith("images/") and n.endswith(".dcm")]) == 3
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        spec = json.loads(archive.read(f"cases/case-{library[0].id:06d}.json"))
    assert spec["status"] == "published" and spec["reference"]["scheme"]
    # Kept after the job ended; the security log has the export and the download.
    assert (spool_dir(job.id) / "case-library.zip").is_file()
    exports = [line for line in of(app, "export") if line.get("job") == job.id]
    assert [(line["format"], line["outcome"]) for line in exports] == [
        ("case library", "success"), ("case library zip", "success")]
    assert exports[0]["cases"] == 3 and exports[0]["user_id"] == admin.id


def test_only_the_owner_and_admins_download_trainees_are_refused_bad_input_queues_nothing(
        app, client, login_as, make_user, library, queue, worker):  # noqa: F811
    admin = login_as(Role.ADMIN)
    job_url = _export(client, "all").headers["Location"]
    wait_finished(client, job_url)
    download = f"{job_url}/download"

    other_admin = app.test_client()
    login(other_admin, make_user(Role.ADMIN).username)
    assert other_admin.get(download).status_code == 200
    listing = other_admin.get("/jobs/").get_data(as_text=True)  # every kind, everyone's
    assert "All jobs" in listing and "Library export" in listing and admin.username in listing
    trainer = app.test_client()
    login(trainer, make_user(Role.TRAINER).username)
    refused = trainer.get(download)
    assert refused.status_code == 404 and "There is no job" in refused.get_data(as_text=True)
    assert "Export the library" not in trainer.get("/jobs/").get_data(as_text=True)
    forbidden = post_hand_built(trainer, "/jobs/library-export", {"status": "all"},
                                page="/jobs/")
    assert forbidden.status_code == 403
    trainee = app.test_client()
    login(trainee, make_user(Role.TRAINEE_RADIOLOGIST).username)
    assert trainee.get(download).status_code == 403

    before = _jobs()
    bad = post_hand_built(client, "/jobs/library-export", {"status": "everything"},
                          page="/jobs/")
    assert bad.status_code == 400
    assert "Export cases of one status" in bad.get_data(as_text=True)
    expired = client.post("/jobs/library-export", data={"status": "all", "csrf_token": "x"})
    assert expired.status_code == 400
    assert _jobs() == before  # nothing queued
    # A job of another kind has nothing to download.
    other_kind = start_rescoring(None, actor=admin)
    nothing = client.get(f"/jobs/{other_kind.id}/download")
    assert nothing.status_code == 404 and "has no file to download" in nothing.get_data(
        as_text=True)
    assert client.get("/jobs/999999/download").status_code == 404


def test_the_zip_is_kept_its_days_then_the_workers_clean_up_removes_it(
        app, client, login_as, library, queue, worker):  # noqa: F811
    app.config["LIBRARY_EXPORT_KEEP_DAYS"] = 2
    login_as(Role.ADMIN)
    old_url = _export(client).headers["Location"]
    wait_finished(client, old_url)
    new_url = _export(client).headers["Location"]
    wait_finished(client, new_url)
    old = db.session.get_one(Job, int(old_url.rsplit("/", 1)[1]))
    new = db.session.get_one(Job, int(new_url.rsplit("/", 1)[1]))
    db.session.refresh(old)
    old.finished_at = utcnow() - timedelta(days=2, minutes=1)
    db.session.commit()

    gone = client.get(f"{old_url}/download")
    assert gone.status_code == 410
    assert "exports are kept 2 days" in gone.get_data(as_text=True)
    assert "The zip was removed" in client.get(old_url).get_data(as_text=True)
    assert spool_dir(old.id).exists()  # until the clean-up runs
    app.extensions["huey_periodic_remove_expired_exports"].call_local()
    assert not spool_dir(old.id).exists()
    assert (spool_dir(new.id) / "case-library.zip").is_file()  # within its days: kept
    assert client.get(f"{new_url}/download").status_code == 200


def test_the_command_waits_for_the_job_and_writes_the_folder_as_before(
        app, library, queue, worker, tmp_path: Path):  # noqa: F811
    folder = tmp_path / "exported"
    result = app.test_cli_runner().invoke(args=["cases", "export-library", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"3 case files written to {folder}" in result.output
    assert len(list((folder / "cases").glob("*.json"))) == 3
    assert len(list((folder / "images").glob("*.dcm"))) == 3
    job = db.session.scalars(select(Job)).one()
    assert (job.kind, job.status, job.created_by_id) == ("library_export", "done", None)
    [line] = [line for line in of(app, "export") if line.get("job") == job.id]
    assert line["source"] == "command line" and line["folder"] == str(folder)

    # A case without a reference read: refused as before, nothing written, the job failed.
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.dcm").write_bytes(dicom(11))
    assert app.test_cli_runner().invoke(
        args=["cases", "import", str(tmp_path / "scans")]).exit_code == 0
    again = tmp_path / "again"
    failed = app.test_cli_runner().invoke(
        args=["cases", "export-library", str(again), "--status", "all"])
    assert failed.exit_code != 0 and "has no reference read to export" in failed.output
    assert not list(again.rglob("*.json"))
    job = db.session.scalars(select(Job).order_by(Job.id.desc())).first()
    assert job is not None and job.status == "failed" and not spool_dir(job.id).exists()

    jobs = _jobs()
    refused = app.test_cli_runner().invoke(
        args=["cases", "export-library", str(folder / "cases" / next(
            (folder / "cases").iterdir()).name / "deeper")])
    assert refused.exit_code != 0 and "cannot write to" in refused.output
    bad = app.test_cli_runner().invoke(
        args=["cases", "export-library", str(again), "--status", "everything"])
    assert bad.exit_code != 0 and "Invalid value for '--status'" in bad.output
    assert _jobs() == jobs  # nothing queued


def test_an_export_that_cannot_be_written_fails_saying_why(
        app, client, login_as, library, queue, worker, tmp_path: Path):  # noqa: F811
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the jobs' folder should be")
    app.config["JOB_SPOOL_PATH"] = str(blocked)
    login_as(Role.ADMIN)
    job_url = _export(client).headers["Location"]
    status = wait_finished(client, job_url)
    assert status["status"] == "failed"
    assert "Nothing was exported: the export could not be written" in status["error"]
    assert client.get(f"{job_url}/download").status_code == 404
    [line] = [line for line in of(app, "export")
              if line.get("job") == int(job_url.rsplit("/", 1)[1])]
    assert line["outcome"] == "failure" and "could not be written" in line["reason"]
