"""Programme-lead dashboards: counts per clinic by reader state, filters, the readers behind
the counts, the sensitivity/specificity figure, a reader's history, the certificate list, and
query counts that do not grow with the data."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from freezegun import freeze_time
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import event, select

from app.auth.models import User
from app.auth.roles import Role
from app.auth.services import set_password
from app.certification.dashboard import Filters, exam_scores_by_clinic, reader_rows
from app.certification.models import Certificate, Programme
from app.certification.services import revoke
from app.extensions import db
from app.quizzes.models import Attempt
from bench.scale_data import Scale, populate
from tests.conftest import PASSWORD, login
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import T0, TB, _exercise, _take, programme  # noqa: F401

VIEW = T0 + timedelta(days=700)
NORMAL = {"overall": "normal"}


def _certify(programme, user, when):  # noqa: F811
    with freeze_time(when):
        _take(_exercise(programme, "practice"), user, TB)
        _take(_exercise(programme, "exam"), user, TB)


@pytest.fixture
def clinics(programme, make_user, make_clinic):  # noqa: F811
    """Readers in every state, seen at VIEW: Nairobi has one expiring, one certified, one
    in progress (a failed exam) and one whose certificate was revoked; Mombasa one expired
    and one not started; Lima is outside a Kenyan lead's scope."""
    nairobi = make_clinic("Nairobi site", "Nairobi", "KE")
    mombasa = make_clinic("Mombasa site", "Mombasa", "KE")
    lima = make_clinic("Lima site", "Lima", "PE")
    people = {}
    for key, clinic in (("expiring", nairobi), ("certified", nairobi), ("progress", nairobi),
                        ("revoked", nairobi), ("expired", mombasa), ("idle", mombasa),
                        ("peru", lima)):
        people[key] = make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinic,
                                full_name=f"Reader {key}")
    make_user(Role.TRAINEE_RADIOGRAPHER, clinic=nairobi)  # not eligible
    _certify(programme, people["expiring"], T0)
    _certify(programme, people["certified"], VIEW - timedelta(days=10))
    _certify(programme, people["expired"], T0 - timedelta(days=100))
    _certify(programme, people["revoked"], T0 + timedelta(days=650))
    _certify(programme, people["peru"], T0)
    with freeze_time(T0):
        _take(_exercise(programme, "practice"), people["progress"], TB)
        _take(_exercise(programme, "exam"), people["progress"], NORMAL)
        lead = make_user(Role.PROGRAMME_LEAD, countries=("KE",))
        revoke(db.session.scalars(select(Certificate).where(
            Certificate.user_id == people["revoked"].id)).one(), reason="doubt", actor=lead)
    return {"nairobi": nairobi, "mombasa": mombasa, "lima": lima, "lead": lead, **people}


def _cells(page: str, clinic: str) -> list[str]:
    row = re.search(rf">{clinic}</a></td>(.*?)</tr>", page, re.S).group(1)
    return re.findall(r"<td>([^<]*)</td>", row)


def _reader_names(page: str) -> list[str]:
    table = page.split('data-testid="readers-table"')[1].split("</table>")[0]
    return re.findall(r'/certification/readers/\d+">([^<]+)</a>', table)


def test_counts_per_clinic_by_reader_state(client, programme, clinics):  # noqa: F811
    url = f"/certification/programmes/{programme.id}"
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        page = client.get(url).get_data(as_text=True)
    assert "Lima site" not in page and "Reader peru" not in page
    # enrolled, certified, expiring, expired, in progress, not started; exam pass rate
    assert _cells(page, "Nairobi site")[:6] == ["4", "2", "1", "0", "2", "0"]
    assert "75 % of 4" in page
    assert _cells(page, "Mombasa site")[:6] == ["2", "0", "0", "1", "0", "1"]
    # Per country: the two Kenyan clinics summed.
    kenya = page.split('data-testid="country-table"')[1].split("</table>")[0]
    assert re.findall(r"<td>([^<]*)</td>", kenya)[:7] == ["2", "6", "2", "1", "1", "2", "1"]
    assert "80 % of 5" in kenya
    assert _reader_names(page) == ["Reader expired", "Reader idle", "Reader certified",
                                   "Reader expiring", "Reader progress", "Reader revoked"]


