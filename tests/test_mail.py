"""Invitation e-mails through a real SMTP server started by the test (aiosmtpd)."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.extensions import db
from tests.forms import submit_form
from tests.realservers import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_inbox(app) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    try:
        yield inbox
    finally:
        controller.stop()


def _body(message: Message) -> str:
    return message.get_payload(decode=True).decode()


def test_admin_invitation_is_emailed(app, client, login_as, make_user, smtp_inbox):
    base = app.config["PUBLIC_BASE_URL"]  # the link's host, never the request's
    login_as(Role.ADMIN)
    invitee = make_user(password=None, full_name="Dr Mail Reader")
    response = submit_form(client, f"/admin/users/{invitee.id}",
                           button="Make invitation link")
    assert response.status_code == 200
    assert "was e-mailed to" in response.get_data(as_text=True)
    [message] = smtp_inbox.messages
    assert message["To"] == invitee.email
    assert message["Subject"] == "Your CXR Academy account"
    body = _body(message)
    assert "Dr Mail Reader" in body and invitee.username in body
    link = next(line for line in body.splitlines() if "/auth/invitation/" in line).strip()
    assert link.startswith(f"{base}/auth/invitation/")
    assert client.get(link.removeprefix(base)).status_code == 200
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.invite")).one()
    assert event.detail == {"emailed": True}


def test_cli_invitation_uses_the_public_base_url(app, make_user, smtp_inbox):
    app.config["PUBLIC_BASE_URL"] = "https://academy.example.org"
    invitee = make_user(password=None)
    result = app.test_cli_runner().invoke(args=["users", "invite", invitee.username])
    assert result.exit_code == 0, result.output
    assert "invitation link: https://academy.example.org/auth/invitation/" in result.output
    assert f"sent by e-mail to {invitee.email}" in result.output
    assert "https://academy.example.org/auth/invitation/" in _body(smtp_inbox.messages[0])


def test_unreachable_smtp_server_still_gives_the_admin_the_link(app, client, login_as, make_user):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)
    login_as(Role.ADMIN)
    invitee = make_user(password=None)
    response = submit_form(client, f"/admin/users/{invitee.id}",
                           button="Make invitation link")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "could not be sent" in html
    assert "/auth/invitation/" in html


def test_without_mail_configured_the_link_is_shown_to_pass_on(client, login_as, make_user):
    login_as(Role.ADMIN)
    invitee = make_user(password=None)
    response = submit_form(client, f"/admin/users/{invitee.id}",
                           button="Make invitation link")
    assert "E-mail is not configured" in response.get_data(as_text=True)
