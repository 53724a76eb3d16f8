"""The QC pages lead to each other: the trainers' QC records page offers the discordant
studies to promote, a reader's QC page shows their flag and, to trainers and
administrators, the promote link or the case a study became, and the flags page links each
reader's QC page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from app.auth.models import User
from app.auth.roles import Role
from app.extensions import db
from app.qc.models import QcRecord
from tests.conftest import login, sign_out
from tests.test_qc_flags import flags, imported, qc_rows, world  # noqa: F401  (fixture)


def _links(html: str, selector: str = "main") -> dict[str, str]:
    soup = BeautifulSoup(html, "html.parser")
    return {a.get_text(" ", strip=True): a["href"] for a in soup.select(f"{selector} a[href]")}


def _record(study_index: int, reader: User) -> QcRecord:
    records = db.session.query(QcRecord).filter_by(reader_id=reader.id).order_by(QcRecord.id)
    return records.all()[study_index]


def test_the_qc_records_page_offers_the_discordant_studies_to_promote(
        client: FlaskClient, world: dict[str, Any]) -> None:  # noqa: F811
    imported(qc_rows("amina", majors=2, total=4))
    discordant = [_record(0, world["amina"]), _record(1, world["amina"])]
    concordant = _record(3, world["amina"])
    login(client, "dr.qc")
    page = client.get("/qc/import")
    assert page.status_code == 200
    table = BeautifulSoup(page.text, "html.parser").select_one(
        "[data-testid=promotable-records]")
    shown = table.get_text(" ")
    assert all(r.study_pseudonym in shown for r in discordant)
    assert concordant.study_pseudonym not in shown
    hrefs = [a["href"] for a in table.select("tbody a[href]")]
    assert sorted(hrefs) == sorted(f"/qc/records/{r.id}/promote" for r in discordant)
    assert client.get(hrefs[0]).status_code == 200


def test_a_readers_qc_page_shows_the_flag_and_who_may_promote(
        client: FlaskClient, world: dict[str, Any],  # noqa: F811
        make_user: Callable[..., User]) -> None:
    imported(qc_rows("amina", majors=5))
    assert [f.reader_id for f in flags()] == [world["amina"].id]
    programme, amina = world["programme"], world["amina"]
    path = f"/qc/programmes/{programme.id}/readers/{amina.id}"
    make_user(Role.PROGRAMME_LEAD, username="lead.ke", countries=("KE",))
    make_user(Role.ADMIN, username="root")

    login(client, "lead.ke")
    lead_page = client.get(path)
    assert lead_page.status_code == 200
    soup = BeautifulSoup(lead_page.text, "html.parser")
    flagged = soup.select_one("[data-testid=reader-flagged]")
    assert flagged is not None and flagged.a["href"] == "/qc/flags"
    assert "/promote" not in lead_page.text  # leads decide flags; trainers promote
    flags_page = client.get("/qc/flags")
    assert _links(flags_page.text, "[data-testid=qc-flag] h2")[amina.full_name] == path
    index = client.get("/certification/")
    assert f"/qc/programmes/{programme.id}" in _links(index.text).values()
    qc_page = client.get(f"/qc/programmes/{programme.id}")
    assert "/qc/flags" in _links(qc_page.text).values()
    sign_out(client, "/certification/")

    login(client, "root")
    admin_page = client.get(path)
    table = BeautifulSoup(admin_page.text, "html.parser").select_one("[data-testid=qc-records]")
    promote = [a["href"] for a in table.select("tbody a[href]")]
    majors = [r for r in db.session.query(QcRecord).filter_by(reader_id=amina.id)
              if r.grade == "3b"]
    assert sorted(promote) == sorted(f"/qc/records/{r.id}/promote" for r in majors)

    # A promoted study shows its case instead.
    case_of = majors[0]
    from tests.test_qc_flags import library_case

    case = library_case(world["qc"], 900, ["infiltrate"])
    case_of.case_id = case.id
    db.session.commit()
    table = BeautifulSoup(client.get(path).text, "html.parser").select_one(
        "[data-testid=qc-records]")
    links = [a["href"] for a in table.select("tbody a[href]")]
    assert f"/cases/{case.id}" in links and f"/qc/records/{case_of.id}/promote" not in links


def test_a_reader_sees_their_own_qc_concordance_on_their_certification_page(
        client: FlaskClient, world: dict[str, Any]) -> None:  # noqa: F811
    imported(qc_rows("amina", majors=2, total=10))
    imported(qc_rows("jose", majors=0, total=4, prefix="j-"))
    login(client, "amina")
    mine = BeautifulSoup(client.get("/certification/mine").text, "html.parser")
    section = mine.select_one("[data-testid=my-qc]")
    assert section is not None
    first_row = [td.get_text(" ", strip=True) for td in section.select("tbody td")]
    assert first_row[0] == "10"  # her reads only, not Jose's
    assert first_row[1].startswith("20") and "2 of 10" in first_row[1]
    sign_out(client, "/certification/mine")

    login(client, "dr.qc")  # no live read of their own: no section
    assert "my-qc" not in client.get("/certification/mine").text