@pytest.mark.parametrize(("query", "readers", "clinic_rows"), [
    ("status=expiring", ["Reader expiring"], ["Mombasa site", "Nairobi site"]),
    ("status=certified", ["Reader certified", "Reader expiring"], ["Mombasa site",
                                                                   "Nairobi site"]),
    ("status=expired", ["Reader expired"], ["Mombasa site", "Nairobi site"]),
    ("status=in_progress", ["Reader progress", "Reader revoked"], ["Mombasa site",
                                                                   "Nairobi site"]),
    ("status=not_started", ["Reader idle"], ["Mombasa site", "Nairobi site"]),
    ("clinic={mombasa}", ["Reader expired", "Reader idle"], ["Mombasa site"]),
    ("clinic={mombasa}&status=expired", ["Reader expired"], ["Mombasa site"]),
    ("country=ke", ["Reader expired", "Reader idle", "Reader certified", "Reader expiring",
                    "Reader progress", "Reader revoked"], ["Mombasa site", "Nairobi site"]),
    ("country=PE", [], []),  # outside the lead's countries: nothing, not an error
    ("clinic={lima}", [], []),
])
def test_filters_by_country_clinic_and_status(client, programme, clinics, query, readers,  # noqa: F811
                                              clinic_rows):
    query = query.format(mombasa=clinics["mombasa"].id, lima=clinics["lima"].id)
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        page = client.get(f"/certification/programmes/{programme.id}?{query}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert _reader_names(text) == readers
    table = text.split('data-testid="programme-table"')[1].split("</table>")[0]
    assert re.findall(r'">([^<]+ site)</a>', table) == clinic_rows


def test_reader_and_clinic_exports_follow_the_filters(client, programme, clinics):  # noqa: F811
    url = f"/certification/programmes/{programme.id}"
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        readers_csv = client.get(f"{url}?format=csv&table=readers&status=certified")
        clinics_csv = client.get(f"{url}?format=csv&clinic={clinics['mombasa'].id}")
        readers_xlsx = client.get(f"{url}?format=xlsx&table=readers")
    rows = list(csv.reader(io.StringIO(readers_csv.get_data(as_text=True))))
    assert rows[0][:4] == ["country", "clinic", "reader", "state"]
    assert [(r[2], r[3]) for r in rows[1:]] == [("Reader certified", "certified"),
                                                ("Reader expiring", "expiring within 90 days")]
    certified = rows[1]
    assert certified[4] == (VIEW - timedelta(days=10) + timedelta(days=730)).date().isoformat()
    assert certified[6] == "True" and certified[7] == "1.000"
    assert clinics_csv.get_data(as_text=True).splitlines()[1:] == [
        "KE,Mombasa site,2,0,0,1,0,1,1,1.000"]
    sheet = load_workbook(io.BytesIO(readers_xlsx.data)).active
    assert sheet.title == "Readers" and sheet.cell(3, 3).value == "Reader expired"
    assert sheet.max_row == 2 + 6


@pytest.mark.parametrize(("query", "reason"), [
    ("country=Kenya", "two-letter ISO code"),
    ("clinic=abc", "clinic number"),
    ("status=lapsed", "status filter takes one of"),
    ("format=pdf", "csv or xlsx"),
    ("format=csv&table=cases", "clinics or readers"),
    ("page=0", "positive whole number"),
    ("page=x", "positive whole number"),
])
def test_bad_dashboard_filters_are_refused_with_a_reason(client, programme, login_as,  # noqa: F811
                                                         query, reason):
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    for path in ("", "/scores.png"):
        if path and query.startswith(("format", "page")):
            continue
        response = client.get(f"/certification/programmes/{programme.id}{path}?{query}")
        assert response.status_code == 400
        assert reason in response.get_data(as_text=True)
    assert client.get("/certification/programmes/9999").status_code == 404


def test_trainees_and_trainers_cannot_see_dashboards(client, programme, login_as):  # noqa: F811
    user = login_as(Role.TRAINEE_RADIOLOGIST, Role.TRAINER)
    for url in (f"/certification/programmes/{programme.id}",
                f"/certification/programmes/{programme.id}/scores.png",
                f"/certification/readers/{user.id}", "/certification/certificates"):
        assert client.get(url).status_code == 403


def test_figure_of_sensitivity_and_specificity_per_clinic(client, programme,  # noqa: F811
                                                         clinics):
    scores = exam_scores_by_clinic(programme, ["KE"], Filters())
    assert [c.name for c, _, _ in scores] == ["Mombasa site", "Nairobi site"]
    nairobi = dict((c.name, (sens, spec)) for c, sens, spec in scores)["Nairobi site"]
    latest = {a.user_id: a for a in db.session.scalars(
        select(Attempt).where(Attempt.exercise_id == _exercise(programme, "exam").id))}
    expected = sorted(latest[clinics[k].id].sensitivity
                      for k in ("expiring", "certified", "revoked", "progress"))
    assert sorted(nairobi[0]) == expected
    assert sorted(nairobi[1]) == sorted(
        v for k in ("expiring", "certified", "revoked", "progress")
        if (v := latest[clinics[k].id].specificity) is not None)
    assert 0.0 in nairobi[0] and 1.0 in nairobi[0]  # the failed exam and the passed ones

    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        both = client.get(f"/certification/programmes/{programme.id}/scores.png")
        one = client.get(f"/certification/programmes/{programme.id}/scores.png"
                         f"?clinic={clinics['nairobi'].id}")
        none = client.get(f"/certification/programmes/{programme.id}/scores.png?country=PE")
    assert both.mimetype == "image/png"
    heights = [Image.open(io.BytesIO(r.data)).size[1] for r in (both, one, none)]
    assert heights[0] > heights[1] >= heights[2]  # one row per clinic


def test_reader_history_shows_attempts_certificates_and_progress(client, programme,  # noqa: F811
                                                                 clinics, login_as):
    reader = clinics["revoked"]
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        page = client.get(f"/certification/readers/{reader.id}").get_data(as_text=True)
        outside = client.get(f"/certification/readers/{clinics['peru'].id}")
        unknown = client.get("/certification/readers/999999")
    assert "Reader revoked" in page and "Nairobi site" in page
    certificate = db.session.scalars(select(Certificate).where(
        Certificate.user_id == reader.id)).one()
    assert certificate.code in page and "revoked: doubt" in page
    attempts = page.split('data-testid="reader-attempts"')[1]
    assert attempts.count("<tr><td>") == 2 and "passed" in attempts and "100 %" in attempts
    progress = page.split("<h2>Progress</h2>")[1].split("<h2>")[0]
    assert re.search(r"“Exam”:\s+done", progress), progress
    assert "2 attempts, newest first" in page
    assert outside.status_code == 404 and "no such reader in your countries" in (
        outside.get_data(as_text=True))
    assert unknown.status_code == 404


def test_reader_history_pages_long_histories(client, programme, make_user,  # noqa: F811
                                             login_as):
    reader = make_user(Role.TRAINEE_RADIOLOGIST)
    for _ in range(3):
        _take(_exercise(programme, "practice"), reader, TB)
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    from app.certification import history

    first = history.reader_history(reader, page=1, per_page=2)
    second = history.reader_history(reader, page=2, per_page=2)
    assert (first.total_attempts, first.pages) == (3, 2)
    assert [a.number for a in first.attempts] == [3, 2]
    assert [a.number for a in second.attempts] == [1]
    page = client.get(f"/certification/readers/{reader.id}?page=1").get_data(as_text=True)
    assert "3 attempts, newest first" in page
    assert client.get(f"/certification/readers/{reader.id}?page=-1").status_code == 400


def test_certificate_list_filters_and_pages(client, programme, clinics):  # noqa: F811
    client.application.config["CERTIFICATES_PAGE_SIZE"] = 2
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)

        def holders(query: str) -> list[str]:
            page = client.get(f"/certification/certificates?{query}")
            assert page.status_code == 200, page.get_data(as_text=True)
            table = page.get_data(as_text=True).split('data-testid="certificates-table"')[1]
            return re.findall(r'/certification/readers/\d+">([^<]+)</a>', table)

        # Four certificates in Kenya (Peru's is out of scope), newest first, two a page.
        assert holders("") == ["Reader certified", "Reader revoked"]
        assert holders("page=2") == ["Reader expiring", "Reader expired"]
        assert holders("status=valid") == ["Reader certified", "Reader expiring"]
        assert holders("status=revoked") == ["Reader revoked"]
        assert holders("status=expired") == ["Reader expired"]
        assert holders(f"clinic={clinics['mombasa'].id}") == ["Reader expired"]
        assert holders("q=expir") == ["Reader expiring", "Reader expired"]
        code = db.session.scalars(select(Certificate.code).where(
            Certificate.user_id == clinics["expired"].id)).one()
        assert holders(f"q={code[:4]}-{code[4:8]}-{code[8:]}") == ["Reader expired"]
        assert holders("q=100%25") == []  # a literal %, not a wildcard
        assert holders(f"programme={programme.id}&country=PE") == []
        for query, reason in (("status=lapsed", "valid, expired or revoked"),
                              ("programme=x", "programme filter takes a number"),
                              ("q=" + "x" * 201, "too long"), ("page=0", "positive")):
            response = client.get(f"/certification/certificates?{query}")
            assert response.status_code == 400 and reason in response.get_data(as_text=True)


