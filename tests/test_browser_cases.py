"""A trainer imports real chest radiographs in Chromium and sees the report and the images."""

from __future__ import annotations

import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from app.auth.roles import Role
from app.cases import pixels
from tests.conftest import sign_in
from tests.dicom_factory import cr_dataset, to_bytes

pytestmark = pytest.mark.browser




def test_trainer_uploads_rg1_and_a_mixed_zip(app, portal_url, page, make_user, tmp_path):
    trainer = make_user(Role.TRAINER)
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.dcm", to_bytes(cr_dataset(seed=3, rows=300, columns=240)))
        zf.writestr("mr-scan.dcm", to_bytes(cr_dataset(seed=4, modality="MR")))
        zf.writestr("notes.txt", b"hello")
        zf.writestr("../escape.dcm", to_bytes(cr_dataset(seed=5)))
    files = [get_testdata_file(n) for n in ("RG1_UNCR.dcm", "RG1_J2KR.dcm")] + [str(archive)]

    sign_in(page, portal_url, trainer.username)
    page.get_by_role("link", name="Import DICOM files").click()
    page.get_by_label("DICOM files or .zip archives").set_input_files(files)
    page.get_by_role("button", name="Import").click()

    summary = page.get_by_test_id("import-summary")
    summary.wait_for()
    assert summary.inner_text() == "2 imported · 1 already in the library · 3 refused"
    rows = page.get_by_test_id("file-result")
    assert rows.count() == 6
    report = page.content()
    # DICOM values are marked not for translation inside the sentence: the text as shown.
    assert "modality MR is not a chest radiograph" in page.locator("main").inner_text()
    assert "not a DICOM file" in report
    assert "path with &#39;..&#39; in the archive" in report or "path with '..'" in report

    # The RG1 case shows the right picture: compare what Chromium drew with the display
    # pipeline applied to the original file (MONOCHROME1: must come out inverted).
    rows.first.get_by_role("link").click()
    image = page.locator("img.preview").first
    image.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    width, height = page.evaluate(
        "img => [img.naturalWidth, img.naturalHeight]", image.element_handle()
    )
    assert max(width, height) == 1024
    drawn = np.array(
        page.evaluate(
            """img => { const c = document.createElement('canvas');
                    c.width = img.naturalWidth; c.height = img.naturalHeight;
                    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                    const d = g.getImageData(0, 0, c.width, c.height).data;
                    const out = []; for (let i = 0; i < d.length; i += 4) out.push(d[i]);
                    return out; }""",
            image.element_handle(),
        ),
        dtype=np.uint8,
    ).reshape(height, width)
    original = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    expected = pixels.render_8bit(original, pixels.stored_pixels(original))
    expected = np.asarray(Image.fromarray(expected).resize((width, height), Image.Resampling.BOX))
    block = 64
    h, w = height // block * block, width // block * block

    def means(a: np.ndarray) -> np.ndarray:
        return a[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))

    assert np.abs(means(drawn.astype(float)) - means(expected.astype(float))).max() < 6
    # Lungs (dark) are darker than the mediastinum (bright) in a correctly inverted image.
    centre = drawn[height // 3 : height // 2, width // 2 - 20 : width // 2 + 20].mean()
    lung = drawn[height // 3 : height // 2, width // 5 : width // 5 + 40].mean()
    assert lung < centre


def test_pixel_review_page_draws_rectangles_in_image_coordinates(
    app, portal_url, page, make_user, client
):
    from sqlalchemy import select

    from app.cases.ingest import ImportOptions, Source, import_files
    from app.cases.models import Case
    from app.extensions import db

    trainer = make_user(Role.TRAINER)
    data = to_bytes(cr_dataset(seed=9, rows=400, columns=320, burned_in=None))
    import_files([Source("x.dcm", lambda: data)], actor=trainer, options=ImportOptions())
    case = db.session.scalars(select(Case)).one()
    sign_in(page, portal_url, trainer.username)
    page.goto(f"{portal_url}/cases/{case.id}/review")
    canvas = page.locator("canvas.redact-canvas").first
    page.wait_for_function("c => c.width > 0", arg=canvas.element_handle())
    box = canvas.bounding_box()
    scale = 320 / box["width"]
    page.mouse.move(box["x"] + 10, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 110, box["y"] + 70, steps=5)
    page.mouse.up()
    value = page.locator("input.redact-rectangles").first.input_value()
    x, y, w, h = (int(v) for v in value.split(","))
    assert abs(x - 10 * scale) <= 2 and abs(y - 20 * scale) <= 2
    assert abs(w - 100 * scale) <= 2 and abs(h - 50 * scale) <= 2
    page.get_by_role("button", name="Redact…").click()
    page.get_by_role("button", name="Burn in permanently").click()
    page.wait_for_url(f"{portal_url}/cases/{case.id}/review")
    assert "1 area redacted in the stored image" in page.content()
