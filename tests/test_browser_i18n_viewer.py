"""In Chromium, a trainee who reads French: the viewer of an attempt names its image stage in
French and refuses a mark past the case's limit with a French status line (the scripts'
texts come from the catalogue with the page, static/js/i18n.js)."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.schemes.answers import MAX_MARKS
from tests.test_browser_viewer_limits import (  # noqa: F401 (practice, trainee: fixtures)
    LOADED,
    MARKS,
    STATUS,
    _open,
    _points,
    _preloaded,
    practice,
    trainee,
)

pytestmark = pytest.mark.browser

# The stage labels of pane.js (STAGES) in French.
STAGES = {"preview": "Aperçu", "display": "Pleine résolution",
          "approx": "16 bits (progressif)", "exact": "16 bits exact"}


def test_the_viewer_speaks_french(portal_url, page, trainee, practice):  # noqa: F811
    trainee.language = "fr"
    db.session.commit()
    attempt = _preloaded(practice, trainee, lambda image: _points(image, MAX_MARKS))
    at = _open(page, portal_url, trainee, attempt, [])
    page.wait_for_function(LOADED)
    assert page.locator("html").get_attribute("lang") == "fr"
    stage = page.evaluate("() => window.cxrViewer.state().panes[0].stage")
    assert page.locator(".pane-stage").first.inner_text() == STAGES[stage]
    page.keyboard.press("a")  # the point tool
    page.mouse.click(*at(400, 400))
    status = page.locator(STATUS)
    status.wait_for(state="visible")
    text = status.inner_text().replace("\u00a0", " ")
    assert text == f"Marque non ajoutée : {MAX_MARKS} marques au plus par cas."
    assert page.evaluate(MARKS) == MAX_MARKS