def test_my_certification_page_shows_progress_from_the_database(client, programme,  # noqa: F811
                                                               clinics):
    with freeze_time(VIEW):
        login(client, clinics["progress"].username)
        page = client.get("/certification/mine").get_data(as_text=True)
    assert "“Practice”: done" in page and "“Exam”: not yet" in page


# ---- scale: the number of queries per page does not grow with the data --------------------

SMALL = Scale(users=30, clinics=3, countries=2, attempts=150, certificates=20,
              cases_per_exercise=3)
MORE = Scale(users=120, clinics=9, countries=4, attempts=900, certificates=100,
             cases_per_exercise=3)


def _statement_counts(clients, urls) -> dict[str, int]:
    counts = {}
    for who, url in urls:
        statements: list[str] = []

        def count(*args, **kwargs) -> None:
            statements.append(args[2])  # noqa: B023 (used at once)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            response = clients[who].get(url)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert response.status_code == 200, (url, response.status_code)
        counts[f"{who} {url}"] = len(statements)
    return counts


def test_dashboard_query_counts_do_not_grow_with_the_data(app, make_user):
    data = populate(SMALL, seed=1, tag="a")
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    country_lead = make_user(Role.PROGRAMME_LEAD, countries=tuple(data.country_codes))
    trainer = make_user(Role.TRAINER)
    trainee = db.session.get(User, data.busiest_reader_id)
    set_password(trainee, PASSWORD, via="test")
    db.session.commit()
    clients = {}
    for who, user in (("lead", lead), ("country", country_lead), ("trainer", trainer),
                      ("trainee", trainee)):
        clients[who] = app.test_client()
        assert login(clients[who], user.username).status_code == 302
    p = f"/certification/programmes/{data.programme_id}"
    first_clinic = db.session.scalar(select(User.clinic_id).where(User.id == trainee.id))
    urls = [
        ("lead", "/certification/"), ("lead", p), ("lead", f"{p}?status=expiring"),
        ("lead", f"{p}?clinic={first_clinic}"), ("lead", f"{p}?page=2"),
        ("lead", f"{p}/scores.png"), ("lead", f"{p}?format=xlsx"),
        ("lead", f"{p}?format=csv&table=readers"), ("lead", "/certification/certificates"),
        ("lead", "/certification/certificates?status=valid&q=Reader"),
        ("lead", f"/certification/readers/{trainee.id}"), ("country", p),
        ("trainer", f"/training/manage/{data.exercise_ids[2]}/statistics"),
        ("trainee", "/certification/mine"),
    ]
    before = _statement_counts(clients, urls)
    populate(MORE, seed=2, tag="b", existing=data)
    # The same reader with many more attempts, certificates and peers.
    populate(Scale(users=1, clinics=1, countries=1, attempts=60, certificates=5), seed=3,
             tag="c", existing=data)
    db.session.execute(
        Attempt.__table__.update().where(Attempt.user_id.in_(
            select(User.id).where(User.username.like("creader%")))).values(user_id=trainee.id))
    db.session.commit()
    after = _statement_counts(clients, urls)
    assert after == before


