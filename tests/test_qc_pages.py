"""The programme lead's QC concordance pages on both databases: the table by reader, clinic
and country against measures computed independently (scikit-learn, statsmodels), the
period form as the page renders it, the exports, a reader's summary, CUSUM design and
records, the QC columns of the certification dashboard and reader history, bad input, and
statement counts that do not grow with the readers."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta

import pytest
from bs4 import BeautifulSoup
from flask_babel import force_locale, format_decimal
from openpyxl import load_workbook
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import event
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from app.auth.roles import Role
from app.certification.dashboard import Filters, reader_rows
from app.extensions import db
from app.qc import concordance_routes
from app.qc.control import design_cusum
from app.qc.models import QcImportBatch
from tests.conftest import login
from tests.forms import submit_form
from tests.qc_world import QcWorld, random_records, world  # noqa: F401 (fixture)
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _expected(records) -> dict[str, float | int | None]:
    """The figures of a list of QC records, computed here without app.qc."""
    pairs = [(r.primary_tb, r.qc_tb) for r in records
             if r.primary_tb is not None and r.qc_tb is not None]
    first = [int(p) for p, _ in pairs]
    second = [int(q) for _, q in pairs]
    table = [[sum(1 for a, b in zip(first, second, strict=True) if (a, b) == (i, j))
              for j in (0, 1)] for i in (0, 1)]
    kappa = cohens_kappa(table)
    major = sum(1 for r in records if r.grade == "3b")
    low, high = proportion_confint(major, len(records), method="wilson")
    po = sum(1 for a, b in pairs if a == b) / len(pairs)
    tp = sum(1 for r in records if r.qc_tb and r.primary_tb is True)
    positives = sum(1 for r in records if r.qc_tb)
    tn = sum(1 for r in records if r.qc_tb is False and r.primary_tb is False)
    negatives = sum(1 for r in records if r.qc_tb is False)
    return {"n": len(records), "kappa": cohen_kappa_score(first, second),
            "kappa_ci_low": max(-1.0, kappa.kappa_low), "kappa_ci_high": min(1.0, kappa.kappa_upp),
            "pabak": 2 * po - 1, "major": major, "major_rate": major / len(records),
            "major_low": low, "major_high": high,
            "sensitivity": tp / positives, "specificity": tn / negatives}


def _close(cell: str, value: float) -> bool:
    return abs(float(cell) - value) <= 0.0005 + 1e-9


def _lead(app, user):
    client = app.test_client()
    assert login(client, user.username).status_code == 302
    return client


def test_the_reader_table_matches_an_independent_computation(app, client, world: QcWorld,  # noqa: F811
                                                             login_as) -> None:
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    p = world.programme.id
    page = client.get(f"/qc/programmes/{p}")
    assert page.status_code == 200
    exported = _rows(client.get(f"/qc/programmes/{p}?format=csv").get_data(as_text=True))
    by_name = {row["reader"]: row for row in exported}
    for key in ("amina", "baraka", "carmen", "moved"):
        reader = world.readers[key]
        row, expected = by_name[reader.full_name], _expected(world.of(key))
        assert int(row["qc_reads"]) == expected["n"]
        assert int(row["major_discrepancies"]) == expected["major"]
        for column, name in (("kappa", "kappa"), ("kappa_ci_low", "kappa_ci_low"),
                             ("kappa_ci_high", "kappa_ci_high"), ("pabak", "pabak"),
                             ("major_discrepancy_rate", "major_rate"),
                             ("major_rate_ci_low", "major_low"),
                             ("major_rate_ci_high", "major_high"),
                             ("qc_sensitivity", "sensitivity"),
                             ("qc_specificity", "specificity")):
            assert _close(row[column], expected[name]), (key, column, row[column], expected[name])
        # The page shows kappa with two decimals in the reader's row.
        cells = BeautifulSoup(page.get_data(as_text=True), "html.parser").select_one(
            f'[data-testid="qc-table"] tr[data-key="{reader.id}"]').find_all("td")
        assert cells[0].get_text(strip=True) == reader.full_name
        assert cells[2].get_text(strip=True) == str(expected["n"])
        assert cells[3].get_text(" ", strip=True).startswith(f"{expected['kappa']:.2f}")
    # A reader with no QC read is listed, with nothing to show.
    assert by_name["Esther Idle"]["qc_reads"] == "0" and by_name["Esther Idle"]["kappa"] == ""
    # The exam scores are the dashboard's, to the digit.
    dashboard = {r.name: r for r in reader_rows(world.programme, None, Filters())}
    for name in ("Amina Otieno", "Carmen Quispe"):
        assert by_name[name]["latest_exam_passed"] == str(dashboard[name].exam_passed)
        for column, value in (("latest_exam_sensitivity", dashboard[name].sensitivity),
                              ("latest_exam_specificity", dashboard[name].specificity)):
            assert by_name[name][column] == ("" if value is None else f"{value:.3f}")
    assert by_name["Amina Otieno"]["latest_exam_sensitivity"] != ""
    assert by_name["Baraka Mwangi"]["latest_exam"] == ""


def test_clinic_and_country_tables_through_the_form(client, world: QcWorld, login_as) -> None:  # noqa: F811
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    page = f"/qc/programmes/{world.programme.id}"
    response = submit_form(client, page, button="Show", fields={"by": "clinic"})
    assert response.status_code == 200
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    clinics = {int(tr["data-key"]): tr.find_all("td")
               for tr in soup.select('[data-testid="qc-table"] tbody tr[data-key]')}
    for clinic in world.clinics.values():
        records = [r for r in world.records if r.clinic_id == clinic.id]
        expected = _expected(records)
        assert clinics[clinic.id][2].get_text(strip=True) == str(expected["n"])
        assert f"({expected['major']} of {expected['n']})" in clinics[clinic.id][5].get_text()
    countries = submit_form(client, page, button="Show", fields={"by": "country"})
    rows = {tr["data-key"]: tr.find_all("td") for tr in BeautifulSoup(
        countries.get_data(as_text=True), "html.parser").select("tr[data-key]")}
    kenyan = [r for r in world.records if r.clinic_id != world.clinics["lima"].id]
    assert rows["KE"][1].get_text(strip=True) == str(len(kenyan))
    assert rows["PE"][1].get_text(strip=True) == str(len(world.records) - len(kenyan))


def test_the_period_form_filters_dates_and_last_reads(client, world: QcWorld, login_as) -> None:  # noqa: F811
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    page = f"/qc/programmes/{world.programme.id}"
    start, end = date(2026, 2, 1), date(2026, 4, 30)
    response = submit_form(client, page, button="Show",
                           fields={"start": start.isoformat(), "end": end.isoformat()})
    html = response.get_data(as_text=True)
    soup = BeautifulSoup(html, "html.parser")
    # The form keeps the period; its download links carry it.
    assert soup.select_one('input[name="start"]')["value"] == start.isoformat()
    csv_link = soup.find("a", string="CSV")["href"]
    exported = {r["reader"]: r for r in _rows(client.get(csv_link).get_data(as_text=True))}
    for key in ("amina", "baraka", "carmen"):
        inside = [r for r in world.of(key) if start <= r.read_date <= end]
        row = exported[world.readers[key].full_name]
        assert int(row["qc_reads"]) == len(inside)
        assert _close(row["kappa"], _expected(inside)["kappa"])
    last = submit_form(client, page, button="Show", fields={"last": "7", "by": "reader"})
    exported = {r["reader"]: r for r in _rows(client.get(BeautifulSoup(
        last.get_data(as_text=True), "html.parser").find("a", string="CSV")["href"]
    ).get_data(as_text=True))}
    for key in ("amina", "carmen"):
        newest = sorted(world.of(key), key=lambda r: (r.read_date, r.id))[-7:]
        row = exported[world.readers[key].full_name]
        assert row["qc_reads"] == "7"
        assert row["last_read"] == max(r.read_date for r in newest).isoformat()
        assert int(row["major_discrepancies"]) == _expected(newest)["major"]


def test_exports_translate_headers_and_escape_formula_text(client, world: QcWorld,  # noqa: F811
                                                           login_as) -> None:
    lead = login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    base = f"/qc/programmes/{world.programme.id}?by=clinic"
    text = client.get(f"{base}&format=csv").get_data(as_text=True)
    assert text.splitlines()[0].startswith("country,clinic,qc_reads,first_read,last_read,kappa")
    assert "'=Mombasa site" in text
    book = load_workbook(io.BytesIO(client.get(f"{base}&format=xlsx").data))
    sheet = book.active
    names = [row[1] for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert "=Mombasa site" in names
    cell = next(c for c in sheet["B"] if c.value == "=Mombasa site")
    assert cell.data_type == "s"
    lead.language = "fr"
    db.session.commit()
    french = client.get(f"{base}&format=csv").get_data(as_text=True).splitlines()[0]
    assert french.startswith("pays,") and "lectures contrôlées" in french
    with force_locale("fr"):
        assert format_decimal(0.5, "0.00") == "0,50"


def test_the_reader_page_states_the_cusum_and_lists_records(app, client, world: QcWorld,  # noqa: F811
                                                            login_as, monkeypatch) -> None:
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    monkeypatch.setattr(concordance_routes, "RECORDS_PER_PAGE", 25)
    amina = world.readers["amina"]
    url = f"/qc/programmes/{world.programme.id}/readers/{amina.id}"
    html = client.get(url).get_data(as_text=True)
    soup = BeautifulSoup(html, "html.parser")
    design = design_cusum(0.05)
    words = soup.select_one('[data-testid="qc-cusum-design"]').get_text(" ", strip=True)
    assert "5 %" in words and f"h = {design.h:.2f}" in words
    assert f"{design.in_control_arl:,.0f}" in words
    summary = soup.select_one('[data-testid="qc-reader-summary"] tbody tr').find_all("td")
    expected = _expected(world.of("amina"))
    assert summary[0].get_text(strip=True) == "60"
    assert summary[1].get_text(" ", strip=True).startswith(f"{expected['kappa']:.2f}")
    assert "passed" in summary[6].get_text()  # her latest exam beside
    newest = sorted(world.of("amina"), key=lambda r: (r.read_date, r.id), reverse=True)
    table = soup.select_one('[data-testid="qc-records"]')
    shown = [code.get_text() for code in table.select("code")]
    assert shown == [r.study_pseudonym for r in newest[:25]]
    assert not table.find("img") and "page 1 of 3" in html
    second = BeautifulSoup(client.get(soup.find("a", string="older")["href"]).get_data(
        as_text=True), "html.parser")
    assert [c.get_text() for c in second.select('[data-testid="qc-records"] code')] == [
        r.study_pseudonym for r in newest[25:50]]
    # Through the period form: the last 10 reads only, in the summary and the records.
    last = BeautifulSoup(submit_form(client, url, button="Show", fields={"last": "10"})
                         .get_data(as_text=True), "html.parser")
    assert last.select_one('[data-testid="qc-reader-summary"] td').get_text() == "10"
    assert [c.get_text() for c in last.select('[data-testid="qc-records"] code')] == [
        r.study_pseudonym for r in newest[:10]]


def test_figures_appear_where_their_views_exist(app, client, world: QcWorld,  # noqa: F811
                                                login_as) -> None:
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    amina = world.readers["amina"]
    pages = (f"/qc/programmes/{world.programme.id}",
             f"/qc/programmes/{world.programme.id}/readers/{amina.id}")
    if "qc.funnel_png" not in app.view_functions:
        for page in pages:
            assert "<img" not in client.get(page).get_data(as_text=True).split("<main")[-1]
        return
    assert 'data-testid="qc-funnel"' in client.get(pages[0]).get_data(as_text=True)
    assert 'data-testid="qc-cusum"' in client.get(pages[1]).get_data(as_text=True)


@pytest.mark.parametrize(("query", "reason"), [
    ("start=2026-13-01", "is not a date"),
    ("end=yesterday", "is not a date"),
    ("start=2026-05-01&end=2026-04-01", "starts after it ends"),
    ("last=0", "whole number from 1"),
    ("last=abc", "whole number from 1"),
    ("by=radiologist", "by reader, clinic or country"),
    ("format=pdf", "csv or xlsx"),
])
def test_bad_input_is_a_400_with_the_reason(client, world: QcWorld, login_as, query,  # noqa: F811
                                            reason) -> None:
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    response = client.get(f"/qc/programmes/{world.programme.id}?{query}")
    assert response.status_code == 400 and reason in response.get_data(as_text=True)
    if not query.startswith(("by", "format")):
        reader = client.get(f"/qc/programmes/{world.programme.id}/readers/"
                            f"{world.readers['amina'].id}?{query}")
        assert reader.status_code == 400 and reason in reader.get_data(as_text=True)


def test_unknown_programmes_and_readers_are_404_with_a_reason(client, world: QcWorld,  # noqa: F811
                                                              login_as, make_user) -> None:
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    p = world.programme.id
    assert "no such programme" in client.get("/qc/programmes/99999").get_data(as_text=True)
    assert client.get("/qc/programmes/99999").status_code == 404
    radiographer = make_user(Role.TRAINEE_RADIOGRAPHER, clinic=world.clinics["nairobi"])
    for user_id in (99999, world.readers["carmen"].id, radiographer.id):
        response = client.get(f"/qc/programmes/{p}/readers/{user_id}")
        assert response.status_code == 404
        assert "no such reader of this programme in your countries" in response.get_data(
            as_text=True)
    assert client.get(f"/qc/programmes/{p}/readers/{world.readers['amina'].id}?page=x"
                      ).status_code == 400


def test_the_dashboard_and_reader_history_show_qc_beside_exams(client, world: QcWorld,  # noqa: F811
                                                               login_as) -> None:
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    p = world.programme.id
    html = client.get(f"/certification/programmes/{p}").get_data(as_text=True)
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select_one('[data-testid="qc-link"]')["href"] == f"/qc/programmes/{p}"
    rows = {tr.find("a").get_text(): tr.find_all("td")
            for tr in soup.select('[data-testid="readers-table"] tbody tr') if tr.find("a")}
    amina = _expected(world.of("amina"))
    cells = rows["Amina Otieno"]
    assert cells[7].get_text(strip=True) == "60"
    assert cells[7].find("a")["href"] == f"/qc/programmes/{p}/readers/{world.readers['amina'].id}"
    assert cells[8].get_text(strip=True) == f"{round(amina['major_rate'] * 100)} %"
    assert cells[9].get_text(strip=True) == f"{amina['kappa']:.2f}"
    # The moved reader's Lima records are not in a Kenyan lead's columns.
    assert rows["Diego Moved"][7].get_text(strip=True) == "9"
    assert rows["Esther Idle"][7].get_text(strip=True) == "0"
    history = BeautifulSoup(client.get(f"/certification/readers/{world.readers['moved'].id}")
                            .get_data(as_text=True), "html.parser")
    qc = history.select_one('[data-testid="reader-qc"] tbody tr').find_all("td")
    assert qc[1].get_text(strip=True) == "9"
    assert qc[5].find("a")["href"] == f"/qc/programmes/{p}/readers/{world.readers['moved'].id}"


def _count_statements(client, url: str) -> int:
    seen: list[str] = []

    def count(*args, **kwargs) -> None:
        seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert response.status_code == 200, (url, response.status_code)
    return len(seen)


def test_statements_do_not_grow_with_readers_and_records(app, world: QcWorld, make_user,  # noqa: F811
                                                         make_clinic) -> None:
    lead = make_user(Role.PROGRAMME_LEAD, countries=("KE", "PE"))
    client = _lead(app, lead)
    p = world.programme.id
    amina = world.readers["amina"].id
    urls = [f"/qc/programmes/{p}", f"/qc/programmes/{p}?by=clinic",
            f"/qc/programmes/{p}?by=country&last=5", f"/qc/programmes/{p}?format=csv",
            f"/qc/programmes/{p}?format=xlsx&by=clinic",
            f"/qc/programmes/{p}/readers/{amina}", f"/qc/programmes/{p}/readers/{amina}?page=2",
            f"/certification/programmes/{p}", f"/certification/readers/{amina}"]
    before = [_count_statements(client, url) for url in urls]
    rng = random.Random(5)
    batch = QcImportBatch(source="manual")
    db.session.add(batch)
    db.session.flush()
    for n in range(12):
        clinic = make_clinic(f"More {n}", country=("KE", "PE")[n % 2])
        reader = make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinic)
        random_records(world, reader, clinic, 15, rng, batch)
    random_records(world, world.readers["amina"], world.clinics["nairobi"], 40, rng, batch,
                   start=date(2026, 1, 5) + timedelta(days=1))
    db.session.commit()
    assert [_count_statements(client, url) for url in urls] == before
