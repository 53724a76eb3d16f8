"""A trainer reviews a real chest CR for burned-in text in Chromium: windows and zooms the
image, drags rectangles (outlined while dragging), removes one, confirms, and exactly the kept
rectangle is burned into the stored pixels."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select

from app.auth.roles import Role
from app.cases import pixels
from app.cases.models import Case, CaseImage
from app.cases.storage import EXACT_FILE, image_store
from app.extensions import db
from tests.conftest import sign_in

pytestmark = pytest.mark.browser

# The grey values the page shows (red channel of the windowed canvas) and their spread.
SHOWN_SPREAD = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0;
  for (let i = 0; i < d.length; i += 4 * 7) { n++; sum += d[i]; sq += d[i] * d[i]; }
  const mean = sum / n; return [mean, Math.sqrt(sq / n - mean * mean)]; }"""
# Is anything drawn on the overlay at (x, y) (CSS pixels = canvas pixels)?
DRAWN_AT = "([c, x, y]) => c.getContext('2d').getImageData(x, y, 1, 1).data[3] > 0"


def test_trainer_windows_zooms_draws_removes_and_confirms_a_redaction(
    app, portal_url, page, make_user
):
    from playwright.sync_api import expect

    from app.cases.ingest import ImportOptions, Source, import_files

    trainer = make_user(Role.TRAINER)
    path = get_testdata_file("RG1_UNCR.dcm")
    with open(path, "rb") as f:
        data = f.read()
    import_files([Source("rg1.dcm", lambda: data)], actor=trainer, options=ImportOptions())
    case = db.session.scalars(select(Case)).one()
    image = case.images[0]
    columns, rows = image.columns, image.rows
    review_url = f"{portal_url}/cases/{case.id}/review"

    sign_in(page, portal_url, trainer.username)
    page.goto(f"{portal_url}/cases/{case.id}")
    page.get_by_role("link", name="Review the pixels").click()
    page.wait_for_url(review_url)
    section = page.locator("section.redact").first
    expect(section).to_have_attribute("data-ready", "1")
    shown = section.locator("canvas.redact-image")
    overlay = section.locator("canvas.redact-canvas")

    # Windowing: a narrow window spreads the grey values (more contrast) on the shown image.
    mean, before = page.evaluate(SHOWN_SPREAD, shown.element_handle())
    section.get_by_label("Window width (contrast)").fill("60")
    section.get_by_label("Window level (brightness)").fill(str(round(mean)))
    _, after = page.evaluate(SHOWN_SPREAD, shown.element_handle())
    assert after > before * 1.3, (before, after)

    # Zoom: the image doubles in size inside its scrolling frame.
    fit = overlay.bounding_box()["width"]
    section.get_by_role("button", name="Zoom in").click()
    section.get_by_role("button", name="Zoom in").click()
    expect(section.locator(".redact-zoom-level")).to_have_text("200 %")
    box = overlay.bounding_box()
    assert abs(box["width"] - 2 * fit) <= 2

    # Drag a rectangle: its outline is drawn while the button is still down.
    x0, y0 = box["x"] + 40, box["y"] + 30
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 120, y0 + 60, steps=6)
    assert overlay.get_attribute("data-dragging")  # the rectangle in progress
    assert page.evaluate(DRAWN_AT, [overlay.element_handle(), 40 + 120, 30 + 30])
    assert not page.evaluate(DRAWN_AT, [overlay.element_handle(), 40 + 60, 30 + 30])
    page.mouse.up()
    items = section.locator(".redact-list li")
    expect(items).to_have_count(1)
    kept = section.locator("input.redact-rectangles").input_value()
    x, y, w, h = (int(v) for v in kept.split(","))
    scale = columns / box["width"]  # image pixels per CSS pixel at 200 %
    assert abs(x - 40 * scale) <= 2 and abs(y - 30 * scale) <= 2
    assert abs(w - 120 * scale) <= 2 and abs(h - 60 * scale) <= 2

    # A second rectangle, then removed again before applying.
    page.mouse.move(box["x"] + 300, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 360, box["y"] + 260, steps=4)
    page.mouse.up()
    expect(items).to_have_count(2)
    section.get_by_role("button", name="Remove rectangle 2").click()
    expect(items).to_have_count(1)
    assert section.locator("input.redact-rectangles").input_value() == kept
    # Or: click a rectangle on the image to select it, and press Delete.
    page.evaluate("window.scrollTo(0, 0)")  # pressing Remove scrolled the page down
    box = overlay.bounding_box()
    # (High on the image: the header may take two lines, and a click below the window's
    # edge reaches nothing.)
    page.mouse.move(box["x"] + 500, box["y"] + 150)
    page.mouse.down()
    page.mouse.move(box["x"] + 560, box["y"] + 190, steps=4)
    page.mouse.up()
    expect(items).to_have_count(2)
    page.mouse.click(box["x"] + 530, box["y"] + 170)
    expect(items.nth(1)).to_have_attribute("aria-current", "true")
    page.keyboard.press("Delete")
    expect(items).to_have_count(1)
    assert section.locator("input.redact-rectangles").input_value() == kept

    # Applying asks first, says how many and that it is final; Cancel changes nothing.
    dialog = section.locator("dialog.redact-confirm")
    section.get_by_role("button", name="Redact…").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("1 rectangle will be burned into the stored image.")
    expect(dialog).to_contain_text("This cannot be undone")
    # The safe choice has the focus: pressing Enter by habit does not burn anything in.
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    db.session.expire_all()
    assert db.session.get(CaseImage, image.id).version == 1

    section.get_by_role("button", name="Redact…").click()
    dialog.get_by_role("button", name="Burn in permanently").click()
    page.wait_for_url(review_url)
    expect(page.get_by_text("1 area redacted in the stored image.")).to_be_visible()

    # The stored image differs from the original in exactly that rectangle.
    db.session.expire_all()
    image = db.session.get(CaseImage, image.id)
    assert image.version == 2
    stored = pixels.decode_exact16(image_store().read(image.storage_key, EXACT_FILE))
    original_ds = pydicom.dcmread(path)
    original = pixels.stored_pixels(original_ds)
    background = pixels.background_value(original_ds, original)
    inside = np.zeros((rows, columns), dtype=bool)
    inside[y:y + h, x:x + w] = True
    assert (stored[inside] == background).all()
    assert np.array_equal(stored[~inside], original[~inside])
    assert (original[inside] != background).any()  # the rectangle really changed pixels


