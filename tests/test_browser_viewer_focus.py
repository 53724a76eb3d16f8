"""The viewer's keyboard shortcuts beside the read form of an exercise: they keep working
after an answer option (radio button or checkbox) was clicked, the answer options keep the
browser's own keys (arrows, Space), and typing in a text box never triggers a shortcut."""

from __future__ import annotations

import pytest

from app.auth.roles import Role
from tests.conftest import sign_in
from tests.test_browser_attempt import exercise  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


def _state(page):
    return page.evaluate("() => window.cxrViewer.state()")


def _start(page, portal_url, make_user):
    page.set_viewport_size({"width": 1280, "height": 800})  # a reading-room desktop
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
    )


def test_viewer_shortcuts_work_after_clicking_an_answer_option(
    portal_url, page, make_user, exercise  # noqa: F811
):
    _start(page, portal_url, make_user)
    assert _state(page)["tool"] == "select"  # a trainee marks lesions in an exercise

    # A radio button of the read form was clicked: it has the focus ...
    page.get_by_label("Abnormal").click()
    assert page.evaluate("() => document.activeElement.value") == "abnormal"
    # ... and the viewer's keys still reach the viewer.
    page.keyboard.press("p")
    assert _state(page)["tool"] == "pan"
    inverted = _state(page)["panes"][0]["invert"]
    page.keyboard.press("i")
    assert _state(page)["panes"][0]["invert"] is not inverted
    page.keyboard.press("z")
    assert _state(page)["tool"] == "zoom"
    page.keyboard.press("?")
    assert page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert not page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    # The answer did not change on the way.
    assert page.get_by_label("Abnormal").is_checked()

    # Arrow keys on a focused radio group stay the browser's: they move the selection and
    # leave the image alone.
    view = _state(page)["panes"][0]["view"]
    page.keyboard.press("ArrowUp")
    assert page.get_by_label("Normal", exact=True).is_checked()
    assert _state(page)["panes"][0]["view"] == view

    # The same after a checkbox; Space still ticks the focused checkbox (not the viewer's pan).
    box = page.get_by_label("Cavitary lesion")
    box.click()
    assert box.is_checked()
    page.keyboard.press("w")
    assert _state(page)["tool"] == "wl"
    page.keyboard.press("Space")
    assert not box.is_checked()
    page.keyboard.press("p")
    assert _state(page)["tool"] == "pan"

    # Reset (0) after zooming, with the focus still on the checkbox.
    fitted = _state(page)["panes"][0]["view"]
    page.evaluate("() => window.cxrViewer.panes[0].zoomAt(3, 10, 10)")
    assert _state(page)["panes"][0]["view"] != fitted
    page.keyboard.press("0")
    assert _state(page)["panes"][0]["view"] == fitted


def test_typing_in_a_text_box_never_triggers_a_shortcut(
    portal_url, page, make_user, exercise  # noqa: F811
):
    _start(page, portal_url, make_user)
    page.get_by_label("Abnormal").click()
    before = _state(page)
    other = page.locator("input[type=text][name=other_text]")
    other.click()
    other.press_sequentially("pi z0 wide ?")
    assert other.input_value() == "pi z0 wide ?"
    after = _state(page)
    assert after["tool"] == before["tool"]
    assert after["panes"][0]["invert"] == before["panes"][0]["invert"]
    assert after["panes"][0]["view"] == before["panes"][0]["view"]
    assert not page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    # The viewer's own number boxes are text entry too.
    page.get_by_label("Window centre").fill("")
    page.get_by_label("Window centre").press_sequentially("10")
    assert _state(page)["panes"][0]["view"] == before["panes"][0]["view"]
