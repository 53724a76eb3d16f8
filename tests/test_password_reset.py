"""Self-service password reset by e-mail, through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from email.message import Message
from urllib.parse import urlsplit

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.invitations import invitation_token
from app.auth.models import User
from app.auth.passwords import verify_password
from app.auth.roles import Role
from app.auth.services import set_active
from app.extensions import db
from tests.conftest import PASSWORD, login, post_hand_built
from tests.forms import FormNotFound, submit_form, submit_html
from tests.realservers import free_port
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)

NEW_PASSWORD = "a-brand-new-password-7"
SAME_ANSWER = "If the user name or e-mail address you entered"


@pytest.fixture
def inbox(request):
    """The real SMTP server of tests.test_mail, collecting what the portal sends."""
    return request.getfixturevalue("smtp_inbox")


def ask_for_link(client, identifier: str, **kwargs):
    return submit_form(client, "/auth/password/forgot", button="Send reset link",
                       fields={"identifier": identifier}, **kwargs)


def link_path(message: Message) -> str:
    body = message.get_payload(decode=True).decode()
    link = next(line for line in body.splitlines() if "/auth/password/reset/" in line).strip()
    return urlsplit(link).path


def choose(client, path: str, password: str = NEW_PASSWORD):
    return submit_form(client, path, button="Set password",
                       fields={"password": password, "confirm": password})


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_sign_in_page_offers_the_reset_and_without_mail_says_ask_an_administrator(client):
    login_page = client.get("/auth/login").get_data(as_text=True)
    assert 'href="/auth/password/forgot"' in login_page and "Forgot your password?" in login_page
    page = client.get("/auth/password/forgot")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Ask your administrator" in html
    with pytest.raises(FormNotFound):  # nothing to submit when no e-mail can be sent
        ask_for_link(client, "anyone")
    # A request built by hand anyway gets the same explanation, as a 400.
    response = post_hand_built(client, "/auth/password/forgot", {"identifier": "anyone"})
    assert response.status_code == 400
    assert "Ask your administrator" in response.get_data(as_text=True)


def test_reset_by_email_ends_every_session_and_is_audited(app, client, make_user, inbox):
    user = make_user(username="forgetful", full_name="Dr Forgetful")
    device = app.test_client()
    assert login(device, user.username).status_code == 302
    assert device.get("/training/").status_code == 200

    answer = ask_for_link(client, "  FORGETFUL@example.org ")
    assert answer.status_code == 200
    assert SAME_ANSWER in answer.get_data(as_text=True)
    [message] = inbox.messages
    assert message["To"] == user.email
    assert message["Subject"] == "Reset your CXR Academy password"
    assert "Dr Forgetful" in message.get_payload(decode=True).decode()
    path = link_path(message)

    opened = client.get(path)
    assert opened.status_code == 200
    assert "forgetful" in opened.get_data(as_text=True)
    done = choose(client, path)
    assert done.status_code == 302 and done.headers["Location"] == "/auth/login"

    assert device.get("/training/").status_code == 302  # signed out on the other device
    assert login(client, "forgetful", PASSWORD).status_code == 401
    assert login(client, "forgetful", NEW_PASSWORD).status_code == 302
    [changed] = events("user.password")
    assert changed.actor_id == user.id and changed.detail == {"via": "password_reset"}
    [asked] = events("password_reset.request")
    assert asked.object_id == str(user.id) and asked.detail == {"matched": True, "emailed": True}


def test_the_answer_is_the_same_for_unknown_and_deactivated_accounts(client, make_user,
                                                                   inbox):
    known = make_user(username="known")
    gone = make_user(username="gone")
    set_active(gone, False)

    def answer(identifier: str) -> str:
        response = ask_for_link(client, identifier)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        start = html.index("<main")
        return html[start:html.index("</main>")]

    answers = {answer(i) for i in ("known", "nobody-at-all", "gone", "nobody@example.org")}
    assert len(answers) == 1 and SAME_ANSWER in answers.pop()
    assert [m["To"] for m in inbox.messages] == [known.email]


def test_used_link_is_refused(client, make_user, inbox):
    make_user(username="once")
    ask_for_link(client, "once")
    path = link_path(inbox.messages[0])
    assert choose(client, path).status_code == 302
    again = client.get(path)
    assert again.status_code == 400
    assert "already been used" in again.get_data(as_text=True)


def test_a_new_link_retires_the_older_one(client, make_user, inbox):
    user = make_user(username="twice")
    ask_for_link(client, "twice")
    ask_for_link(client, "twice")
    first, second = (link_path(m) for m in inbox.messages)
    old = client.get(first)
    assert old.status_code == 400
    assert "newer password reset link" in old.get_data(as_text=True)
    assert choose(client, second).status_code == 302
    db.session.expire_all()
    assert verify_password(db.session.get(User, user.id).password_hash, NEW_PASSWORD)


def test_expired_link_is_refused_even_from_a_page_opened_in_time(client, make_user, inbox):
    user = make_user(username="slow")
    with freeze_time("2026-05-01 09:00:00"):
        ask_for_link(client, "slow")
        path = link_path(inbox.messages[0])
    with freeze_time("2026-05-01 09:59:00"):
        opened = client.get(path)
        assert opened.status_code == 200
    with freeze_time("2026-05-01 10:00:01"):
        expired = client.get(path)
        assert expired.status_code == 400
        assert "has expired" in expired.get_data(as_text=True)
        posted = submit_html(client, opened.get_data(as_text=True), path, button="Set password",
                             fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert posted.status_code == 400
    db.session.expire_all()
    assert verify_password(db.session.get(User, user.id).password_hash, PASSWORD)


def test_link_of_a_deactivated_account_is_refused(client, make_user, inbox):
    user = make_user(username="leaver")
    ask_for_link(client, "leaver")
    path = link_path(inbox.messages[0])
    opened = client.get(path)
    set_active(user, False)
    refused = client.get(path)
    assert refused.status_code == 400
    assert "deactivated" in refused.get_data(as_text=True)
    posted = submit_html(client, opened.get_data(as_text=True), path, button="Set password",
                         fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert posted.status_code == 400
    db.session.expire_all()
    assert verify_password(db.session.get(User, user.id).password_hash, PASSWORD)
    assert events("user.password") == []


def test_weak_or_mismatched_password_is_refused_and_the_link_still_works(client, make_user,
                                                                        inbox):
    make_user(username="weak")
    ask_for_link(client, "weak")
    path = link_path(inbox.messages[0])
    short = choose(client, path, "short")
    assert short.status_code == 400
    assert "at least 12 characters" in short.get_data(as_text=True)
    differ = submit_form(client, path, button="Set password",
                         fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"})
    assert differ.status_code == 400 and "the passwords differ" in differ.get_data(as_text=True)
    assert events("user.password") == []
    assert choose(client, path).status_code == 302


def test_other_links_and_forgeries_are_not_reset_links(client, make_user, inbox):
    user = make_user(username="target")
    invitation = invitation_token(user)
    db.session.commit()
    for bad in (invitation, "not-a-token", "a.b.c", invitation[:-2] + "AA"):
        response = client.get(f"/auth/password/reset/{bad}")
        assert response.status_code == 400, bad
        assert "not valid" in response.get_data(as_text=True)


def test_requests_are_rate_limited_per_account_and_per_address(client, make_user, inbox):
    make_user(username="popular")
    # From many addresses, one account still gets at most five e-mails an hour.
    for n in range(5):
        asked = ask_for_link(client, "popular", environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert asked.status_code == 200
    flood = ask_for_link(client, "popular", environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert flood.status_code == 429
    assert "Too many password reset requests" in flood.get_data(as_text=True)
    assert len(inbox.messages) == 5
    # One address cannot probe many accounts either.
    for n in range(5):
        assert ask_for_link(client, f"someone{n}").status_code == 200
    assert ask_for_link(client, "someone-else").status_code == 429


def test_an_unreachable_mail_server_gives_the_same_answer(app, client, make_user):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
    make_user(username="unlucky")
    response = ask_for_link(client, "unlucky")
    assert response.status_code == 200 and SAME_ANSWER in response.get_data(as_text=True)
    [asked] = events("password_reset.request")
    assert asked.detail == {"matched": True, "emailed": False}


def test_hostile_reset_requests_are_400s(client, inbox):
    # Hand-built: more characters than the box's maxlength lets anyone type, and no field.
    for data in ({"identifier": "x" * 300}, {}):
        response = post_hand_built(client, "/auth/password/forgot", data)
        assert response.status_code == 400
        assert 'class="error"' in response.get_data(as_text=True)
    assert inbox.messages == []


def test_reset_link_is_on_the_public_address_whatever_the_host_header(
        app, client, make_user, inbox):
    """A forged Host header must not turn the e-mailed link into one to another site."""
    app.config["PUBLIC_BASE_URL"] = "https://cxr.example.org"
    make_user(username="hosted")
    forged = "http://reset.evil.example"  # the Host header of every request below
    page = client.get("/auth/password/forgot", base_url=forged)
    answer = submit_html(client, page.get_data(as_text=True), "/auth/password/forgot",
                         button="Send reset link", fields={"identifier": "hosted"},
                         base_url=forged)
    assert answer.status_code == 200 and SAME_ANSWER in answer.get_data(as_text=True)
    [message] = inbox.messages
    body = message.get_payload(decode=True).decode()
    link = next(line for line in body.splitlines() if "/auth/password/reset/" in line).strip()
    assert link.startswith("https://cxr.example.org/auth/password/reset/")
    assert "evil" not in body


def test_a_name_that_matches_no_account_is_kept_as_a_keyed_hash_only(client, make_user, inbox):
    from app.audit.security_log import identifier_hash

    admin = make_user(Role.ADMIN)
    typed = "My-Password-In-The-Wrong-Box-7"
    for _ in range(2):
        ask_for_link(client, typed)
    first, second = events("password_reset.request")
    assert first.detail == second.detail == {
        "matched": False, "identifier_hash": identifier_hash(typed.lower())}
    assert typed.lower() not in str(first.detail)
    login(client, admin.username)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert typed.lower() not in page.lower()
    assert "matches no active account (keyed hash" in page
