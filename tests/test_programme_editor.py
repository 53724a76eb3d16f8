"""The programme editor and exceptions granted through the web pages: who may use them,
what they write, and that refused input writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.auth.services import set_active
from app.certification.models import Certificate, Programme, Requirement
from app.certification.services import (
    CertificationError,
    create_programme,
    grant_exception,
    update_programme,
)
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.exercises import create_exercise
from tests.conftest import post_hand_built
from tests.forms import FormNotFound, submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import T0, TB, _exercise, _take, programme  # noqa: F401

NEW = "/certification/programmes/new"
LIST = "/certification/programmes"
EXCEPTION = "/certification/exceptions/new"


def _edit_url(target: Programme) -> str:
    return f"/certification/programmes/{target.id}/edit"


def _create(client, data: dict[str, Any]):
    return submit_form(client, NEW, button="Create programme", fields=data)


def _save(client, target: Programme, data: dict[str, Any]):
    return submit_form(client, _edit_url(target), button="Save programme", fields=data)


def _grant(client, data: dict[str, Any]):
    return submit_form(client, EXCEPTION, button="Issue certificate", fields=data)


def _form(
    rows: list[tuple[Any, str]],
    *,
    title: str = "Chest X-ray reader — radiographer",
    roles: tuple[str, ...] = ("trainee_radiographer",),
    validity: str = "730",
    window: str = "90",
    cme: str = "6.5",
    active: bool | None = None,
    blank_rows: int = 8,
) -> dict[str, Any]:
    """The fields to fill (or, for a forged request, the body), blank requirement rows
    included; ``active`` only ticks the box when true."""
    data: dict[str, Any] = {
        "title": title,
        "description": "For radiographers reading at panel sites.",
        "eligible_roles": list(roles),
        "validity_days": validity,
        "renewal_window_days": window,
        "cme_hours": cme,
    }
    padded = list(rows) + [("", "exam")] * max(0, blank_rows - len(rows))
    for i, (exercise, kind) in enumerate(padded):
        data[f"requirements-{i}-exercise"] = str(exercise)
        data[f"requirements-{i}-kind"] = kind
    if active:
        data["active"] = "y"
    return data


def _counts() -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Programme)),
        db.session.scalar(select(func.count()).select_from(Requirement)),
    )


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# ---- creating and editing programmes -------------------------------------------------------


def test_lead_for_all_countries_creates_a_programme(client, programme, login_as):  # noqa: F811
    lead = login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    page = client.get(NEW)
    assert page.status_code == 200
    assert page.get_data(as_text=True).count('name="requirements-7-exercise"') == 1
    practice, exam = _exercise(programme, "practice"), _exercise(programme, "exam")
    response = _create(client, _form([(practice.id, "practice"), (exam.id, "exam")]))
    assert response.status_code == 302 and response.location.endswith(LIST)

    created = db.session.scalars(
        select(Programme).where(Programme.title == "Chest X-ray reader — radiographer")).one()
    assert [(r.exercise_id, r.kind) for r in created.requirements] == [
        (practice.id, "practice"), (exam.id, "exam")]  # the six blank rows are left out
    assert created.eligible_roles == ["trainee_radiographer"]
    assert (created.validity_days, created.renewal_window_days, created.cme_hours) == (730, 90, 6.5)
    assert created.active
    [event] = [e for e in _events("programme.create") if e.object_id == str(created.id)]
    assert event.actor_id == lead.id

    listing = client.get(LIST).get_data(as_text=True)
    assert "Chest X-ray reader — radiographer" in listing and "Trainee radiographer" in listing
    assert f"/certification/programmes/{created.id}/edit" in listing
    assert f'href="/certification/programmes/{created.id}"' in listing  # its dashboard


def test_rows_posted_with_gaps_are_read_once(client, programme, login_as):  # noqa: F811
    login_as(Role.ADMIN)
    practice, exam = _exercise(programme, "practice"), _exercise(programme, "exam")
    data = _form([], title="Hand-made", blank_rows=0)
    data |= {"requirements-0-exercise": str(exam.id), "requirements-0-kind": "exam",
             "requirements-5-exercise": str(practice.id), "requirements-5-kind": "practice"}
    assert _create(client, data).status_code == 302
    created = db.session.scalars(select(Programme).where(Programme.title == "Hand-made")).one()
    assert [(r.exercise_id, r.kind) for r in created.requirements] == [
        (exam.id, "exam"), (practice.id, "practice")]


def test_admin_edits_validity_and_requirements_and_held_certificates_stay(
        client, cases, programme, make_user, login_as):  # noqa: F811
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    with freeze_time(T0):
        _take(_exercise(programme, "practice"), trainee, TB)
        _take(_exercise(programme, "exam"), trainee, TB)
    held = db.session.scalars(select(Certificate)).one()
    expires, evidence, hours = held.expires_at, held.evidence, held.cme_hours
    renewal = create_exercise(title="Recertification", kind="exam", scheme_key="ds3030",
                              case_ids=[cases[0].id], actor=None)
    admin = login_as(Role.ADMIN)

    form = client.get(_edit_url(programme)).get_data(as_text=True)
    assert 'value="TB CXR reader — radiologist"' in form and 'value="730"' in form
    assert '<input checked id="active" name="active" type="checkbox"' in form
    exam = _exercise(programme, "exam")
    response = _save(client, programme, _form(
        [(exam.id, "exam"), (renewal.id, "renewal")], title="TB CXR reader — radiologist",
        roles=("trainee_radiologist",), validity="365", window="60", cme="4", active=True))
    assert response.status_code == 302, response.get_data(as_text=True)

    db.session.expire_all()
    edited = db.session.get(Programme, programme.id)
    assert (edited.validity_days, edited.renewal_window_days) == (365, 60)
    assert [(r.exercise_id, r.kind) for r in edited.requirements] == [
        (exam.id, "exam"), (renewal.id, "renewal")]
    [event] = _events("programme.update")
    assert event.actor_id == admin.id
    assert sorted(event.detail["changed"]) == [
        "description", "renewal_window_days", "requirements", "validity_days"]
    assert event.detail["before"]["validity_days"] == 730
    assert event.detail["after"]["validity_days"] == 365
    assert event.detail["after"]["requirements"] == [[exam.id, "exam"], [renewal.id, "renewal"]]
    assert "description" not in event.detail["after"]  # named as changed, text not copied

    unchanged = db.session.get(Certificate, held.id)
    assert (unchanged.expires_at, unchanged.evidence, unchanged.cme_hours) == (
        expires, evidence, hours)


def test_deactivating_keeps_certificates_and_an_unchanged_save_logs_nothing(
        programme, make_user):  # noqa: F811
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    fields = {
        "title": programme.title, "description": programme.description,
        "eligible_roles": programme.eligible_roles, "validity_days": 730,
        "renewal_window_days": 90, "cme_hours": 4,
        "requirements": [(r.exercise_id, r.kind) for r in programme.requirements],
    }
    update_programme(programme, **fields, active=True, actor=lead)
    assert _events("programme.update") == []
    update_programme(programme, **fields, active=False, actor=lead)
    [event] = _events("programme.update")
    assert event.detail == {"changed": ["active"], "before": {"active": True},
                            "after": {"active": False}}


def test_duplicate_titles_are_a_409_in_the_service_too(programme, make_user):  # noqa: F811
    exam = _exercise(programme, "exam")
    with pytest.raises(CertificationError, match="already exists") as created:
        create_programme(title="tb cxr reader — RADIOLOGIST ", requirements=[(exam.id, "exam")])
    assert created.value.status == 409
    other = create_programme(title="Other", requirements=[(exam.id, "exam")])
    with pytest.raises(CertificationError, match="already exists") as updated:
        update_programme(other, title=programme.title, description="", eligible_roles=[],
                         validity_days=730, renewal_window_days=90, cme_hours=0, active=True,
                         requirements=[(exam.id, "exam")], actor=None)
    assert updated.value.status == 409
    db.session.expire_all()
    assert db.session.get(Programme, other.id).title == "Other"


# The fourth value says the input is forged: the rendered form cannot send it (an exercise or
# kind it does not offer, letters in a number box, more characters than its maxlength), so
# the test checks the form refuses it, then posts it hand-built, on purpose.
BAD_INPUT = [
    pytest.param({"rows": "practice only"}, 400, "at least one exam to pass", False, id="no-exam"),
    pytest.param({"window": "730"}, 400, "longer than the renewal window",
                 False, id="window>=validity"),
    pytest.param({"title": "tb cxr reader — radiologist"}, 409, "already exists", False,
                 id="duplicate-title"),
    pytest.param({"rows": "unknown exercise"}, 400, "There is no exercise 99999", True,
                 id="unknown-exercise"),
    pytest.param({"rows": "not a number"}, 400, "choose an exercise from the list", True,
                 id="exercise-not-a-number"),
    pytest.param({"rows": "unknown kind"}, 400, "Unknown requirement kind",
                 True, id="unknown-kind"),
    pytest.param({"rows": "twice"}, 400, "listed twice", False, id="same-row-twice"),
    pytest.param({"cme": "-1"}, 400, "CME/CPD hours must be a number of 0 or more", False,
                 id="negative-cme"),
    pytest.param({"cme": "nan"}, 400, "CME/CPD hours must be a number of 0 or more",
                 True, id="nan-cme"),
    pytest.param({"cme": "inf"}, 400, "CME/CPD hours must be a number of 0 or more",
                 True, id="inf-cme"),
    pytest.param({"validity": "0"}, 400, "Number must be between 1 and 36500",
                 False, id="zero-validity"),
    pytest.param({"validity": "99999999999"}, 400, "Number must be between", False,
                 id="huge-validity"),
    pytest.param({"validity": "two years"}, 400, "Not a valid integer value", True, id="words"),
    pytest.param({"title": "  "}, 400, "This field is required", False, id="blank-title"),
    pytest.param({"title": "x" * 201}, 400, "Field cannot be longer than 200 characters", True,
                 id="long-title"),
    pytest.param({"roles": ("trainer",)}, 400, "is not a valid choice", True, id="unlisted-role"),
]


def _bad_form(target: Programme, change: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    practice, exam = _exercise(target, "practice"), _exercise(target, "exam")
    rows = {
        "practice only": [(practice.id, "practice")],
        "unknown exercise": [(exam.id, "exam"), (99999, "practice")],
        "not a number": [(exam.id, "exam"), ("1 OR 1=1", "practice")],
        "unknown kind": [(exam.id, "exam"), (practice.id, "homework")],
        "twice": [(exam.id, "exam"), (exam.id, "exam")],
    }.get(change.pop("rows", ""), [(practice.id, "practice"), (exam.id, "exam")])
    return _form(rows, **{**fixed, **change})


@pytest.mark.parametrize(("change", "code", "reason", "forged"), BAD_INPUT)
def test_bad_new_programme_is_refused_with_the_reason_and_writes_nothing(
        client, programme, login_as, change, code, reason, forged):  # noqa: F811
    login_as(Role.ADMIN)
    before = _counts(), len(_events("programme.create"))
    data = _bad_form(programme, dict(change))
    if forged:
        with pytest.raises(FormNotFound):
            _create(client, data)
        response = post_hand_built(client, NEW, data)
    else:
        response = _create(client, data)
    page = response.get_data(as_text=True)
    assert response.status_code == code, page
    assert reason in page
    assert 'name="title"' in page  # the form again, with what was typed
    assert (_counts(), len(_events("programme.create"))) == before


@pytest.mark.parametrize(("change", "code", "reason", "forged"), [
    p for p in BAD_INPUT if p.id in {"no-exam", "window>=validity", "duplicate-title",
                                     "unknown-exercise", "negative-cme", "blank-title"}])
def test_bad_edit_is_refused_with_the_reason_and_changes_nothing(
        client, programme, login_as, change, code, reason, forged):  # noqa: F811
    exam = _exercise(programme, "exam")
    other = create_programme(title="Other programme", requirements=[(exam.id, "exam")],
                             validity_days=400)
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    before = _counts()
    # Renamed to the first programme's title when the case is the duplicate one.
    data = _bad_form(programme, dict(change), title="Other programme", active=True)
    if forged:
        with pytest.raises(FormNotFound):
            _save(client, other, data)
        response = post_hand_built(client, _edit_url(other), data)
    else:
        response = _save(client, other, data)
    page = response.get_data(as_text=True)
    assert response.status_code == code, page
    assert reason in page
    assert _counts() == before
    db.session.expire_all()
    kept = db.session.get(Programme, other.id)
    assert (kept.title, kept.validity_days, kept.cme_hours) == ("Other programme", 400, 0)
    assert [(r.exercise_id, r.kind) for r in kept.requirements] == [(exam.id, "exam")]
    assert _events("programme.update") == []


def test_country_scoped_leads_see_the_list_but_may_not_edit(client, programme, login_as):  # noqa: F811
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    listing = client.get(LIST)
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert programme.title in text and NEW not in text and _edit_url(programme) not in text
    before = _counts()
    for response in (
        client.get(NEW),
        client.get(_edit_url(programme)),
        # Deliberately hand-built: no page offers this lead these forms; forged posts.
        post_hand_built(client, NEW, _bad_form(programme, {}), page=LIST),
        post_hand_built(client, _edit_url(programme), _bad_form(programme, {"validity": "1"}),
                        page=LIST),
    ):
        assert response.status_code == 403
        assert "only administrators and programme leads for all countries" in (
            response.get_data(as_text=True))
    assert _counts() == before
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).validity_days == 730


def test_trainees_may_not_see_or_edit_programmes(client, programme, login_as):  # noqa: F811
    login_as(Role.TRAINEE_RADIOLOGIST)
    for path in (LIST, NEW, _edit_url(programme), EXCEPTION):
        response = client.get(path)
        assert response.status_code == 403
        assert "only for: programme lead, administrator" in response.get_data(as_text=True)


def test_editing_a_missing_programme_is_404(client, login_as):
    login_as(Role.ADMIN)
    assert client.get("/certification/programmes/424242/edit").status_code == 404


# ---- exceptions ----------------------------------------------------------------------------


@pytest.fixture
def kenyan_reader(make_user, make_clinic):
    return make_user(Role.TRAINEE_RADIOLOGIST, username="wanjiru", full_name="Dr Wanjiru K",
                     clinic=make_clinic("Kisumu site", "Kisumu", "KE"))


def test_lead_grants_an_exception_through_the_form(
        client, programme, kenyan_reader, login_as):  # noqa: F811
    lead = login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    form = client.get(f"{EXCEPTION}?user=wanjiru&programme={programme.id}")
    page = form.get_data(as_text=True)
    assert form.status_code == 200
    assert 'value="wanjiru"' in page
    assert f'<option selected value="{programme.id}">' in page
    response = _grant(client, {
        "reader": "Wanjiru@Example.org", "programme": str(programme.id),
        "reason": "passed the national equivalent exam in 2025"})
    assert response.status_code == 302 and response.location.endswith("/certification/certificates")

    certificate = db.session.scalars(select(Certificate)).one()
    assert certificate.user_id == kenyan_reader.id
    assert certificate.exception_reason == "passed the national equivalent exam in 2025"
    [event] = _events("certificate.exception")
    assert event.actor_id == lead.id and event.object_id == str(certificate.id)
    assert event.detail["reason"] == "passed the national equivalent exam in 2025"
    listing = client.get("/certification/certificates").get_data(as_text=True)
    assert f"Certificate {certificate.code} issued to Dr Wanjiru K" in listing


# The fourth value: forged, a programme the form's list does not offer (posted hand-built).
@pytest.mark.parametrize(("fields", "code", "reason", "forged"), [
    pytest.param({"reason": "  "}, 400, "give the reason for the exception", False, id="no-reason"),
    pytest.param({"reader": ""}, 400, "name the reader", False, id="no-reader"),
    pytest.param({"reader": "nobody"}, 404, "There is no reader &#39;nobody&#39; in your countries",
                 False,
                 id="unknown-reader"),
    pytest.param({"reader": "ana"}, 404, "There is no reader &#39;ana&#39; in your countries",
                 False,
                 id="reader-in-another-country"),
    pytest.param({"reader": "central"}, 404, "There is no reader &#39;central&#39; in your", False,
                 id="reader-without-clinic"),
    pytest.param({"reader": "grace"}, 409,
                 "Grace R is not eligible for TB CXR reader — radiologist: it is for "
                 "Trainee radiologist only", False, id="reader-of-an-ineligible-role"),
    pytest.param({"programme": ""}, 400, "choose a programme", False, id="no-programme"),
    pytest.param({"programme": "inactive"}, 400, "choose an active programme", True, id="inactive"),
    pytest.param({"programme": "99999999999999999999"}, 400, "choose a programme", True,
                 id="programme-id-overflow"),
])
def test_refused_exceptions_say_why_and_issue_nothing(
        client, programme, kenyan_reader, make_user, make_clinic, login_as,  # noqa: F811
        fields, code, reason, forged):
    make_user(Role.TRAINEE_RADIOLOGIST, username="ana",
              clinic=make_clinic("Lima site", "Lima", "PE"))
    make_user(Role.TRAINEE_RADIOLOGIST, username="central")
    make_user(Role.TRAINEE_RADIOGRAPHER, username="grace", full_name="Grace R",
              clinic=make_clinic("Nakuru site", "Nakuru", "KE"))
    exam = _exercise(programme, "exam")
    inactive = create_programme(title="Retired", requirements=[(exam.id, "exam")])
    inactive.active = False
    db.session.commit()
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    data = {"reader": "wanjiru", "programme": str(programme.id), "reason": "equivalent exam",
            **fields}
    if data["programme"] == "inactive":
        data["programme"] = str(inactive.id)
    if forged:
        with pytest.raises(FormNotFound):
            _grant(client, data)
        response = post_hand_built(client, EXCEPTION, data)
    else:
        response = _grant(client, data)
    page = response.get_data(as_text=True)
    assert response.status_code == code, page
    assert reason in page and 'name="reason"' in page
    assert db.session.scalars(select(Certificate)).all() == []
    assert _events("certificate.exception") == []


def test_admins_reach_readers_anywhere_but_not_deactivated_ones(
        client, programme, make_user, make_clinic, login_as):  # noqa: F811
    peruvian = make_user(Role.TRAINEE_RADIOLOGIST, username="ana",
                         clinic=make_clinic("Lima site", "Lima", "PE"))
    set_active(make_user(Role.TRAINEE_RADIOLOGIST, username="gone"), False)
    login_as(Role.ADMIN)
    data = {"programme": str(programme.id), "reason": "equivalent exam"}
    refused = _grant(client, {**data, "reader": "gone"})
    assert refused.status_code == 409 and "is deactivated" in refused.get_data(as_text=True)
    assert _grant(client, {**data, "reader": "ana"}).status_code == 302
    assert db.session.scalars(select(Certificate)).one().user_id == peruvian.id


def test_no_exception_while_a_valid_certificate_is_held(
        client, programme, kenyan_reader, make_user, login_as):  # noqa: F811
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    held = grant_exception(kenyan_reader, programme, reason="pilot site", actor=lead)
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    data = {"reader": "wanjiru", "programme": str(programme.id), "reason": "again"}
    refused = _grant(client, data)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert f"already holds a valid certificate for {programme.title} ({held.code}" in page
    assert len(db.session.scalars(select(Certificate)).all()) == 1
    # Once it has expired, an exception may be granted again.
    held.expires_at = utcnow() - timedelta(days=1)
    db.session.commit()
    granted = _grant(client, data)
    assert granted.status_code == 302
    assert granted.location.endswith("/certification/certificates")
    assert len(db.session.scalars(select(Certificate)).all()) == 2


def test_leads_cannot_grant_themselves_an_exception(
        client, programme, make_clinic, login_as):  # noqa: F811
    lead = login_as(Role.PROGRAMME_LEAD, Role.TRAINEE_RADIOLOGIST, username="selfie",
                    countries=("KE",), clinic=make_clinic("Kisumu site", "Kisumu", "KE"))
    response = _grant(client, {"reader": lead.username, "reason": "I know it",
                               "programme": str(programme.id)})
    assert response.status_code == 403
    assert "cannot grant an exception to yourself" in response.get_data(as_text=True)
    assert db.session.scalars(select(Certificate)).all() == []