def test_revoking_from_a_filtered_page_returns_to_it(client, programme, clinics):  # noqa: F811
    from tests.conftest import csrf_token
    from tests.forms import submit_form

    certificate = db.session.scalars(select(Certificate).where(
        Certificate.user_id == clinics["expiring"].id)).one()
    listing = "/certification/certificates?status=valid&page=1"
    with freeze_time(VIEW):
        login(client, clinics["lead"].username)
        response = submit_form(client, listing,
                               action=f"/certificates/{certificate.id}/revoke",
                               fields={"reason": "check"})
        assert response.status_code == 302
        assert response.headers["Location"] == listing
        token = csrf_token(client, listing)
        # Deliberately hand-built: "next" values no rendered form carries (another site, a
        # look-alike path, none); only the certificate list is a place to go back to.
        for action, back, expected in (
                ("reinstate", "https://evil.example/certification/certificates",
                 "/certification/certificates"),
                ("revoke", "/certification/certificatesX", "/certification/certificates"),
                ("reinstate", "", "/certification/certificates")):
            response = client.post(f"/certification/certificates/{certificate.id}/{action}",
                                   data={"csrf_token": token, "reason": "check", "next": back})
            assert response.status_code == 302
            assert response.headers["Location"] == expected


def test_my_page_says_when_renewal_opens_and_when_it_is_due(client, cases, make_user):  # noqa: F811
    from babel.dates import format_date

    from app.certification.services import create_programme
    from app.quizzes.exercises import create_exercise

    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[1].id], actor=None)
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id, cases[2].id], actor=None,
                           criteria=[("sensitivity", 0.9)])
    renewable = create_programme(title="Renewable", eligible_roles=["trainee_radiologist"],
                                 requirements=[(practice.id, "practice"), (exam.id, "exam"),
                                               (exam.id, "renewal")],
                                 validity_days=730, renewal_window_days=90)
    reader = make_user(Role.TRAINEE_RADIOLOGIST)

    def renewal_line(when) -> str:
        with freeze_time(when):
            login(client, reader.username)
            page = client.get("/certification/mine").get_data(as_text=True)
        return re.search(r"To renew, pass “Exam”:([^<]*)</li>", page).group(1).strip()

    assert renewal_line(T0) == "once you hold the certificate"
    _certify(renewable, reader, T0)
    expires = T0 + timedelta(days=730)
    opens = expires - timedelta(days=90)
    # Dates as the page writes them in English (the reader's zone: no clinic, UTC).
    def day(value) -> str:
        return format_date(value.date(), "medium", locale="en")

    assert renewal_line(T0 + timedelta(days=1)) == f"from {day(opens)}"
    assert renewal_line(opens + timedelta(days=1)) == f"due by {day(expires)}"
    with freeze_time(opens + timedelta(days=2)):
        _take(exam, reader, TB)  # the renewal: a new certificate from the old expiry
    assert renewal_line(opens + timedelta(days=3)) == (
        f"from {day(expires + timedelta(days=730 - 90))}")


