"""Administration: users, roles, clinics, deactivation and the audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import csrf_token, login, post_hand_built
from tests.forms import FormNotFound, submit_form

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/users/new", "/admin/clinics", "/admin/audit"]


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
def test_non_admins_get_403_on_admin_pages(client, login_as, role):
    login_as(role)
    for page in ADMIN_PAGES:
        response = client.get(page)
        assert response.status_code == 403, page
        assert "only for: administrator" in response.get_data(as_text=True)


def test_non_admin_cannot_post_to_admin_actions(client, login_as, make_user):
    victim = make_user()
    login_as(Role.TRAINEE_RADIOLOGIST)
    token = csrf_token(client, "/training/")
    # Deliberately hand-built: no page offers a trainee this action; an attacker forges it.
    response = client.post(f"/admin/users/{victim.id}/deactivate", data={"csrf_token": token})
    assert response.status_code == 403
    db.session.refresh(victim)
    assert victim.active


def test_admin_pages_render(client, login_as):
    login_as(Role.ADMIN)
    for page in ADMIN_PAGES:
        assert client.get(page).status_code == 200, page


def test_admin_creates_clinic_and_bad_input_is_a_clear_400(client, login_as):
    login_as(Role.ADMIN)
    def add_clinic(name: str, city: str, country: str):
        return submit_form(client, "/admin/clinics", button="Add clinic",
                           fields={"name": name, "city": city, "country": country})

    ok = add_clinic("Kathmandu Panel Clinic", "Kathmandu", "NP")
    assert ok.status_code == 200
    assert "Clinic Kathmandu Panel Clinic added." in ok.get_data(as_text=True)
    duplicate = add_clinic("kathmandu panel clinic", "Kathmandu", "NP")
    assert duplicate.status_code == 400
    assert "A clinic named &#39;kathmandu panel clinic&#39; already exists." in duplicate.get_data(
        as_text=True
    )
    with pytest.raises(FormNotFound):  # the country list offers no "XX"
        add_clinic("Nowhere", "X", "XX")
    # Deliberately hand-built: a forged country code the form does not offer.
    bad_country = post_hand_built(client, "/admin/clinics", {"name": "Nowhere", "city": "X",
                                                             "country": "XX"})
    assert bad_country.status_code == 400
    assert "Not a valid choice" in bad_country.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Clinic.id))) == 1


def test_admin_create_user_rejects_duplicates_and_missing_roles(client, login_as, make_user):
    login_as(Role.ADMIN)
    existing = make_user()
    before = db.session.scalar(select(func.count(User.id)))
    def create(**fields):
        return submit_form(client, "/admin/users/new",
                           button="Create user and make invitation link", fields=fields)

    dup = create(email=existing.email, full_name="Dup", clinic="0", roles=["trainer"])
    assert dup.status_code == 400
    assert "already exists" in dup.get_data(as_text=True)
    no_role = create(email="x@example.org", full_name="X", clinic="0")
    assert no_role.status_code == 400
    assert "choose at least one role" in no_role.get_data(as_text=True)
    lead = create(email="lead@example.org", full_name="L", clinic="0", roles=["programme_lead"])
    assert lead.status_code == 400
    assert "needs countries in scope" in lead.get_data(as_text=True)
    assert db.session.scalar(select(func.count(User.id))) == before


def test_admin_changes_roles_and_scope_and_it_is_audited(client, login_as, make_user):
    admin = login_as(Role.ADMIN)
    target = make_user(Role.TRAINEE_RADIOLOGIST)
    response = submit_form(client, f"/admin/users/{target.id}", button="Save", fields={
        "roles": ["trainee_radiologist", "programme_lead"], "lead_countries": ["KE", "UG"],
    })
    assert response.status_code == 302
    db.session.expire_all()
    user = db.session.get(User, target.id)
    assert user.roles == {Role.TRAINEE_RADIOLOGIST, Role.PROGRAMME_LEAD}
    assert user.lead_countries == ["KE", "UG"]
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.roles")
    ).one()
    assert event.actor_id == admin.id
    assert event.object_id == str(target.id)
    assert event.detail == {"before": ["trainee_radiologist"],
                            "after": ["programme_lead", "trainee_radiologist"]}


def test_unknown_user_page_is_404_with_reason(client, login_as):
    login_as(Role.ADMIN)
    response = client.get("/admin/users/99999")
    assert response.status_code == 404
    assert "There is no user 99999." in response.get_data(as_text=True)


def test_deactivation_signs_the_user_out_everywhere(app, client, login_as, make_user):
    target = make_user()
    their_client = app.test_client()
    assert login(their_client, target.username).status_code == 302
    login_as(Role.ADMIN)
    response = submit_form(client, f"/admin/users/{target.id}", button="Deactivate")
    assert response.status_code == 302
    assert their_client.get("/training/").status_code == 302
    assert login(their_client, target.username).status_code == 401


def test_admin_cannot_deactivate_themselves(client, login_as):
    admin = login_as(Role.ADMIN)
    with pytest.raises(FormNotFound):  # their own page offers no "Deactivate"
        submit_form(client, f"/admin/users/{admin.id}", button="Deactivate")
    # Deliberately hand-built: the request the page does not offer, forged.
    response = post_hand_built(client, f"/admin/users/{admin.id}/deactivate",
                               page=f"/admin/users/{admin.id}")
    assert response.status_code == 409
    assert "cannot deactivate your own account" in response.get_data(as_text=True)


def test_reinvite_makes_a_new_link_and_audits_it(client, login_as, make_user):
    login_as(Role.ADMIN)
    target = make_user()
    response = submit_form(client, f"/admin/users/{target.id}", button="New invitation link")
    assert response.status_code == 200
    assert "/auth/invitation/" in response.get_data(as_text=True)
    assert db.session.scalar(
        select(func.count()).where(AuditEvent.action == "user.invite")
    ) == 1


def test_audit_log_shows_logins_failures_and_user_changes(client, make_user):
    admin = make_user(Role.ADMIN)
    login(client, "someone-unknown", "wrong-password-1")
    login(client, admin.username)
    page = client.get("/admin/audit").get_data(as_text=True)
    for label in ("Sign-in refused", "Signed in", "Account created"):
        assert f'<td class="action">{label}</td>' in page
    # A name that matches no account may be a password typed in the wrong box.
    assert "someone-unknown" not in page and "a name that matches no account" in page
    filtered = submit_form(client, "/admin/audit", button="Filter",
                           fields={"action": "login.failed"}).get_data(as_text=True)
    assert '<td class="action">Sign-in refused</td>' in filtered
    assert '<td class="action">Account created</td>' not in filtered


def test_concurrent_duplicate_becomes_a_clear_error_and_writes_nothing(app, make_user, monkeypatch):
    """Two admins creating the same account at once: the loser's unique-constraint error is
    reported as bad input, not a 500, and leaves no row or audit event behind."""
    from app.auth import services
    from app.auth.services import AccountError, create_user

    existing = make_user(username="taken")
    monkeypatch.setattr(services, "_username_from_email", lambda email: existing.username)
    users_before = db.session.scalar(select(func.count(User.id)))
    events_before = db.session.scalar(select(func.count(AuditEvent.id)))
    with pytest.raises(AccountError, match="already exists"):
        create_user(email="fresh@example.org", full_name="F", roles=["trainer"])
    assert db.session.scalar(select(func.count(User.id))) == users_before
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events_before


# "forged": deliberately hand-built, a value the rendered form cannot send (a choice it does
# not offer, more characters than its maxlength); otherwise typed into the rendered form.
@pytest.mark.parametrize(
    ("path", "button", "data", "forged"),
    [
        ("/admin/users/new", "Create user and make invitation link",
         {"email": "a@b.org", "full_name": "A", "clinic": "abc", "roles": ["trainer"]}, True),
        ("/admin/users/new", "Create user and make invitation link",
         {"email": "a@b.org", "full_name": "A", "clinic": "999", "roles": ["trainer"]}, True),
        ("/admin/users/new", "Create user and make invitation link",
         {"email": "a@b.org", "full_name": "A", "clinic": "0", "roles": ["emperor"]}, True),
        ("/admin/users/new", "Create user and make invitation link",
         {"email": "a@b.org", "full_name": "A", "clinic": "0", "roles": ["programme_lead"],
          "lead_countries": ["QQ"]}, True),
        ("/admin/users/new", "Create user and make invitation link",
         {"email": "not an email", "full_name": "A", "clinic": "0", "roles": ["trainer"]}, False),
        ("/admin/clinics", "Add clinic", {"name": "x" * 500, "city": "y", "country": "KE"}, True),
        ("/admin/clinics", "Add clinic", {"name": "", "city": "", "country": ""}, False),
    ],
)
def test_hostile_admin_form_input_is_a_400_not_a_500(client, login_as, path, button, data,
                                                     forged):
    login_as(Role.ADMIN)
    if forged:
        with pytest.raises(FormNotFound):
            submit_form(client, path, button=button, fields=data)
        response = post_hand_built(client, path, data)
    else:
        response = submit_form(client, path, button=button, fields=data)
    assert response.status_code == 400
    assert 'class="error"' in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(User.id))) == 1
    assert db.session.scalar(select(func.count(Clinic.id))) == 0


def test_hostile_query_strings_do_not_break_admin_pages(client, login_as):
    login_as(Role.ADMIN)
    expected = {"/admin/audit?page=abc": 200, "/admin/audit?page=-3": 200,
                "/admin/audit?page=99999": 200, "/admin/audit?action=%00": 400,
                "/admin/users/abc": 404, "/admin/users/0": 404}
    for path, status in expected.items():
        assert client.get(path).status_code == status, path


def test_the_last_administrator_cannot_be_removed(app, client, login_as, make_user):
    admin = login_as(Role.ADMIN)
    response = submit_form(client, f"/admin/users/{admin.id}", button="Save",
                           fields={"roles": ["trainer"]})
    assert response.status_code == 400
    assert "last active administrator" in response.get_data(as_text=True)
    db.session.expire_all()
    assert Role.ADMIN in db.session.get(User, admin.id).roles
    cli = app.test_cli_runner().invoke(args=["users", "deactivate", admin.username])
    assert cli.exit_code != 0 and "last active administrator" in cli.output

    make_user(Role.ADMIN)  # with a second administrator, the change is allowed
    response = submit_form(client, f"/admin/users/{admin.id}", button="Save",
                           fields={"roles": ["trainer"]})
    assert response.status_code == 302
