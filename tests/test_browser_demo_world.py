"""In Chromium, on the seeded demo (`cxr-academy demo`): the programme lead finds several
readers on her dashboard and the certificate about to expire; the radiographer finds her
image-quality practice set and starts it."""

from __future__ import annotations

import re

import pytest

from app.demo import DEMO_PROGRAMME, DEMO_QUALITY_PRACTICE
from tests.conftest import sign_in
from tests.test_demo_world import seed_everything

pytestmark = pytest.mark.browser


def test_demo_lead_sees_readers_and_expiry_and_radiographer_her_practice(app, portal_url,
                                                                         browser):
    passwords = seed_everything()

    lead = browser.new_context().new_page()
    lead.set_default_timeout(15_000)
    sign_in(lead, portal_url, "demo-lead", passwords["demo-lead"])
    main_menu = lead.get_by_role("navigation", name="Main")
    assert main_menu.get_by_role("link", name="Viewer").count() == 0
    main_menu.get_by_role("link", name="Certification").click()
    lead.get_by_role("link", name=DEMO_PROGRAMME).click()
    lead.wait_for_load_state()
    readers = lead.get_by_test_id("readers-table").locator("tbody tr")
    assert readers.count() >= 8
    kiprono = readers.filter(has_text="Dr Daniel Kiprono")
    assert "expiring within 90 days" in kiprono.inner_text()
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", kiprono.inner_text())  # "Jan 17, 2027"
    lead.context.close()

    radiographer = browser.new_context().new_page()
    radiographer.set_default_timeout(15_000)
    sign_in(radiographer, portal_url, "demo-radiographer", passwords["demo-radiographer"])
    radiographer.wait_for_url(portal_url + "/home")  # trainees land on their home page
    main_menu = radiographer.get_by_role("navigation", name="Main")
    assert main_menu.get_by_role("link", name="Viewer").count() == 0
    main_menu.get_by_role("link", name="Training", exact=True).click()
    row = radiographer.get_by_role("row").filter(has_text=DEMO_QUALITY_PRACTICE)
    row.get_by_role("button", name="Start").click()
    radiographer.wait_for_load_state()
    assert "Inclusion: both apices" in radiographer.content()
    radiographer.context.close()
