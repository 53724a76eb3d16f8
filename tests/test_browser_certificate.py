"""End to end in Chromium: a trainee earns a certificate, downloads its PDF and follows its
verification address; a lead revokes it; past its expiry date it shows as expired."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app.auth.roles import Role
from app.certification.models import Certificate
from app.extensions import db
from tests.conftest import sign_in
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"




def _take(page, title, total):
    page.goto(page.url.split("/training")[0].split("/certification")[0] + "/training/")
    page.get_by_role("row", name=re.compile(title)).get_by_role("button").click()
    for position in range(1, total + 1):
        page.wait_for_function(LOADED)
        page.get_by_label("Abnormal").check()
        page.get_by_label("Cavitary lesion").check()
        page.wait_for_function(SAVED)
        if position < total:
            page.get_by_role("link", name="Next case").click()
            page.wait_for_url(f"**/{position + 1}")
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/result")


def test_certificate_from_exercises_to_revocation_and_expiry(portal_url, browser, make_user,
                                                             programme):  # noqa: F811
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Ada Reader")
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, portal_url, trainee.username)
    _take(page, "Practice", 1)
    _take(page, "Exam", 2)
    assert page.get_by_test_id("verdict").inner_text() == "Passed"

    page.goto(portal_url + "/certification/mine")
    assert page.get_by_test_id("my-certificate-status").inner_text() == "valid"
    pdf_url = page.get_by_role("link", name="PDF").get_attribute("href")
    pdf = page.request.get(portal_url + pdf_url)
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    verify_url = re.search(rb"Verify at: (\S+)\)", pdf.body()).group(1).decode()
    certificate = db.session.scalars(select(Certificate)).one()
    assert verify_url.endswith(f"/verify/{certificate.code}")

    public = browser.new_context().new_page()  # anyone, not signed in
    public.goto(portal_url + verify_url[verify_url.index("/verify/"):])
    assert public.get_by_test_id("certificate-status").inner_text() == "Valid"
    assert "Dr Ada Reader" in public.content()

    lead_page = browser.new_context().new_page()
    sign_in(lead_page, portal_url, lead.username)
    lead_page.goto(portal_url + "/certification/certificates")
    lead_page.get_by_placeholder("reason").fill("identity doubt")
    lead_page.get_by_role("button", name="Revoke").click()
    lead_page.wait_for_load_state()
    public.reload()
    assert public.get_by_test_id("certificate-status").inner_text() == "Revoked"
    lead_page.get_by_placeholder("reason").fill("identity confirmed")
    lead_page.get_by_role("button", name="Reinstate").click()
    lead_page.wait_for_load_state()
    public.reload()
    assert public.get_by_test_id("certificate-status").inner_text() == "Valid"

    db.session.expire_all()
    expiry = db.session.get(Certificate, certificate.id).expires_at
    with freeze_time(expiry + timedelta(days=1), tick=True):
        public.reload()
        assert public.get_by_test_id("certificate-status").inner_text() == "Expired"
    context.close()
