"""A trainer imports one study over DICOMweb (with the PACS's thumbnail) and one over DIMSE
from a real Orthanc, in Chromium: search → select → import → the job's page, whose progress
bar reaches 100 % and whose per-image results appear as a worker (a real SQLite queue, a
consumer in this process) imports them, without reloading the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.jobs.queue import BackgroundWorker
from app.pacs.services import EndpointSettings, save_endpoint
from tests.conftest import sign_in
from tests.orthanc import (
    PACS_PASSWORD,
    PACS_USER,
    PHI_PATIENT_ID,
    PORTAL_AE,
    Orthanc,
    load_test_studies,
    orthanc_server,
)
from tests.test_jobs import queue  # noqa: F401  (fixture: the app on a real SQLite queue)
from tests.test_pacs import assert_deidentified

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def orthanc() -> Iterator[tuple[Orthanc, dict[str, str]]]:
    with orthanc_server() as server:
        yield server, load_test_studies(server)


def watch_the_import(app, page) -> None:
    """From the job's page as the import answers it (queued, no worker yet): a worker
    starts; the page follows the job to its end in place."""
    page.wait_for_url("**/jobs/*")
    assert page.get_by_test_id("job-status").inner_text() == "queued"
    assert page.get_by_test_id("file-result").count() == 0
    page.evaluate("window.sameDocument = true")
    worker = BackgroundWorker(app).start()
    try:
        expect(page.get_by_test_id("job-status")).to_have_text("done", timeout=120_000)
    finally:
        worker.stop()
    assert page.evaluate("window.sameDocument") is True  # updated in place, never reloaded
    bar = page.get_by_test_id("job-progress")
    expect(bar).to_be_visible()
    assert page.evaluate("(() => { const bar = document.querySelector("
                         "'[data-testid=job-progress]'); return [bar.value, bar.max]; })()") \
        == [1, 1]  # 100 %
    assert page.get_by_test_id("job-count").inner_text() == "1 / 1"
    assert "1 imported" in page.get_by_test_id("import-summary").inner_text()
    rows = page.get_by_test_id("file-result")
    assert rows.count() == 1
    assert "PACS study 1 of 1, image 1 of 1" in rows.first.inner_text()
    assert "imported as Case" in rows.first.inner_text()


def test_trainer_imports_a_study_over_dicomweb_and_one_over_dimse(app, portal_url, page,
                                                                  make_user, orthanc,
                                                                  queue):  # noqa: F811
    server, _ = orthanc
    save_endpoint(EndpointSettings(name="Radiology web", kind="dicomweb",
                                   url=server.dicomweb_url, username=PACS_USER,
                                   password=PACS_PASSWORD), actor=None)
    save_endpoint(EndpointSettings(name="Radiology DIMSE", kind="dimse", host="127.0.0.1",
                                   port=server.dicom_port, called_ae="TESTPACS",
                                   calling_ae=PORTAL_AE), actor=None)
    trainer = make_user(Role.TRAINER)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, portal_url, trainer.username)

    page.goto(portal_url + "/cases/")
    page.get_by_role("link", name="Import from a PACS").click()
    page.get_by_label("PACS").select_option(label="Radiology web (DICOMweb)")
    page.get_by_label("Study description contains").fill("teaching")
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_test_id("pacs-study")
    rows.first.wait_for()
    assert rows.count() == 1
    thumbnail = rows.first.get_by_role("img")
    thumbnail.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle())
    assert PACS_PASSWORD not in page.content() and server.url not in page.content()
    rows.first.get_by_label("select").check()
    page.get_by_role("button", name="Import selected studies").click()
    watch_the_import(app, page)
    assert page.get_by_role("heading", name="PACS import", exact=False).count() == 1

    page.get_by_role("link", name="Import more from the PACS").click()
    page.wait_for_url("**/pacs/")
    page.get_by_label("PACS").select_option(label="Radiology DIMSE (DIMSE)")
    page.get_by_label("Patient ID").fill(PHI_PATIENT_ID)
    page.get_by_role("button", name="Search").click()
    page.get_by_text("no rendering service: no thumbnails").wait_for()
    rows = page.get_by_test_id("pacs-study")
    rows.first.wait_for()
    assert rows.count() == 1
    rows.first.get_by_label("select").check()
    page.get_by_role("button", name="Import selected studies").click()
    watch_the_import(app, page)
    assert PHI_PATIENT_ID not in page.content()
    assert not errors, errors  # no script blocked by the content security policy

    db.session.expire_all()
    assert db.session.scalar(select(func.count(Case.id))) == 2
    assert {c.source for c in db.session.scalars(select(Case))} == {
        "PACS Radiology web", "PACS Radiology DIMSE"}
    assert_deidentified(app)

    # Both jobs are the trainer's to come back to.
    page.goto(portal_url + "/jobs/")
    assert page.get_by_test_id("job-row").count() == 2
    assert all("PACS import" in text and "done" in text
               for text in page.get_by_test_id("job-row").all_inner_texts())