def test_rectangles_are_drawn_with_a_finger_on_a_tablet(app, portal_url, browser, make_user):
    from playwright.sync_api import expect

    from app.cases.ingest import ImportOptions, Source, import_files
    from tests.dicom_factory import cr_dataset, to_bytes

    trainer = make_user(Role.TRAINER)
    data = to_bytes(cr_dataset(seed=7, rows=600, columns=500, burned_in=None))
    import_files([Source("x.dcm", lambda: data)], actor=trainer, options=ImportOptions())
    case = db.session.scalars(select(Case)).one()
    context = browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, portal_url, trainer.username)
        page.goto(f"{portal_url}/cases/{case.id}/review")
        section = page.locator("section.redact").first
        expect(section).to_have_attribute("data-ready", "1")
        section.get_by_role("button", name="Zoom in").tap()
        expect(section.locator(".redact-zoom-level")).to_have_text("150 %")
        overlay = section.locator("canvas.redact-canvas")
        box = overlay.bounding_box()
        touch = context.new_cdp_session(page)

        def finger(kind: str, x: float, y: float) -> None:
            points = [] if kind == "touchEnd" else [{"x": box["x"] + x, "y": box["y"] + y, "id": 1}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        finger("touchStart", 20, 30)
        for step in range(1, 6):
            finger("touchMove", 20 + 16 * step, 30 + 8 * step)
        assert overlay.get_attribute("data-dragging")  # outlined while the finger moves
        page.wait_for_timeout(200)  # the finger rests before lifting: no fling
        finger("touchMove", 100, 70)
        finger("touchEnd", 0, 0)
        items = section.locator(".redact-list li")
        expect(items).to_have_count(1)
        x, y, w, h = (int(v) for v in
                      section.locator("input.redact-rectangles").input_value().split(","))
        scale = 500 / box["width"]
        assert abs(x - 20 * scale) <= 2 and abs(y - 30 * scale) <= 2
        assert abs(w - 80 * scale) <= 2 and abs(h - 40 * scale) <= 2
        remove = section.get_by_role("button", name="Remove rectangle 1")
        assert remove.bounding_box()["height"] >= 44  # a finger-sized target
        remove.tap()
        expect(items).to_have_count(0)
        expect(section.get_by_role("button", name="Redact…")).to_be_disabled()
    finally:
        context.close()
