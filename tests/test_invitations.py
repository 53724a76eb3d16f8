"""Invitation links: an invitee sets a password with a signed, expiring, single-use link."""

from __future__ import annotations

from urllib.parse import urlsplit

from freezegun import freeze_time

from app.auth.invitations import invitation_token
from app.auth.roles import Role
from app.auth.services import set_active
from app.extensions import db
from tests.conftest import login, sign_out
from tests.forms import submit_form, submit_html

NEW_PASSWORD = "my-own-password-42"


def new_token(user) -> str:
    """A new invitation token, committed as issuing an invitation does."""
    token = invitation_token(user)
    db.session.commit()
    return token


def set_password(client, path: str, password: str):
    return submit_form(client, path, button="Set password",
                       fields={"password": password, "confirm": password})


def invitation_path(client, login_as, make_clinic) -> str:
    """An admin creates an account in the browser and receives its invitation link."""
    login_as(Role.ADMIN)
    clinic = make_clinic("Hanoi Panel Site", "Hanoi", "VN")
    response = submit_form(client, "/admin/users/new",
                           button="Create user and make invitation link", fields={
        "email": "new.reader@example.org", "full_name": "Dr New Reader",
        "clinic": str(clinic.id), "roles": ["trainee_radiologist"],
    })
    assert response.status_code == 201, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    start = html.index('data-testid="invitation-link"')
    link = html[html.index('value="', start - 200) + 7:]
    link = link[: link.index('"')]
    sign_out(client, "/admin/")
    return urlsplit(link).path


def test_invitee_sets_password_and_signs_in(client, login_as, make_clinic):
    path = invitation_path(client, login_as, make_clinic)
    page = client.get(path)
    assert page.status_code == 200
    assert "new.reader" in page.get_data(as_text=True)
    response = set_password(client, path, NEW_PASSWORD)
    assert response.status_code == 302
    signed_in = login(client, "new.reader", NEW_PASSWORD)
    assert signed_in.headers["Location"] == "/home"  # a trainee lands on their home page


def test_used_invitation_cannot_be_used_again(client, login_as, make_clinic):
    path = invitation_path(client, login_as, make_clinic)
    assert set_password(client, path, NEW_PASSWORD).status_code == 302
    again = client.get(path)
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)


def test_expired_invitation_is_refused(client, make_user):
    user = make_user(password=None)
    with freeze_time("2026-01-01 09:00:00"):
        token = new_token(user)
    with freeze_time("2026-01-07 08:59:00"):
        opened = client.get(f"/auth/invitation/{token}")
        assert opened.status_code == 200
    with freeze_time("2026-01-08 09:00:01"):
        response = client.get(f"/auth/invitation/{token}")
        assert response.status_code == 400
        assert "has expired" in response.get_data(as_text=True)
        # The page opened before the link expired is submitted after it did.
        posted = submit_html(client, opened.get_data(as_text=True), f"/auth/invitation/{token}",
                             button="Set password",
                             fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert posted.status_code == 400
    assert login(client, user.username, NEW_PASSWORD).status_code == 401


def test_tampered_invitation_is_refused(client, make_user):
    user = make_user(password=None)
    token = new_token(user)
    _, stamp, signature = token.split(".")
    other = make_user(password=None)
    forged = new_token(other).split(".")[0]
    flipped = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for bad in (f"{forged}.{stamp}.{signature}", flipped, "not-a-token", "a.b.c"):
        response = client.get(f"/auth/invitation/{bad}")
        assert response.status_code == 400, bad
        assert "not valid" in response.get_data(as_text=True)


def test_invitation_for_deactivated_user_is_refused(client, make_user):
    user = make_user(password=None)
    token = new_token(user)
    set_active(user, False)
    assert client.get(f"/auth/invitation/{token}").status_code == 400


def test_weak_password_on_invitation_is_refused(client, make_user):
    user = make_user(password=None)
    path = f"/auth/invitation/{new_token(user)}"
    response = set_password(client, path, "short")
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert client.get(path).status_code == 200  # still usable after a refused attempt


def test_password_reset_by_invitation_signs_out_existing_sessions(app, client, make_user):
    user = make_user()
    device = app.test_client()
    assert login(device, user.username).status_code == 302
    path = f"/auth/invitation/{new_token(user)}"
    response = set_password(client, path, NEW_PASSWORD)
    assert response.status_code == 302
    assert device.get("/training/").status_code == 302


def test_a_new_invitation_retires_the_older_link(client, login_as, make_user):
    login_as(Role.ADMIN)
    invitee = make_user(password=None)

    def link() -> str:
        html = submit_form(client, f"/admin/users/{invitee.id}",
                           button="Make invitation link").get_data(as_text=True)
        start = html.index('data-testid="invitation-link"')
        value = html[html.index('value="', start - 200) + 7:]
        return urlsplit(value[: value.index('"')]).path

    first, second = link(), link()
    sign_out(client, "/admin/")
    old = client.get(first)
    assert old.status_code == 400
    assert "newer invitation link" in old.get_data(as_text=True)
    assert set_password(client, second, NEW_PASSWORD).status_code == 302


def _admin_invitation_link(client, invitee, button: str = "Make invitation link") -> str:
    html = submit_form(client, f"/admin/users/{invitee.id}",
                       button=button).get_data(as_text=True)
    start = html.index('data-testid="invitation-link"')
    value = html[html.index('value="', start - 200) + 7:]
    return urlsplit(value[: value.index('"')]).path


def test_a_new_invitation_also_retires_an_outstanding_password_reset_link(client, login_as,
                                                                          make_user):
    from app.auth.links import LinkPurpose, make_link_token

    invitee = make_user()  # has a password, and a reset link is out
    reset_path = f"/auth/password/reset/{make_link_token(invitee, LinkPurpose.PASSWORD_RESET)}"
    db.session.commit()
    assert client.get(reset_path).status_code == 200
    login_as(Role.ADMIN)
    invitation = _admin_invitation_link(client, invitee, "New invitation link")
    sign_out(client, "/admin/")
    old = client.get(reset_path)
    assert old.status_code == 400
    assert "not valid" in old.get_data(as_text=True)
    assert set_password(client, invitation, NEW_PASSWORD).status_code == 302


def test_cli_invite_twice_retires_the_first_link(app, client, make_user):
    invitee = make_user(password=None)
    runner = app.test_cli_runner()

    def link() -> str:
        result = runner.invoke(args=["users", "invite", invitee.username])
        assert result.exit_code == 0, result.output
        line = next(li for li in result.output.split() if "/auth/invitation/" in li)
        return urlsplit(line).path

    first, second = link(), link()
    old = client.get(first)
    assert old.status_code == 400 and "newer invitation link" in old.get_data(as_text=True)
    assert set_password(client, second, NEW_PASSWORD).status_code == 302
    assert client.get(second).status_code == 400  # and it is single use
