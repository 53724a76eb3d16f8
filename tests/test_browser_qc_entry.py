"""A trainer of the QC centre, in Chromium: downloads the import template from the import
page, fills in real user names, uploads it and reads the counts; then enters one record by
hand on the form rendered from the scheme."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.extensions import db
from app.qc.models import QcRecord
from tests.conftest import sign_in

pytestmark = pytest.mark.browser


def test_a_trainer_uploads_the_template_and_enters_one_record_by_hand(
        app, portal_url, page, make_user, make_clinic, tmp_path: Path) -> None:
    clinic = make_clinic("Mathare Clinic")
    make_user(username="amina", clinic=clinic, full_name="Amina Otieno")
    make_user(Role.TRAINEE_RADIOGRAPHER, username="jose", clinic=clinic)
    trainer = make_user(Role.TRAINER, username="dr.qc", full_name="Dr QC")
    sign_in(page, portal_url, "dr.qc")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="QC records").click()
    page.wait_for_url("**/qc/import")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    template = Path(download.value.path()).read_text(encoding="utf-8")
    filled = tmp_path / "march-qc.csv"
    filled.write_text(template.replace("reader.username", "amina")
                      .replace("reader@example.org", "jose@example.org")
                      .replace("qc.radiologist", "dr.qc"), encoding="utf-8")
    page.get_by_label("QC results file (.csv or .xlsx)").set_input_files(str(filled))
    page.get_by_role("button", name="Import").click()
    page.wait_for_load_state()
    assert "2 created, 0 updated, 0 unchanged." in page.get_by_test_id(
        "import-counts").inner_text()

    page.get_by_role("link", name="Enter one record by hand").click()
    page.wait_for_url("**/qc/records/new")
    page.get_by_label("Reader", exact=True).select_option("amina")
    page.get_by_label("Read date").fill("2026-04-01")
    page.get_by_label("QC date").fill("2026-04-08")
    page.get_by_label("Study reference (accession number or Study Instance UID)").fill(
        "ACC-2026-000999")
    page.get_by_test_id("primary-read").get_by_label("Classification").select_option(
        "normal")
    qc_read = page.get_by_test_id("qc-read")
    qc_read.get_by_label("Classification").select_option("abnormal_tb")
    qc_read.get_by_label("Cavitary lesion").check()
    page.get_by_label("Discrepancy grade").select_option("3b")
    page.get_by_role("button", name="Save the QC record").click()
    page.wait_for_load_state()
    assert "The QC record was saved." in page.get_by_role("status").first.inner_text()
    assert page.get_by_label(
        "Study reference (accession number or Study Instance UID)").input_value() == ""
    assert "ACC-2026-000999" not in page.content()

    db.session.expire_all()
    records = list(db.session.scalars(select(QcRecord).order_by(QcRecord.id)))
    assert len(records) == 3
    by_hand = records[-1]
    assert (by_hand.grade, by_hand.qc_radiologist_id, by_hand.qc_read["findings"]) == (
        "3b", trainer.id, ["cavitary_lesion"])
