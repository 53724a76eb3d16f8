"""Re-scoring after reference reads change: certificates follow, and nothing about one
changes silently. New passes are issued; a certificate whose evidence no longer meets the
rule is listed for the programme lead (in their countries) with the figures before and
after and the reason, and changes only when a lead revokes it (or stays when a lead keeps
it), audited; the holder is told on "my certification" and by e-mail."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.cases.reads import save_read
from app.certification.models import Certificate, CertificateReview, CertificationNotice
from app.certification.services import create_programme
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.schemes.registry import get_scheme
from tests.conftest import login, post_hand_built
from tests.forms import find_form, submit_form, submit_html
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import TB, _take
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)

NORMAL = {"overall": "normal"}


@pytest.fixture
def programme(cases):  # noqa: F811
    """Complete a practice set; pass an exam of two TB cases with accuracy ≥ 0.9."""
    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[1].id], actor=None)
    # Exams and practice sets share no case: the exam has case 1 and the exam-bank case.
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id, cases[2].id], actor=None,
                           criteria=[("accuracy", 0.9)])
    return create_programme(title="TB CXR reader", requirements=[(practice.id, "practice"),
                                                                 (exam.id, "exam")])


def _by_title(title: str):
    from app.quizzes.models import Exercise

    return db.session.scalar(select(Exercise).where(Exercise.title == title))


def _certified(make_user, make_clinic, country: str = "KE", exam_answers=TB) -> User:
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country=country),
                        full_name="Dr Ada Reader")
    _take(_by_title("Practice"), trainee, TB)
    _take(_by_title("Exam"), trainee, exam_answers)
    return trainee


def _correct_reference(case, answers) -> None:
    """The expert corrects their reference read of ``case``."""
    expert = db.session.scalar(select(User).where(User.username == "expert"))
    save_read(case, author=expert, scheme=get_scheme("ds3030"), answers=answers, marks=[])
    db.session.commit()


def _rescore(app) -> str:
    result = app.test_cli_runner().invoke(args=["quizzes", "rescore"])
    assert result.exit_code == 0, result.output
    return result.output


def _audited(action: str) -> int:
    return db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == action)) or 0


def _fresh(model, key):
    db.session.expire_all()
    return db.session.get(model, key)


def test_a_certificate_whose_evidence_fails_is_listed_not_changed(
        app, programme, cases, make_user, make_clinic, smtp_inbox):  # noqa: F811
    trainee = _certified(make_user, make_clinic)
    certificate = db.session.scalars(select(Certificate)).one()
    _correct_reference(cases[0], NORMAL)  # the trainee's TB read of case 1 is now wrong

    output = _rescore(app)
    assert "2 attempts re-scored, 1 with a changed pass/fail verdict" in output
    assert f"certificate {certificate.code}" in output and "listed for the programme lead" in output
    certificate = _fresh(Certificate, certificate.id)
    assert certificate.revoked_at is None  # nothing changes until a lead decides
    review = db.session.scalars(select(CertificateReview)).one()
    assert review.state == "open" and review.certificate_id == certificate.id
    [figures] = review.figures
    assert figures["exercise"] == "Exam" and figures["passed_after"] is False
    assert figures["before"]["accuracy"] == 1.0 and figures["after"]["accuracy"] == 0.5
    assert "no longer passes" in review.reason and "0.50 against a minimum of 0.90" in review.reason
    assert _audited("certificate.review.open") == 1
    # The holder is told: a notice and an e-mail.
    notice = db.session.scalars(select(CertificationNotice)).one()
    assert notice.user_id == trainee.id and notice.emailed_at is not None
    [mail] = smtp_inbox.messages
    assert mail["To"] == trainee.email and "under review" in mail["Subject"]
    assert certificate.code in mail.get_payload(decode=True).decode()

    # Running it again lists nothing twice and tells nobody twice.
    again = _rescore(app)
    assert "listed" not in again
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 1
    assert len(smtp_inbox.messages) == 1


def test_the_holder_sees_the_notice_on_my_certification(
        app, client, programme, cases, make_user, make_clinic):  # noqa: F811
    trainee = _certified(make_user, make_clinic)
    _correct_reference(cases[0], NORMAL)
    _rescore(app)  # no mail server: the page alone tells
    assert db.session.scalars(select(CertificationNotice)).one().emailed_at is None
    login(client, trainee.username)
    page = client.get("/certification/mine").get_data(as_text=True)
    assert "Your CXR Academy certificate is under review" in page
    assert "(under review)" in page and "no longer passes" in page


def _lead_client(app, make_user, country: str):
    lead = make_user(Role.PROGRAMME_LEAD, countries=(country,))
    client = app.test_client()
    login(client, lead.username)
    return lead, client


def test_the_lead_revokes_by_submitting_the_page_form(
        app, programme, cases, make_user, make_clinic, smtp_inbox):  # noqa: F811
    trainee = _certified(make_user, make_clinic, country="KE")
    certificate = db.session.scalars(select(Certificate)).one()
    _correct_reference(cases[0], NORMAL)
    _rescore(app)
    review = db.session.scalars(select(CertificateReview)).one()
    lead, client = _lead_client(app, make_user, "KE")

    index = client.get("/certification/").get_data(as_text=True)
    assert "1 certificate to review after re-scoring" in index
    page = client.get("/certification/reviews")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and certificate.code in html and "Dr Ada Reader" in html
    assert "1.00" in html and "0.50" in html and "0.90" in html  # before, after, minimum
    form = f"form[data-review='{review.id}']"

    # No reason: refused with the reason why, nothing changed.
    refused = submit_html(client, html, "/certification/reviews", selector=form,
                          button="Revoke certificate", fields={"reason": ""})
    assert refused.status_code == 400
    assert "give the reason for your decision" in refused.get_data(as_text=True)
    assert _fresh(Certificate, certificate.id).revoked_at is None
    assert _fresh(CertificateReview, review.id).state == "open"

    done = submit_html(client, html, "/certification/reviews", selector=form,
                       button="Revoke certificate",
                       fields={"reason": "Exam no longer passed after the corrected reads"})
    assert done.status_code == 302
    certificate = _fresh(Certificate, certificate.id)
    assert certificate.revoked_at is not None
    assert "Exam no longer passed after the corrected reads" in certificate.revoke_reason
    review = _fresh(CertificateReview, review.id)
    assert review.state == "revoked" and review.decided_by_id == lead.id
    assert _audited("certificate.review.revoked") == 1 and _audited("certificate.revoke") == 1
    event = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "certificate.review.revoked")).one()
    assert event.actor_id == lead.id
    assert event.detail["reason"] == "Exam no longer passed after the corrected reads"
    assert client.get(f"/verify/{certificate.code}.json").get_json()["status"] == "revoked"
    assert [m["To"] for m in smtp_inbox.messages] == [trainee.email] * 2
    assert "revoked" in smtp_inbox.messages[-1]["Subject"]

    # The same form again (a second tab, another lead): decided already.
    twice = submit_html(client, html, "/certification/reviews", selector=form,
                        button="Keep certificate", fields={"reason": "keep it"})
    assert twice.status_code == 409 and "decided already" in twice.get_data(as_text=True)
    listing = client.get("/certification/reviews").get_data(as_text=True)
    assert "No certificate in your countries waits for review." in listing
    assert "Exam no longer passed after the corrected reads" in listing  # under Decided


def test_the_lead_keeps_a_certificate_and_a_rerun_does_not_list_it_again(
        app, programme, cases, make_user, make_clinic):  # noqa: F811
    _certified(make_user, make_clinic)
    certificate = db.session.scalars(select(Certificate)).one()
    _correct_reference(cases[0], NORMAL)
    _rescore(app)
    review = db.session.scalars(select(CertificateReview)).one()
    _lead, client = _lead_client(app, make_user, "KE")
    kept = submit_form(client, "/certification/reviews",
                       selector=f"form[data-review='{review.id}']", button="Keep certificate",
                       fields={"reason": "Borderline case; the panel accepts the first read"})
    assert kept.status_code == 302
    assert _fresh(CertificateReview, review.id).state == "kept"
    assert _fresh(Certificate, certificate.id).revoked_at is None
    assert _audited("certificate.review.kept") == 1 and _audited("certificate.revoke") == 0
    assert "listed" not in _rescore(app)  # kept on these very figures
    assert db.session.scalar(select(func.count(CertificateReview.id))) == 1


def test_leads_see_and_decide_only_reviews_in_their_countries(
        app, programme, cases, make_user, make_clinic):  # noqa: F811
    _certified(make_user, make_clinic, country="KE")
    _correct_reference(cases[0], NORMAL)
    _rescore(app)
    review = db.session.scalars(select(CertificateReview)).one()
    _lead, other = _lead_client(app, make_user, "PH")
    page = other.get("/certification/reviews").get_data(as_text=True)
    assert "Dr Ada Reader" not in page
    with pytest.raises(AssertionError):  # the page offers a Philippine lead no such form
        find_form(page, selector=f"form[data-review='{review.id}']")
    # A request written by hand, as someone outside the lead's scope would send it.
    forged = post_hand_built(other, f"/certification/reviews/{review.id}",
                             {"reason": "x", "revoke": "Revoke certificate"},
                             page="/certification/reviews")
    assert forged.status_code == 404
    assert _fresh(CertificateReview, review.id).state == "open"
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    client = app.test_client()
    login(client, trainee.username)
    assert client.get("/certification/reviews").status_code == 403


def test_a_new_pass_after_rescoring_is_issued_and_the_holder_told(
        app, client, programme, cases, make_user, make_clinic, smtp_inbox):  # noqa: F811
    trainee = _certified(make_user, make_clinic, exam_answers=NORMAL)  # accuracy 0: failed
    # Another trainee, exam passed but no practice: a verdict change and no certificate.
    other = make_user(Role.TRAINEE_RADIOLOGIST)
    _take(_by_title("Exam"), other, TB)
    assert db.session.scalars(select(Certificate)).all() == []
    for case in (cases[0], cases[2]):
        _correct_reference(case, NORMAL)  # both cases were normal after all

    output = _rescore(app)
    [certificate] = db.session.scalars(select(Certificate)).all()
    assert certificate.user_id == trainee.id
    assert f"certificate {certificate.code} (Dr Ada Reader, TB CXR reader): issued" in output
    subjects = {m["To"]: m["Subject"] for m in smtp_inbox.messages}
    assert "has been issued" in subjects[trainee.email]
    assert "exam result has changed" in subjects[other.email]
    login(client, trainee.username)
    page = client.get("/certification/mine").get_data(as_text=True)
    assert "Your CXR Academy certificate has been issued" in page and certificate.code in page


def test_a_review_is_withdrawn_when_the_evidence_holds_again(
        app, programme, cases, make_user, make_clinic):  # noqa: F811
    _certified(make_user, make_clinic)
    certificate = db.session.scalars(select(Certificate)).one()
    _correct_reference(cases[0], NORMAL)
    _rescore(app)
    _correct_reference(cases[0], TB)  # the correction is reverted
    output = _rescore(app)
    assert "review withdrawn" in output
    assert db.session.scalars(select(CertificateReview)).one().state == "withdrawn"
    assert _fresh(Certificate, certificate.id).revoked_at is None


def test_rescore_of_an_unknown_exercise_is_a_clear_error(app):
    result = app.test_cli_runner().invoke(args=["quizzes", "rescore", "--exercise", "4040"])
    assert result.exit_code != 0 and "there is no exercise 4040" in result.output
