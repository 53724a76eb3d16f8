"""A trainer moves an imported case through its statuses with the buttons on its page, in
Chromium: submit for review, back to draft, publish, retire."""

from __future__ import annotations

import re

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case, CaseStatus
from app.extensions import db
from tests.conftest import sign_in

pytestmark = pytest.mark.browser


def test_trainer_presses_the_case_status_buttons(app, portal_url, page, make_user):
    from playwright.sync_api import expect

    from app.cases.ingest import ImportOptions, Source, import_files

    trainer = make_user(Role.TRAINER)
    # A real chest CR; it has no BurnedInAnnotation, so publishing waits for a pixel review.
    path = get_testdata_file("RG1_UNCR.dcm")
    with open(path, "rb") as f:
        data = f.read()
    import_files([Source("rg1.dcm", lambda: data)], actor=trainer, options=ImportOptions())
    case = db.session.scalars(select(Case)).one()
    case_url = f"{portal_url}/cases/{case.id}"

    sign_in(page, portal_url, trainer.username)
    page.goto(case_url)
    badge = page.locator("h1 .badge").first

    def press(button: str, now: str) -> None:
        page.get_by_role("button", name=button, exact=True).click()
        page.wait_for_url(case_url)
        expect(badge).to_have_text(now)
        expect(page.get_by_text(f"{case.title} is now {now}.")).to_be_visible()

    expect(badge).to_have_text("draft")
    press("Submit for review", "in review")
    press("Back to draft", "draft")
    press("Submit for review", "in review")

    # Publishing is refused, with the reason, until the case has a reference read.
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_test_id("error-reason")).to_contain_text("needs a reference read")
    page.goto(case_url)
    expect(badge).to_have_text("in review")

    page.get_by_role("link", name="Write the reference read").click()
    page.get_by_label("Reporting scheme").select_option(label="TB screening read with "
                                                               "likelihood rating")
    page.get_by_role("button", name="Use this scheme").click()
    page.get_by_label("Abnormal \N{EN DASH} suggestive of TB").check()
    page.locator("input[name=tb_likelihood][value='5']").check()
    page.get_by_label("Cavitary lesion").check()
    page.get_by_role("button", name="Save read").click()
    page.wait_for_url(case_url)

    page.get_by_role("link", name="Review the pixels").click()
    page.get_by_role("button", name=re.compile("record the review")).click()
    page.wait_for_url(case_url)

    press("Publish", "published")
    expect(page.get_by_role("button", name="Back to draft", exact=True)).to_have_count(0)
    press("Retire", "retired")
    press("Back to draft", "draft")

    db.session.expire_all()
    assert db.session.get(Case, case.id).status == CaseStatus.DRAFT.value
