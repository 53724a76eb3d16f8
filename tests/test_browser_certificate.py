"""End to end in Chromium, on the demo data (`cxr-academy demo`): the demo trainee works through
the demo programme's practice set and exam to a certificate, downloads its PDF and follows the
verification address its QR code encodes; the demo lead revokes it; past its expiry date it
shows as expired, and the reminder e-mails reach a real SMTP server once each."""

from __future__ import annotations

import re
from datetime import timedelta

import pypdfium2
import pytest
import zxingcpp
from freezegun import freeze_time
from sqlalchemy import select

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case
from app.certification.models import Certificate, Programme
from app.demo import DEMO_EXAM, DEMO_PRACTICE, DEMO_PROGRAMME, seed_demo, seed_demo_library
from app.extensions import db
from app.quizzes.models import Attempt, Exercise
from tests.conftest import sign_in

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
SCAN_DPI = 150
# (days before expiry, words in the subject): 89, 29 and 6 days before it, 1 day after it.
REMINDERS = ((89, "under 90 days"), (29, "under 30 days"), (6, "under 7 days"),
             (-1, "has expired"))


def _read_pdf(pdf: bytes) -> tuple[str, list[tuple[zxingcpp.BarcodeFormat, str]]]:
    """The text of the PDF's single page and every barcode (format, text) found in a
    150 dpi rendering of it: what a reader sees and what a phone scanning a print-out
    decodes, not the data the PDF was made from."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        assert len(document) == 1
        page = document[0]
        text = page.get_textpage().get_text_range()
        image = page.render(scale=SCAN_DPI / 72).to_pil()
    finally:
        document.close()
    return text, [(code.format, code.text) for code in zxingcpp.read_barcodes(image)]


def _take(page, portal_url, title):
    """Start the exercise from the trainee's list and read every case of the attempt as its
    reference read has it: a finding that suggests TB (so the sputum decision is positive)
    for the TB cases, Normal for the others; then submit. Returns the attempt."""
    page.goto(portal_url + "/training/")
    page.get_by_role("row").filter(has_text=title).get_by_role("button", name="Start").click()
    page.wait_for_url("**/attempts/*/1")
    db.session.expire_all()  # the attempt was made by the server's request, not this session
    attempt = db.session.scalars(
        select(Attempt).join(Exercise).where(Exercise.title == title)
    ).one()
    total = len(attempt.case_order)
    for position, case_id in enumerate(attempt.case_order, start=1):
        page.wait_for_function(LOADED)
        if db.session.get(Case, case_id).reference_tb_positive:
            page.get_by_label("Abnormal", exact=True).check()
            page.get_by_label("Cavitary lesion", exact=True).check()
        else:
            page.get_by_label("Normal", exact=True).check()
        page.wait_for_function(SAVED)
        if position < total:
            page.get_by_role("link", name="Next case").click()
            page.wait_for_url(f"**/attempts/{attempt.id}/{position + 1}")
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url(f"**/attempts/{attempt.id}/summary")
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url(f"**/attempts/{attempt.id}/result")
    return attempt


def test_demo_trainee_from_exercises_to_revocation_and_expiry(app, portal_url, browser):
    from aiosmtpd.controller import Controller

    from tests.realservers import free_port
    from tests.test_mail import Inbox

    # The portal's public address, as deployed: the PDF's links are built on it alone.
    app.config["PUBLIC_BASE_URL"] = portal_url
    passwords = {a.username: a.password for a in seed_demo()}
    seed_demo_library()
    programme = db.session.scalars(select(Programme).where(Programme.title == DEMO_PROGRAMME)).one()
    trainee = db.session.scalars(select(User).where(User.username == "demo-radiologist")).one()
    assert trainee.full_name == "Dr Amina Otieno" and trainee.has_role(Role.TRAINEE_RADIOLOGIST)

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, portal_url, "demo-radiologist", passwords["demo-radiologist"])
    practice = _take(page, portal_url, DEMO_PRACTICE)
    assert len(practice.case_order) == 10
    assert page.get_by_test_id("case-feedback").count() == 10  # practice: per-case feedback
    db.session.expire_all()
    assert db.session.scalars(select(Certificate)).all() == []  # the exam is still to pass
    exam = _take(page, portal_url, DEMO_EXAM)
    assert len(exam.case_order) == 12
    assert page.get_by_test_id("verdict").inner_text() == "Passed"

    page.goto(portal_url + "/certification/mine")
    assert page.get_by_test_id("my-certificate-status").inner_text() == "valid"
    pdf_url = page.get_by_role("link", name="PDF").get_attribute("href")
    pdf = page.request.get(portal_url + pdf_url)
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    text, codes = _read_pdf(pdf.body())
    printed_url = re.search(r"Verify at: (\S+)", text).group(1)
    assert len(codes) == 1, codes  # exactly one code on the page, and it is a QR code
    [(kind, verify_url)] = codes
    assert kind == zxingcpp.BarcodeFormat.QRCode
    assert verify_url == printed_url
    db.session.expire_all()
    certificate = db.session.scalars(select(Certificate)).one()
    assert certificate.user_id == trainee.id and certificate.programme_id == programme.id
    assert certificate.holder_name == "Dr Amina Otieno"
    assert (certificate.expires_at - certificate.issued_at).days == 730
    # Made from PUBLIC_BASE_URL (here the live test server itself), never the Host header.
    assert verify_url == f"{portal_url}/verify/{certificate.code}"

    public = browser.new_context().new_page()  # anyone, not signed in
    public.goto(verify_url)
    assert public.get_by_test_id("certificate-status").inner_text() == "Valid"
    assert "Dr Amina Otieno" in public.content()

    lead_page = browser.new_context().new_page()
    sign_in(lead_page, portal_url, "demo-lead", passwords["demo-lead"])
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

    # Reminders from `certs remind` (the daily job) to a real SMTP server. portal_url serves
    # this same `app` object, so the configuration applies to the CLI and the server alike.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port,
                      PUBLIC_BASE_URL=portal_url)
    try:
        db.session.expire_all()
        expiry = db.session.get(Certificate, certificate.id).expires_at
        runner = app.test_cli_runner()

        def remind(days_before_expiry):
            with freeze_time(expiry - timedelta(days=days_before_expiry)):
                result = runner.invoke(args=["certs", "remind"])
            assert result.exit_code == 0, result.output
            return result.output

        for step, (day, subject) in enumerate(REMINDERS, start=1):
            assert "1 reminders sent" in remind(day)
            assert "0 reminders sent" in remind(day)  # the second run the same day: none
            assert len(inbox.messages) == step  # exactly one e-mail per step
            message = inbox.messages[-1]
            assert message["To"] == trainee.email and subject in message["Subject"]
            assert f"Verification: {verify_url}" in message.get_payload(decode=True).decode()
        assert len(inbox.messages) == 4

        with freeze_time(expiry + timedelta(days=1), tick=True):
            public.goto(verify_url)
            assert public.get_by_test_id("certificate-status").inner_text() == "Expired"
    finally:
        controller.stop()
        context.close()
        public.context.close()
        lead_page.context.close()
