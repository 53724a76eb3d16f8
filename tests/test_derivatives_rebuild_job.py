"""Rebuilding the images' display derivatives as a background job: an administrator starts
it from the jobs page (or `cases rebuild-derivatives --background`), a worker on a real
SQLite queue rebuilds image by image with its progress shown, and it may be run again."""

from __future__ import annotations

from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.models import CaseImage
from app.cases.storage import CURRENT_FILES, DICOM_FILE, LEGACY_FULL_FILE, image_store
from app.extensions import db
from app.jobs.models import Job
from app.jobs.services import run_job
from tests.conftest import login, post_hand_built
from tests.forms import submit_form
from tests.test_jobs import queue, wait_finished, worker  # noqa: F401 (fixtures)
from tests.test_rebuild_derivatives import files_of, import_image, make_legacy

BUTTON = "Rebuild image derivatives"


def _legacy_images(*seeds: int) -> list[int]:
    ids = []
    for seed in seeds:
        image = import_image(seed, rows=60 + seed, columns=50)
        make_legacy(image)
        ids.append(image.id)
    return ids


def _image(image_id: int) -> CaseImage:
    db.session.expire_all()
    return db.session.get_one(CaseImage, image_id)


def _jobs() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def test_an_admin_rebuilds_from_the_jobs_page_through_a_worker_and_again(
        app, client, login_as, queue, worker):  # noqa: F811
    ids = _legacy_images(1, 2)
    admin = login_as(Role.ADMIN)
    response = submit_form(client, "/jobs/", button=BUTTON)
    assert response.status_code == 303
    job_url = response.headers["Location"]
    status = wait_finished(client, job_url)
    assert (status["kind"], status["status"]) == ("derivatives_rebuild", "done")
    assert (status["done"], status["total"]) == (2, 2)
    assert status["summary"]["rebuilt"] == 2 and status["summary"]["failed"] == 0
    for image_id in ids:
        image = _image(image_id)
        assert image.version == 2 and "exact" in image.sizes
        assert files_of(image) == sorted(CURRENT_FILES)  # the 16-bit PNG is gone
    job = db.session.get_one(Job, int(job_url.rsplit("/", 1)[1]))
    assert job.created_by_id == admin.id
    html = client.get(job_url).get_data(as_text=True)
    assert "Image derivatives rebuild" in html
    assert "2 images rebuilt, 0 already current, 0 failed" in html
    assert "2 / 2</span> images" in html
    assert "Image derivatives rebuild" in client.get("/jobs/").get_data(as_text=True)

    # Run again: nothing left to do; with "every image" each is re-made once more.
    again = wait_finished(client, submit_form(client, "/jobs/", button=BUTTON)
                          .headers["Location"])
    assert again["status"] == "done"
    assert (again["summary"]["rebuilt"], again["summary"]["skipped"]) == (0, 2)
    every = wait_finished(client, submit_form(client, "/jobs/", button=BUTTON,
                                              fields={"every": True}).headers["Location"])
    assert (every["summary"]["rebuilt"], every["summary"]["every"]) == (2, True)
    assert [_image(i).version for i in ids] == [3, 3]


def test_an_image_that_cannot_be_rebuilt_is_named_and_the_others_are_done(
        app, client, login_as, queue, worker):  # noqa: F811
    broken, other = _legacy_images(3, 4)
    image_store().remove(_image(broken).storage_key, DICOM_FILE)
    login_as(Role.ADMIN)
    job_url = submit_form(client, "/jobs/", button=BUTTON).headers["Location"]
    status = wait_finished(client, job_url)
    assert status["status"] == "done" and (status["done"], status["total"]) == (2, 2)
    assert status["summary"]["failed"] == 1
    [failure] = status["summary"]["failures"]
    assert failure["image_id"] == broken
    assert "a stored file could not be read" in failure["reason"]
    html = client.get(job_url).get_data(as_text=True)
    assert f"Image {broken}: a stored file could not be read" in html
    assert LEGACY_FULL_FILE in files_of(_image(broken))  # untouched: still viewable
    assert "exact" in _image(other).sizes


def test_only_administrators_start_a_rebuild(app, client, make_user, queue):  # noqa: F811
    trainer = app.test_client()
    login(trainer, make_user(Role.TRAINER).username)
    assert BUTTON not in trainer.get("/jobs/").get_data(as_text=True)
    forbidden = post_hand_built(trainer, "/jobs/derivatives-rebuild", page="/jobs/")
    assert forbidden.status_code == 403
    admin = app.test_client()
    login(admin, make_user(Role.ADMIN).username)
    expired = admin.post("/jobs/derivatives-rebuild", data={})
    assert expired.status_code == 400  # no CSRF token: refused, nothing queued
    assert _jobs() == 0


def test_the_command_line_queues_it_with_background_and_a_worker_takes_it_up(
        app, queue):  # noqa: F811
    [image_id] = _legacy_images(5)
    result = app.test_cli_runner().invoke(args=["cases", "rebuild-derivatives",
                                                "--background"])
    assert result.exit_code == 0, result.output
    job = db.session.scalars(select(Job)).one()
    assert f"Job {job.id} queued" in result.output
    assert job.status == "queued" and job.kind == "derivatives_rebuild"
    assert "full" in _image(image_id).sizes  # nothing done before a worker takes it
    run_job(job.id)  # what the worker's task calls
    db.session.expire_all()
    job = db.session.get_one(Job, job.id)
    assert job.status == "done" and (job.progress_done, job.progress_total) == (1, 1)
    assert "exact" in _image(image_id).sizes
