"""A request refused for its API token is an ``api_token.refused`` line in the security log:
the reason, the token's public prefix and id when it has them, the owner only when the token
itself was presented, never the token; the answer stays a 401 or 403 with the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.api.models import ApiToken
from app.audit.security_log import destination
from app.auth.roles import Role
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import login
from tests.test_api import bearer, make_token
from tests.test_security_log import of


@pytest.fixture
def trainee(make_user):
    return make_user(Role.TRAINEE_RADIOLOGIST, username="tina")


def _refused_line(app, client, token: str, *, method: str = "GET", status: int = 401,
                  reason: str) -> dict:
    before = len(of(app, "api_token.refused"))
    response = client.open("/api/v1/exercises", method=method, headers=bearer(token))
    assert response.status_code == status, response.json
    assert response.json["reason"] == reason and response.json["message"]
    lines = of(app, "api_token.refused")
    assert len(lines) == before + 1
    line = lines[-1]
    assert (line["outcome"], line["reason"], line["status"]) == ("failure", reason, status)
    assert line["path"] == "/api/v1/exercises" and line["method"] == method
    # One line for the refusal: not a second, vaguer access.refused.
    assert not [seen for seen in of(app, "access.refused")
                if seen["request_id"] == line["request_id"]]
    assert token not in Path(destination(app)).read_text()
    return line


def _row() -> ApiToken:
    return db.session.scalars(select(ApiToken)).one()


def test_each_refused_token_is_logged_with_its_reason_and_prefix(app, client, trainee):
    token = make_token(client, trainee, scope="read")
    row = _row()
    secret_part = token.split("_", 2)[2]

    # Read-only on a write: the owner, the token's id and prefix.
    line = _refused_line(app, client, token, method="POST", status=403,
                         reason="read_only_token")
    assert (line["user_id"], line["token_prefix"]) == (trainee.id, row.prefix)
    assert (line["object_type"], line["object_id"]) == ("api_token", str(row.id))

    # A wrong secret after a known prefix: someone's guess, named by the token it aims at,
    # not attributed to its owner.
    guess = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    line = _refused_line(app, client, guess, reason="unknown")
    assert (line["token_prefix"], line["object_id"], line["user_id"]) == (
        row.prefix, str(row.id), None)
    # A prefix no token has, and things that are no token of ours: nothing of them logged.
    line = _refused_line(app, client, "cxr_0123abcd_" + secret_part, reason="unknown")
    assert line["token_prefix"] == "0123abcd" and "object_id" not in line
    for junk in ("ghp_" + secret_part, "cxr_NOT-HEX!_x", "x" * 5000):
        line = _refused_line(app, client, junk, reason="unknown")
        assert "token_prefix" not in line and "object_id" not in line
        assert junk[:12] not in Path(destination(app)).read_text()

    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    line = _refused_line(app, client, token, reason="expired")
    assert (line["user_id"], line["token_prefix"], line["object_id"]) == (
        trainee.id, row.prefix, str(row.id))

    row.expires_at, row.revoked_at = utcnow() + timedelta(days=1), utcnow()
    db.session.commit()
    line = _refused_line(app, client, token, reason="revoked")
    assert (line["user_id"], line["token_prefix"]) == (trainee.id, row.prefix)

    row.revoked_at = None
    trainee.active = False
    db.session.commit()
    line = _refused_line(app, client, token, reason="inactive_account")
    assert line["object_id"] == str(row.id)
    assert secret_part not in Path(destination(app)).read_text()


def test_a_malformed_header_is_logged_and_names_nobody_signed_in(app, client, trainee):
    login(client, trainee.username)  # a session cookie alongside does not make it theirs
    before = len(of(app, "api_token.refused"))
    response = client.get("/api/v1/exercises", headers={"Authorization": "Basic dTpw"})
    assert response.status_code == 401 and response.json["reason"] == "malformed"
    [line] = of(app, "api_token.refused")[before:]
    assert line["reason"] == "malformed" and line["user_id"] is None
    assert "dTpw" not in Path(destination(app)).read_text()
    token = make_token_for_session_user(client, trainee)
    line = _refused_line(app, client, token[:-1] + "!", reason="unknown")
    assert line["user_id"] is None


def make_token_for_session_user(client, user) -> str:
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
    token = make_token(client, user)
    login(client, user.username)
    return token