def test_the_readers_csv_has_the_cells_of_the_generic_export():
    """The readers' CSV is written column by column for speed: the same text as the generic
    writer's, formula-like names escaped, empty cells for what is missing."""
    from datetime import UTC, datetime

    from app.certification.dashboard import (
        READER_COLUMNS,
        STATE_LABELS,
        ReaderRow,
        _csv,
        _reader_values,
        readers_csv,
    )

    when = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    states = list(STATE_LABELS)
    rows = [ReaderRow(1, "=HYPERLINK(1)", "+Clinic", "KE", states[0], when, when, True,
                      0.91234, 1.0),
            ReaderRow(2, "Dr O'Neil, \"Ada\"", "-Clinic\nNorth", "UG", states[1], None, None,
                      None, None, None),
            ReaderRow(3, "@home", "Clinic", "TZ", states[-1], when, None, False, 0.0, None)]
    assert readers_csv(rows) == _csv(READER_COLUMNS, [_reader_values(r) for r in rows])
    assert "'=HYPERLINK(1)" in readers_csv(rows)


@pytest.mark.parametrize("status", [None, "expiring"])
def test_the_readers_export_is_one_statement_whatever_the_readers(app, status):
    """Each reader's state and latest exam come back in one statement, so the export's
    database round trips do not grow with the readers (nor does the work repeat a list)."""
    data = populate(SMALL, seed=4, tag="e")
    scaled = db.session.get(Programme, data.programme_id)
    filters = Filters(status=status)

    def statements() -> tuple[int, list]:
        db.session.expire_all()
        list(scaled.requirements)  # loaded by the page before the export
        seen: list[str] = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            rows = reader_rows(scaled, None, filters)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(seen), rows

    few, rows = statements()
    assert few == 1
    assert any(r.sensitivity is not None for r in rows) or status is not None
    populate(MORE, seed=5, tag="f", existing=data)
    many, more_rows = statements()
    assert many == 1 and len(more_rows) >= len(rows)
