"""A trainer imports an old CR file written without the Part 10 header, and a zip holding a
picture and a note, in Chromium on a 1280x800 screen and on a 1024x768 touch tablet."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from app.auth.roles import Role
from tests.conftest import sign_in
from tests.realservers import missing
from tests.test_ingest import SHARED_DICOM

pytestmark = pytest.mark.browser

OLD_CR = SHARED_DICOM / "CR-MONO1-10-chest.dcm"
OPTION = "Also accept DICOM files without a Part 10 header"
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "tablet": {"viewport": {"width": 1024, "height": 768}, "has_touch": True,
               "is_mobile": True, "device_scale_factor": 2},
}


@pytest.fixture(params=sorted(VIEWPORTS))
def device(request, browser):
    """A page of its own browser context sized as the device, and how a user presses."""
    context = browser.new_context(**VIEWPORTS[request.param])
    page = context.new_page()
    page.set_default_timeout(15_000)
    touch = VIEWPORTS[request.param].get("has_touch", False)

    def press(locator) -> None:
        locator.tap() if touch else locator.click()

    yield request.param, page, press
    context.close()


def screenshot(page, tmp_path: Path, name: str) -> None:
    """Kept for the record where CXR_ACADEMY_SCREENSHOTS points, else beside the test."""
    folder = Path(os.environ.get("CXR_ACADEMY_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_trainer_imports_dicom_without_file_meta_and_learns_what_is_not_dicom(
    app, portal_url, device, make_user, tmp_path
):
    if not OLD_CR.is_file():
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    name, page, press = device
    picture = io.BytesIO()
    Image.new("L", (200, 160), 80).save(picture, "PNG")
    archive = tmp_path / "exported.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("screenshot.png", picture.getvalue())
        zf.writestr("notes.txt", b"Chest PA, 1995, Fuji CR.\n")
    trainer = make_user(Role.TRAINER)

    sign_in(page, portal_url, trainer.username)
    press(page.get_by_role("navigation", name="Main").get_by_role("link", name="Case library"))
    press(page.get_by_role("link", name="Import DICOM files"))
    option = page.get_by_label(OPTION)
    assert not option.is_checked()
    import_button = page.get_by_role("button", name="Import")
    import_button.scroll_into_view_if_needed()
    screenshot(page, tmp_path, f"upload-page-{name}")

    # First without the option: the old CR is recognised and the option is named; the
    # picture and the note are plainly not DICOM.
    page.get_by_label("DICOM files or .zip archives").set_input_files([str(OLD_CR), str(archive)])
    press(import_button)
    summary = page.get_by_test_id("import-summary")
    assert summary.inner_text() == "0 imported · 0 already in the library · 3 refused"
    reasons = {
        row.locator("td").first.inner_text(): row.locator(".reason").inner_text()
        for row in page.get_by_test_id("file-result").all()
    }
    assert f'"{OPTION}" ticked' in reasons[OLD_CR.name]
    assert reasons["exported.zip / screenshot.png"].startswith("not a DICOM file (a PNG image")
    assert reasons["exported.zip / notes.txt"] == "not a DICOM file"
    hint = page.get_by_test_id("no-meta-hint")
    assert hint.is_visible()
    assert hint.inner_text().startswith("1 file is DICOM without a Part 10 header.")
    screenshot(page, tmp_path, f"upload-refused-{name}")

    # The report's link brings the page back with the option ticked; the trainer picks
    # the file again and imports it.
    press(hint.get_by_role("link", name="Import again, accepting DICOM without a Part 10 header"))
    page.wait_for_url("**/cases/upload?allow_no_meta=1")
    assert page.get_by_label(OPTION).is_checked()
    page.get_by_label("DICOM files or .zip archives").set_input_files([str(OLD_CR)])
    press(page.get_by_role("button", name="Import"))
    assert summary.inner_text() == "1 imported · 0 already in the library · 0 refused"
    screenshot(page, tmp_path, f"upload-imported-{name}")

    # The case shows the radiograph.
    press(page.get_by_test_id("file-result").get_by_role("link"))
    image = page.locator("img.preview").first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    assert page.evaluate("img => [img.naturalWidth, img.naturalHeight]",
                         image.element_handle()) == [440, 440]
