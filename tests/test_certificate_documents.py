"""What a certificate's PDF, the links in e-mails and the spreadsheet exports carry:
addresses from PUBLIC_BASE_URL only, a revoked or expired certificate stamped as such,
cells a spreadsheet shows as text, exceptions only within a programme's roles."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from freezegun import freeze_time
from openpyxl import load_workbook
from sqlalchemy import select

from app import MIGRATIONS_DIR
from app.auth.invitations import invitation_url
from app.auth.roles import Role
from app.certification.models import Certificate
from app.certification.services import (
    CertificationError,
    grant_exception,
    new_code,
    revoke,
    status,
)
from app.db_types import utcnow
from app.exports import csv_cell
from app.extensions import db
from tests.conftest import login
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_browser_certificate import _read_pdf
from tests.test_certification import programme  # noqa: F401 (fixture)

PUBLIC = "https://cxr.example.org/academy"
FORGED = "verify.evil.example"


@pytest.fixture
def holder(app, make_user, programme):  # noqa: F811
    app.config["PUBLIC_BASE_URL"] = PUBLIC
    lead = make_user(Role.PROGRAMME_LEAD)
    reader = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Amina O")
    certificate = grant_exception(reader, programme, reason="national exam", actor=lead)
    return reader, certificate, lead


def _pdf(client, certificate: Certificate):
    """Download the PDF as a request to a forged Host would (the session carried over)."""
    session = client.get_cookie("cxr_session")
    client.set_cookie("cxr_session", session.value, domain=FORGED)
    response = client.get(f"/certification/certificates/{certificate.id}.pdf",
                          base_url=f"http://{FORGED}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return _read_pdf(response.data)


def test_pdf_prints_and_encodes_the_public_address_whatever_the_host_header(
        client, holder):
    reader, certificate, _ = holder
    login(client, reader.username)
    text, codes = _pdf(client, certificate)
    expected = f"{PUBLIC}/verify/{certificate.code}"
    assert [value for _, value in codes] == [expected]
    assert f"Verify at: {expected}" in text
    assert FORGED not in text
    assert "NOT VALID" not in text and "REVOKED" not in text and "EXPIRED" not in text


def test_revoked_certificate_pdf_is_stamped_revoked(client, holder):
    reader, certificate, lead = holder
    revoke(certificate, reason="evidence withdrawn", actor=lead)
    login(client, reader.username)
    text, _ = _pdf(client, certificate)
    stamp = f"REVOKED on {certificate.revoked_at:%d %B %Y}"
    assert f"NOT VALID: {stamp}" in text
    assert text.count(stamp) == 2  # the banner and the diagonal stamp across the page


def test_expired_certificate_pdf_is_stamped_expired(client, holder):
    reader, certificate, _ = holder
    with freeze_time(certificate.expires_at + timedelta(days=1)):
        login(client, reader.username)
        text, codes = _pdf(client, certificate)
    assert f"NOT VALID: EXPIRED on {certificate.expires_at:%d %B %Y}" in text
    assert codes  # the code still leads to the public page, which says "expired"


def test_invitation_links_ignore_the_host_header(app, make_user):
    app.config["PUBLIC_BASE_URL"] = PUBLIC
    user = make_user()
    with app.test_request_context("/admin/users", headers={"Host": FORGED}):
        link = invitation_url(user)
    assert link.startswith(f"{PUBLIC}/auth/invitation/")


# --- spreadsheet exports ------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)",
            "\t=1", "\r=1"]


@pytest.mark.parametrize("value", FORMULAS)
def test_csv_cells_that_would_start_a_formula_are_text(value):
    assert csv_cell(value) == "'" + value


def test_numbers_and_plain_text_are_left_alone():
    assert csv_cell(-3) == -3 and csv_cell(-0.5) == -0.5
    assert csv_cell("Dr Amina O") == "Dr Amina O" and csv_cell("") == ""


def test_exports_write_a_formula_named_reader_as_text(client, make_user, make_clinic,
                                                      programme):  # noqa: F811
    clinic = make_clinic("=HYPERLINK(\"http://evil.example\",\"Mombasa\")", "Mombasa", "KE")
    reader = make_user(Role.TRAINEE_RADIOLOGIST, full_name="=HYPERLINK(\"http://e.example\")",
                       clinic=clinic)
    lead = make_user(Role.PROGRAMME_LEAD, countries=("KE",))
    grant_exception(reader, programme, reason="national exam", actor=lead)
    login(client, lead.username)
    url = f"/certification/programmes/{programme.id}"
    readers = client.get(f"{url}?format=csv&table=readers")
    clinics = client.get(f"{url}?format=csv")
    sheet = client.get(f"{url}?format=xlsx&table=readers")
    assert readers.status_code == clinics.status_code == sheet.status_code == 200

    [header, row] = list(csv.reader(io.StringIO(readers.get_data(as_text=True))))
    assert header[1:3] == ["clinic", "reader"]
    assert row[1] == "'=HYPERLINK(\"http://evil.example\",\"Mombasa\")"
    assert row[2] == "'=HYPERLINK(\"http://e.example\")"
    clinic_rows = list(csv.reader(io.StringIO(clinics.get_data(as_text=True))))
    assert clinic_rows[1][1].startswith("'=HYPERLINK")

    cells = load_workbook(io.BytesIO(sheet.data)).active[3]
    assert cells[2].value == "=HYPERLINK(\"http://e.example\")"
    assert cells[2].data_type == "s"  # a string cell, not a formula
    assert all(c.data_type != "f" for c in cells)


# --- exceptions and eligible roles -----------------------------------------------------------

def test_exception_for_a_reader_outside_the_programme_roles_is_refused(
        make_user, programme):  # noqa: F811
    lead = make_user(Role.PROGRAMME_LEAD)
    radiographer = make_user(Role.TRAINEE_RADIOGRAPHER, full_name="Grace R")
    with pytest.raises(CertificationError, match=r"Grace R is not eligible for .*radiologist"):
        grant_exception(radiographer, programme, reason="national exam", actor=lead)
    db.session.rollback()
    assert db.session.scalars(select(Certificate)).all() == []


def test_migration_revokes_exceptions_granted_outside_the_programme_roles(
        client, make_user, programme):  # noqa: F811
    """Certificates issued before the refusal existed: revoked, with the reason."""
    lead = make_user(Role.PROGRAMME_LEAD)
    radiographer = make_user(Role.TRAINEE_RADIOGRAPHER)
    radiologist = make_user(Role.TRAINEE_RADIOLOGIST)
    now = utcnow()
    bad, good = (Certificate(code=new_code(), programme_id=programme.id, user_id=user.id,
                             holder_name=user.full_name, issued_at=now,
                             expires_at=now + timedelta(days=730), evidence={},
                             exception_reason="as before")
                 for user in (radiographer, radiologist))
    db.session.add_all([bad, good])
    db.session.commit()
    codes = bad.code, good.code
    assert lead  # the lead granted them in the old days
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="c4d8e2f1a7b3")
    upgrade(directory=str(MIGRATIONS_DIR))
    bad, good = (db.session.scalars(select(Certificate).where(Certificate.code == c)).one()
                 for c in codes)
    assert status(bad) == "revoked" and "not eligible" in (bad.revoke_reason or "")
    assert status(good) == "valid"
    page = client.get(f"/verify/{bad.code}").get_data(as_text=True)
    assert "revoked" in page.lower()
