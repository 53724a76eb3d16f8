"""A trainer uploads a zip of real chest radiographs; the page answers at once with the
job's page, whose progress bar reaches 100 % and whose per-file results appear as a worker
imports them, without reloading the page."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from app.auth.roles import Role
from app.jobs.queue import BackgroundWorker
from tests.axe import assert_no_axe_violations
from tests.conftest import sign_in
from tests.realservers import missing
from tests.test_ingest import SHARED_DICOM
from tests.test_jobs import queue  # noqa: F401  (fixture: the app on a real SQLite queue)

pytestmark = pytest.mark.browser

# Read from the shared folder, zipped into the test's own temporary folder.
FILES = ["RG1_UNCR.dcm", "RG1_J2KI.dcm", "Fake_MONOHR1.dcm", "CR-MONO1-10-chest.dcm"]


def test_trainer_watches_an_upload_import_to_the_end(app, portal_url, page, make_user,
                                                      tmp_path, queue):  # noqa: F811
    if not all((SHARED_DICOM / name).is_file() for name in FILES):
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    archive = tmp_path / "studies.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in FILES:
            zf.write(SHARED_DICOM / name, name)
    trainer = make_user(Role.TRAINER)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, portal_url, trainer.username)

    page.goto(portal_url + "/cases/upload")
    page.get_by_label("DICOM files or .zip archives").set_input_files(str(archive))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url("**/jobs/*")
    # Answered before any file was imported: no worker runs yet.
    assert page.get_by_test_id("job-status").inner_text() == "queued"
    page.evaluate("window.sameDocument = true")

    worker = BackgroundWorker(app).start()
    try:
        expect(page.get_by_test_id("job-status")).to_have_text("done", timeout=120_000)
    finally:
        worker.stop()
    assert page.evaluate("window.sameDocument") is True  # updated in place, never reloaded
    bar = page.get_by_test_id("job-progress")
    assert bar.get_attribute("max") == "4"
    assert page.evaluate("document.querySelector('[data-testid=job-progress]').value") == 4
    assert page.get_by_test_id("job-count").inner_text() == "4 / 4"
    rows = page.get_by_test_id("file-result")
    assert rows.count() == 4
    text = {rows.nth(n).locator("td").first.inner_text(): rows.nth(n).inner_text()
            for n in range(4)}
    for name in FILES[:3]:
        assert "imported as Case" in text[f"studies.zip / {name}"]
    # The old CR file without a Part 10 header is refused, saying so.
    assert "refused" in text["studies.zip / CR-MONO1-10-chest.dcm"]
    assert "Part 10" in text["studies.zip / CR-MONO1-10-chest.dcm"]
    assert "3 imported" in page.get_by_test_id("import-summary").inner_text()
    assert not errors, errors  # no script blocked by the content security policy
    assert_no_axe_violations(page, "job page")

    # The trainer comes back later: the job is in their list.
    page.goto(portal_url + "/jobs/")
    assert page.get_by_test_id("job-row").count() == 1
    assert "done" in page.get_by_test_id("job-row").inner_text()
    assert_no_axe_violations(page, "job list")


def test_admin_exports_the_library_and_downloads_the_zip(app, portal_url, page, make_user,
                                                         tmp_path, queue):  # noqa: F811
    from app.cases.library_files import load_library
    from tests.test_library_files import LIBRARY

    names = ("phantom-cavity-1", "phantom-normal-1")
    folder = tmp_path / "lib" / "cases"
    folder.mkdir(parents=True)
    for name in names:
        (folder / f"{name}.json").write_bytes((LIBRARY / "cases" / f"{name}.json").read_bytes())
    assert [r.status for r in load_library(folder.parent)] == ["loaded"] * 2
    admin = make_user(Role.ADMIN)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, portal_url, admin.username)

    page.goto(portal_url + "/jobs/")
    assert_no_axe_violations(page, "job list with the administrators' buttons")
    page.get_by_label("Export the case library's cases").select_option("all")
    page.get_by_role("button", name="Export the library").click()
    page.wait_for_url("**/jobs/*")
    assert page.get_by_test_id("job-status").inner_text() == "queued"
    assert "cases" in page.get_by_test_id("job-count").locator("..").inner_text()

    worker = BackgroundWorker(app).start()
    try:
        expect(page.get_by_test_id("job-status")).to_have_text("done", timeout=120_000)
        # The page shows the outcome when the job ends (reloaded once to get it).
        link = page.get_by_test_id("export-download")
        expect(link).to_be_visible(timeout=30_000)
    finally:
        worker.stop()
    assert page.get_by_test_id("job-count").inner_text() == "2 / 2"
    assert "2 cases exported (all statuses)" in page.get_by_test_id("job-summary").inner_text()
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name.startswith("case-library-job-") and saved.suffix == ".zip"
    with zipfile.ZipFile(saved) as zf:
        members = sorted(zf.namelist())
    assert len([m for m in members if m.startswith("cases/case-")]) == 2
    assert len([m for m in members if m.startswith("images/") and m.endswith(".dcm")]) == 2
    assert not errors, errors
    assert_no_axe_violations(page, "library export job page")
