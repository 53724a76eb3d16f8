"""On a touch tablet (1024x768, coarse pointer) every control a finger has to hit is at least
44x44 CSS px: the viewer's toolbar and controls, and the buttons, fields, answer options and
menu links of the case, reference-read and exercise pages."""

from __future__ import annotations

import numpy as np
import pytest

from app.auth.roles import Role
from app.cases.dicom_build import dataset_bytes, dx_dataset
from app.cases.reads import save_read
from app.schemes.registry import get_scheme
from tests.conftest import sign_in
from tests.test_browser_attempt import exercise  # noqa: F401 (fixture)
from tests.test_browser_viewer import _import

pytestmark = pytest.mark.browser

MIN = 44

# What a finger has to hit. Radio buttons and checkboxes are hit through their label (the
# whole row is the target), so the label is measured; links inside running text are exempt
# (WCAG 2.5.8), links that act as buttons or menu entries are not.
TARGETS = """() => {
  const selector = [
    "button", "a.button", "summary", "select", "textarea", "[role=button]",
    "input:not([type=hidden]):not([type=radio]):not([type=checkbox])",
    "label:has(> input[type=radio])", "label:has(> input[type=checkbox])",
    "input[type=radio]:not(label > input)", "input[type=checkbox]:not(label > input)",
    ".topbar a", "form a", ".attempt-nav a",
  ].join(", ");
  const small = [];
  let measured = 0;
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === "hidden") continue;
    measured += 1;
    if (r.width < 44 || r.height < 44) {
      const name = (el.getAttribute("aria-label") || el.textContent || el.name || "").trim();
      const size = `${Math.round(r.width)}x${Math.round(r.height)}`;
      small.push(`${el.tagName.toLowerCase()} "${name.slice(0, 40)}" ${size}`);
    }
  }
  return { measured, small };
}"""


@pytest.fixture
def tablet(browser):
    context = browser.new_context(
        has_touch=True, is_mobile=False, viewport={"width": 1024, "height": 768}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _check(page, least: int) -> None:
    assert page.evaluate("() => matchMedia('(pointer: coarse)').matches")
    found = page.evaluate(TARGETS)
    assert found["measured"] >= least, found
    assert found["small"] == [], f"{page.url}: {found['small']}"


@pytest.fixture
def trainer(make_user):
    return make_user(Role.TRAINER)


@pytest.fixture
def small_case(app, trainer):
    values = np.tile(np.linspace(200, 3800, 240, dtype=np.uint16), (300, 1))
    case = _import(dataset_bytes(dx_dataset(values, bits_stored=12)), trainer)
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "abnormal", "findings": ["cavitary_lesion"]})
    return case


def test_viewer_and_case_pages_have_44px_targets_on_touch(
    portal_url, tablet, trainer, small_case
):
    sign_in(tablet, portal_url, trainer.username)
    tablet.goto(f"{portal_url}/viewer/cases/{small_case.id}")
    tablet.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
    )
    _check(tablet, least=12)
    tablet.keyboard.press("?")  # the help overlay does not hide anything measured
    tablet.goto(f"{portal_url}/cases/{small_case.id}")
    _check(tablet, least=8)
    # The reference read: the viewer with every tool (marks, finding, confidence) and the form.
    tablet.goto(f"{portal_url}/cases/{small_case.id}/read")
    tablet.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
    )
    assert tablet.get_by_role("button", name="Ellipse").is_visible()
    _check(tablet, least=20)


def test_exercise_read_page_has_44px_targets_on_touch(
    portal_url, tablet, make_user, exercise  # noqa: F811
):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(tablet, portal_url, trainee.username)
    tablet.get_by_role("link", name="Training", exact=True).click()  # from the home page
    tablet.get_by_role("button", name="Start").click()
    tablet.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
    )
    _check(tablet, least=25)
