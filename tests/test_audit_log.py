"""The audit log as an administrator reads it: who acted, what happened in sentences,
filters by actor, action, object and dates, and pages that keep the filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time

from app.audit.services import record
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import login, sign_out
from tests.forms import FieldRefused, submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)


def rows(html: str) -> list[dict[str, str]]:
    """The audit table as a reader sees it: one dict per row, keyed by column heading."""
    table = BeautifulSoup(html, "html.parser").select_one("table.audit")
    assert table is not None
    headings = [th.get_text(strip=True) for th in table.select("thead th")]
    found = []
    for tr in table.select("tbody tr"):
        cells = [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        if len(cells) == len(headings):
            found.append(dict(zip(headings, cells, strict=True)))
    return found


def filtered(client, **fields):
    return submit_form(client, "/admin/audit", button="Filter", fields=fields)


def test_changes_read_as_sentences_with_who_did_them(client, login_as, make_user, make_clinic):
    nairobi = make_clinic("Nairobi Panel Clinic", "Nairobi", "KE")
    reader = make_user(Role.TRAINEE_RADIOLOGIST, username="wanjiru", full_name="Dr Wanjiru")
    admin = login_as(Role.ADMIN, username="boss", full_name="Ada Admin")
    saved = submit_form(client, f"/admin/users/{reader.id}", button="Save", fields={
        "roles": ["trainer"], "clinic": str(nairobi.id),
        "lead_countries": [], "full_name": "Dr Wanjiru"})
    assert saved.status_code == 302
    sign_out(client, "/admin/")
    login(client, "wanjiru", "not-the-password")
    login(client, admin.username)

    page = client.get("/admin/audit")
    assert page.status_code == 200
    table = rows(page.get_data(as_text=True))
    by_action = {row["What"]: row for row in table}
    roles = by_action["Roles changed"]
    assert roles["Who"] == "Ada Admin (boss)"
    assert roles["Object"] == "User Dr Wanjiru (wanjiru)"
    assert roles["Details"] == "Changed roles: trainee radiologist → trainer."
    clinic = by_action["Clinic changed"]
    assert clinic["Details"] == "Moved from no clinic (central staff) to Nairobi Panel Clinic."
    refused = by_action["Sign-in refused"]
    assert refused["Who"] == "nobody signed in"
    assert refused["Details"].startswith("Refused a sign-in as “wanjiru”")
    created = next(r for r in table if r["What"] == "Account created"
                   and "wanjiru" in r["Object"])
    assert created["Details"] == (
        "Created the account wanjiru with the roles trainee radiologist (central staff).")
    assert by_action["Clinic added"]["Details"] == "Added the clinic Nairobi Panel Clinic (Kenya)."
    for row in table:  # never a raw dictionary or a snake_case key
        assert "{" not in row["Details"] and "_" not in row["Details"], row


def test_an_exception_certificate_is_recorded_as_granted_by_the_lead(
        client, make_user, programme):  # noqa: F811
    reader = make_user(Role.TRAINEE_RADIOLOGIST, username="exempt", full_name="Dr Exempt")
    lead = make_user(Role.PROGRAMME_LEAD, username="lead", full_name="Lena Lead",
                     lead_all_countries=True)
    admin = make_user(Role.ADMIN, username="auditor", full_name="Ann Auditor")
    login(client, lead.username)
    granted = submit_form(client, "/certification/exceptions/new", button="Issue certificate",
                          fields={"reader": "exempt", "programme": str(programme.id),
                                  "reason": "passed the equivalent national exam"})
    assert granted.status_code in (201, 302), granted.get_data(as_text=True)
    sign_out(client, "/certification/")
    login(client, admin.username)

    issued = rows(filtered(client, action="certificate.issue").get_data(as_text=True))
    assert [(r["Who"], r["Details"]) for r in issued] == [
        ("Lena Lead (lead)",
         "Issued a certificate for TB CXR reader — radiologist by exception.")]
    [exception] = rows(filtered(client, action="certificate.exception").get_data(as_text=True))
    assert exception["Who"] == "Lena Lead (lead)"
    assert exception["Details"] == (
        "Granted the certificate by exception. Reason: passed the equivalent national exam")
    assert reader.full_name not in exception["Who"]


@pytest.fixture
def history(app, make_user):
    """Events on known days by two administrators about two users."""
    ada = make_user(Role.ADMIN, username="ada", full_name="Ada")
    bo = make_user(Role.ADMIN, username="bob", full_name="Bob")
    target = make_user(username="target", full_name="Tess Target")
    other = make_user(username="other", full_name="Otto Other")
    plan = [
        ("2026-03-01 10:00", ada, "user.rename", target),
        ("2026-03-05 23:59", bo, "user.deactivate", target),
        ("2026-03-06 00:00", bo, "user.activate", target),
        ("2026-03-10 12:00", ada, "user.deactivate", other),
        ("2026-03-12 08:00", bo, "user.rename", other),
    ]
    for when, actor, action, subject in plan:
        with freeze_time(when):
            record(action, actor=actor, object_type="user", object_id=subject.id)
            db.session.commit()
    return {"ada": ada, "bo": bo, "target": target, "other": other}


def _days(table: list[dict[str, str]]) -> list[str]:
    return [row["When (UTC)"][:10] for row in table if row["When (UTC)"].startswith("2026-03")]


def test_filters_by_actor_action_object_and_dates(client, as_ada):
    bo = rows(filtered(client, actor="bob").get_data(as_text=True))
    assert _days(bo) == ["2026-03-12", "2026-03-06", "2026-03-05"]
    assert {r["Who"] for r in bo} == {"Bob (bob)"}

    deactivations = rows(filtered(client, action="user.deactivate").get_data(as_text=True))
    assert [r["Object"] for r in deactivations] == ["User Otto Other (other)",
                                                    "User Tess Target (target)"]

    target = as_ada["target"]
    about_target = rows(filtered(client, object_type="user",
                                 object_id=str(target.id)).get_data(as_text=True))
    assert _days(about_target) == ["2026-03-06", "2026-03-05", "2026-03-01"]

    # Both ends of the range are whole UTC days, included.
    window = rows(filtered(client, since="2026-03-05", until="2026-03-10").get_data(as_text=True))
    assert _days(window) == ["2026-03-10", "2026-03-06", "2026-03-05"]

    combined = filtered(client, actor="ada", action="user.rename", since="2026-03-01",
                        until="2026-03-01")
    assert _days(rows(combined.get_data(as_text=True))) == ["2026-03-01"]
    # The form shows the filters it applied.
    soup = BeautifulSoup(combined.get_data(as_text=True), "html.parser")
    assert soup.select_one("input[name=actor]")["value"] == "ada"
    assert soup.select_one("select[name=action] option[selected]")["value"] == "user.rename"


@pytest.fixture
def as_ada(client, history):
    """The history, with the test client signed in as its administrator Ada."""
    assert login(client, "ada").status_code == 302
    return history


def test_pages_keep_the_filters(app, client, as_ada):
    app.config["AUDIT_PAGE_SIZE"] = 2
    first = filtered(client, actor="bob")
    html = first.get_data(as_text=True)
    text = " ".join(BeautifulSoup(html, "html.parser").get_text().split())
    assert "Page 1 of 2 (3 events)" in text
    older = BeautifulSoup(html, "html.parser").find("a", string="Older events")["href"]
    assert "actor=bob" in older
    second = client.get(older)
    assert second.status_code == 200
    assert _days(rows(second.get_data(as_text=True))) == ["2026-03-05"]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"actor": "nobody-here"}, "There is no user &#39;nobody-here&#39;."),
    ({"since": "2026-03-10", "until": "2026-03-01"},
     "The start date 2026-03-10 is after the end date 2026-03-01."),
    ({"object_id": "12"}, "Choose the kind of object the number belongs to."),
    ({"actor": "x" * 254 + "y"}, None),  # more than the box holds: refused by the browser
])
def test_bad_filters_typed_into_the_form_are_a_400_with_the_reason(client, as_ada, fields,
                                                                   reason):
    if reason is None:
        with pytest.raises(FieldRefused):
            filtered(client, **fields)
        return
    response = filtered(client, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert reason in html
    assert rows(html) == []  # nothing listed under a filter that was not applied


@pytest.mark.parametrize(("query", "reason"), [
    ({"action": "user.nonsense"}, "Unknown action &#39;user.nonsense&#39;."),
    ({"object_type": "spaceship", "object_id": "1"}, "Unknown kind of object"),
    ({"since": "last tuesday"}, "give the from date as YYYY-MM-DD"),
    ({"until": "2026-02-30"}, "give the to date as YYYY-MM-DD"),
    ({"actor": "x" * 300}, "Field cannot be longer than 254 characters."),
])
def test_forged_filter_values_are_a_400_not_a_500(client, as_ada, query, reason):
    # Hand-built query strings: values the rendered form cannot produce (a choice it does not
    # offer, text in a date box, more than the box's maxlength), as an attacker sends them.
    response = client.get("/admin/audit", query_string=query)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)


def test_events_without_a_sentence_still_read_as_phrases(client, as_ada):
    with freeze_time(datetime(2026, 3, 20, 9, 0, tzinfo=UTC)):
        record("viewer.layout_saved", object_type="layout", object_id=7,
               hanging_protocol="current_and_prior", panes=2)
        db.session.commit()
    [row] = rows(filtered(client, action="viewer.layout_saved").get_data(as_text=True))
    assert row["What"] == "Viewer layout saved"
    assert row["Object"] == "Layout 7"
    assert row["Details"] == "Hanging protocol: current_and_prior. Panes: 2."


def test_the_migration_credits_earlier_exceptions_to_the_granting_lead(app, make_user):
    """Events written before the fix named the holder; upgrading names the lead."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from app import MIGRATIONS_DIR
    from app.audit.models import AuditEvent

    holder = make_user(username="holder").id
    lead = make_user(Role.PROGRAMME_LEAD, username="granter", lead_all_countries=True).id
    earned = make_user(username="earner").id
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="c9752d2e0146")
    try:
        with db.engine.begin() as conn:
            for actor, action, certificate in [(holder, "certificate.issue", "41"),
                                               (lead, "certificate.exception", "41"),
                                               (earned, "certificate.issue", "42")]:
                conn.execute(text(
                    "INSERT INTO audit_event (occurred_at, actor_id, action, object_type,"
                    " object_id, detail) VALUES (:now, :actor, :action, 'certificate', :cid,"
                    " '{}')"),
                    {"now": datetime(2026, 3, 1, tzinfo=UTC), "actor": actor, "action": action,
                     "cid": certificate})
    finally:
        upgrade(directory=str(MIGRATIONS_DIR))
    actors = {(e.action, e.object_id): e.actor_id for e in db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.object_type == "certificate"))}
    assert actors == {("certificate.issue", "41"): lead,
                      ("certificate.exception", "41"): lead,
                      ("certificate.issue", "42"): earned}


def test_the_administration_home_lists_recent_activity_in_words(client, as_ada):
    html = client.get("/admin/").get_data(as_text=True)
    recent = rows(html)
    assert recent[0]["What"] == "Signed in" and recent[0]["Who"] == "Ada (ada)"
    assert {"What": "Name changed", "Details": "Changed the full name."}.items() <= next(
        r for r in recent if r["What"] == "Name changed").items()
