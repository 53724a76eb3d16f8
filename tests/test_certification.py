"""Certificates: issued by rule and only then, expiring, revocable, verifiable by anyone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.certification.models import Certificate
from app.certification.services import (
    CertificationError,
    create_programme,
    grant_exception,
    revoke,
    status,
)
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.services import start_attempt, submit_attempt
from tests.forms import submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def programme(cases):  # noqa: F811
    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[1].id], actor=None)
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id, cases[2].id], actor=None,
                           criteria=[("sensitivity", 0.9)])
    return create_programme(title="TB CXR reader — radiologist",
                            requirements=[(practice.id, "practice"), (exam.id, "exam")],
                            eligible_roles=["trainee_radiologist"], validity_days=730,
                            cme_hours=4)


def _take(exercise, user, answers):
    attempt = start_attempt(exercise, user)
    for case_id in attempt.case_order:
        save_answer(attempt, user, case_id, answers, [])
    return submit_attempt(attempt, user)


def _exercise(programme, kind):
    return next(r.exercise for r in programme.requirements if r.kind == kind)


TB = {"overall": "abnormal", "findings": ["cavitary_lesion"]}


def test_issued_only_when_every_requirement_is_met(programme, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Ada Reader")
    with freeze_time(T0):
        _take(_exercise(programme, "exam"), trainee, TB)  # passed, but no practice yet
        assert db.session.scalars(select(Certificate)).all() == []
        _take(_exercise(programme, "practice"), trainee, {"overall": "normal"})
    [certificate] = db.session.scalars(select(Certificate)).all()
    assert certificate.holder_name == "Dr Ada Reader"
    assert certificate.expires_at == T0 + timedelta(days=730)
    assert certificate.cme_hours == 4
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{16}", certificate.code)
    exam_evidence = next(e for e in certificate.evidence["requirements"] if e["kind"] == "exam")
    assert exam_evidence["metrics"]["sensitivity"] == 1.0
    with freeze_time(T0 + timedelta(days=1)):
        _take(_exercise(programme, "practice"), trainee, {"overall": "normal"})
    assert len(db.session.scalars(select(Certificate)).all()) == 1  # no duplicate


def test_failing_the_exam_or_the_wrong_role_issues_nothing(programme, make_user):
    failing = make_user(Role.TRAINEE_RADIOLOGIST)
    _take(_exercise(programme, "practice"), failing, TB)
    _take(_exercise(programme, "exam"), failing, {"overall": "normal"})
    radiographer = make_user(Role.TRAINEE_RADIOGRAPHER)
    _take(_exercise(programme, "practice"), radiographer, TB)
    _take(_exercise(programme, "exam"), radiographer, TB)
    assert db.session.scalars(select(Certificate)).all() == []


def test_public_verification_valid_expired_revoked_and_not_found(app, client, programme,
                                                                make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Ada Reader")
    _take(_exercise(programme, "practice"), trainee, TB)
    _take(_exercise(programme, "exam"), trainee, TB)
    certificate = db.session.scalars(select(Certificate)).one()
    page = client.get(f"/verify/{certificate.code}").get_data(as_text=True)
    assert 'data-testid="certificate-status">Valid' in page and "Dr Ada Reader" in page
    assert trainee.email not in page and "sensitivity" not in page
    assert client.get(f"/verify/{certificate.code.lower()}").status_code == 200
    data = client.get(f"/verify/{certificate.code}.json").get_json()
    assert data == {"code": certificate.code, "holder": "Dr Ada Reader",
                    "programme": "TB CXR reader — radiologist",
                    "issued": certificate.issued_at.date().isoformat(),
                    "expires": certificate.expires_at.date().isoformat(), "status": "valid"}
    with freeze_time(certificate.expires_at + timedelta(seconds=1)):
        assert client.get(f"/verify/{certificate.code}.json").get_json()["status"] == "expired"
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    revoke(certificate, reason="exam irregularity", actor=lead)
    assert client.get(f"/verify/{certificate.code}.json").get_json()["status"] == "revoked"
    missing = client.get("/verify/ABCDEFGHJKLMNPQR")
    assert missing.status_code == 404 and "Not found." in missing.get_data(as_text=True)
    assert client.get("/verify/ABCDEFGHJKLMNPQR.json").status_code == 404
    assert client.get(f"/verify/?code={certificate.code}").status_code == 302


def test_verification_is_rate_limited(client):
    for _ in range(30):
        assert client.get("/verify/ZZZZZZZZZZZZZZZZ").status_code == 404
    assert client.get("/verify/ZZZZZZZZZZZZZZZZ").status_code == 429


def test_lead_revokes_and_reinstates_with_reasons_in_the_audit_log(client, programme,
                                                                  make_user, login_as):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    _take(_exercise(programme, "practice"), trainee, TB)
    _take(_exercise(programme, "exam"), trainee, TB)
    certificate = db.session.scalars(select(Certificate)).one()
    lead = login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    page = "/certification/certificates"

    def change(action: str, reason: str):
        return submit_form(client, page, action=f"/certificates/{certificate.id}/{action}",
                           fields={"reason": reason})

    no_reason = change("revoke", " ")
    assert no_reason.status_code == 400
    ok = change("revoke", "identity doubt")
    assert ok.status_code == 302
    db.session.expire_all()
    assert status(db.session.get(Certificate, certificate.id)) == "revoked"
    back = change("reinstate", "identity confirmed")
    assert back.status_code == 302
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(["certificate.revoke", "certificate.reinstate"])
    ).order_by(AuditEvent.id)).all()
    assert [(e.action, e.detail["reason"], e.actor_id) for e in events] == [
        ("certificate.revoke", "identity doubt", lead.id),
        ("certificate.reinstate", "identity confirmed", lead.id)]


def test_exception_needs_a_reason(programme, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    with pytest.raises(CertificationError, match="reason"):
        grant_exception(trainee, programme, reason="", actor=lead)
    certificate = grant_exception(trainee, programme, reason="equivalent national exam",
                                  actor=lead)
    assert certificate.exception_reason == "equivalent national exam"
    assert status(certificate) == "valid"


def test_pdf_states_the_code_and_verification_address(client, programme, make_user, login_as):
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    _take(_exercise(programme, "practice"), trainee, TB)
    _take(_exercise(programme, "exam"), trainee, TB)
    certificate = db.session.scalars(select(Certificate)).one()
    mine = client.get("/certification/mine").get_data(as_text=True)
    assert certificate.code in mine and "done" in mine
    pdf = client.get(f"/certification/certificates/{certificate.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert certificate.code.encode() in pdf.data
    assert f"/verify/{certificate.code}".encode() in pdf.data
    assert b"/Subtype /Image" in pdf.data  # the QR code
    other = make_user(Role.TRAINEE_RADIOLOGIST)
    from tests.conftest import login

    stranger = client.application.test_client()
    login(stranger, other.username)
    assert stranger.get(f"/certification/certificates/{certificate.id}.pdf").status_code == 404


def test_programme_needs_an_exam_and_known_exercises(cases, app):  # noqa: F811
    with pytest.raises(CertificationError, match="at least one exam"):
        create_programme(title="P", requirements=[])
    with pytest.raises(CertificationError, match="no exercise 999"):
        create_programme(title="P", requirements=[(999, "exam")])
    result = app.test_cli_runner().invoke(args=["certs", "create-programme", "--title", "X",
                                                "--exam", "12345"])
    assert result.exit_code != 0 and "no exercise 12345" in result.output


def test_reminders_arrive_once_each_at_a_real_smtp_server(app, programme, make_user):
    from aiosmtpd.controller import Controller

    from tests.realservers import free_port
    from tests.test_mail import Inbox

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    try:
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        with freeze_time(T0):
            _take(_exercise(programme, "practice"), trainee, TB)
            _take(_exercise(programme, "exam"), trainee, TB)
        certificate = db.session.scalars(select(Certificate)).one()
        runner = app.test_cli_runner()

        def remind_on(day):
            with freeze_time(certificate.expires_at - timedelta(days=day)):
                return runner.invoke(args=["certs", "remind"]).output

        assert "0 reminders sent" in remind_on(200)
        for day, expected in ((89, "under 90 days"), (29, "under 30 days"),
                              (6, "under 7 days"), (-1, "has expired")):
            assert "1 reminders sent" in remind_on(day)
            assert "0 reminders sent" in remind_on(day)  # idempotent: once each
            assert expected in inbox.messages[-1]["Subject"]
        assert len(inbox.messages) == 4
        assert certificate.code in inbox.messages[0].get_payload(decode=True).decode()
        assert {m["To"] for m in inbox.messages} == {trainee.email}
    finally:
        controller.stop()


def test_remind_without_smtp_is_a_clear_error(app):
    result = app.test_cli_runner().invoke(args=["certs", "remind"])
    assert result.exit_code != 0 and "no SMTP server is configured" in result.output


def test_programme_dashboard_counts_per_clinic_and_csv(client, programme, make_user,
                                                       make_clinic, login_as):
    from sqlalchemy import event

    nairobi = make_clinic("Nairobi site", "Nairobi", "KE")
    lima = make_clinic("Lima site", "Lima", "PE")
    certified = make_user(Role.TRAINEE_RADIOLOGIST, clinic=nairobi)
    _take(_exercise(programme, "practice"), certified, TB)
    _take(_exercise(programme, "exam"), certified, TB)
    started = make_user(Role.TRAINEE_RADIOLOGIST, clinic=nairobi)
    _take(_exercise(programme, "exam"), started, {"overall": "normal"})
    make_user(Role.TRAINEE_RADIOLOGIST, clinic=nairobi)  # not started
    make_user(Role.TRAINEE_RADIOGRAPHER, clinic=nairobi)  # not eligible
    make_user(Role.TRAINEE_RADIOLOGIST, clinic=lima)  # outside the lead's scope
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    url = f"/certification/programmes/{programme.id}"

    statements: list[str] = []
    counter = lambda *args, **kw: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", counter)
    try:
        page = client.get(url).get_data(as_text=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", counter)
    assert "Lima site" not in page
    cells = re.search(r">Nairobi site</a></td>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td>([^<]*)</td>", cells)[:6] == ["3", "1", "0", "0", "1", "1"]
    assert "50 % of 2" in cells
    csv_text = client.get(url + "?format=csv").get_data(as_text=True)
    assert csv_text.splitlines()[1] == "KE,Nairobi site,3,1,0,0,1,1,2,0.500"
    import io

    from openpyxl import load_workbook

    xlsx = client.get(url + "?format=xlsx")
    assert xlsx.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    assert [c.value for c in sheet[3]] == ["KE", "Nairobi site", 3, 1, 0, 0, 1, 1, 2, 0.5]
    # More data, same number of queries.
    for _ in range(4):
        extra = make_user(Role.TRAINEE_RADIOLOGIST, clinic=nairobi)
        _take(_exercise(programme, "exam"), extra, TB)
    more: list[str] = []
    counter2 = lambda *args, **kw: more.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", counter2)
    try:
        client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", counter2)
    assert len(more) == len(statements)


def test_leads_list_only_certificates_in_their_countries(client, programme, make_user,
                                                          make_clinic, login_as):
    for name, country in (("Kenyan reader", "KE"), ("Peruvian reader", "PE")):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name=name,
                            clinic=make_clinic(f"{country} site", "City", country))
        _take(_exercise(programme, "practice"), trainee, TB)
        _take(_exercise(programme, "exam"), trainee, TB)
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    page = client.get("/certification/certificates").get_data(as_text=True)
    assert "Kenyan reader" in page and "Peruvian reader" not in page
    peruvian = db.session.scalars(select(Certificate).where(
        Certificate.holder_name == "Peruvian reader")).one()
    assert client.get(f"/certification/certificates/{peruvian.id}.pdf").status_code == 404
