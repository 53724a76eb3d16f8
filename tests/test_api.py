"""The JSON API /api/v1 with personal API tokens: a token made on the account page takes
an exercise end to end; scopes, roles, expiry and revocation; bad input is a 4xx with a
reason; requests on the session cookie still need the CSRF token."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.api.models import ApiToken
from app.api.token_routes import NEW_TOKEN
from app.audit.models import AuditEvent
from app.audit.security_log import destination
from app.auth.roles import Role
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.exercises import create_exercise
from tests import test_attempts
from tests.conftest import csrf_token, login
from tests.forms import submit_form

# The exercise fixtures of the attempts' tests (practice set, exam-bank cases).
cases, exam_cases, practice = (test_attempts.cases, test_attempts.exam_cases,
                               test_attempts.practice)

ANSWER = {"overall": "abnormal", "findings": ["cavitary_lesion"]}


def make_token(client, user, *, scope: str = "write", days: int = 30,
               name: str = "registry") -> str:
    """Sign ``user`` in, create a token on the account page, sign out; the token."""
    assert login(client, user.username).status_code == 302
    expires = (utcnow().date() + timedelta(days=days)).isoformat()
    response = submit_form(client, "/account/api-tokens", button="Create token",
                           fields={"name": name, "scope": scope, "expires_on": expires})
    assert response.status_code == 303, response.get_data(as_text=True)
    secret = shown_token(client.get(response.headers["Location"]))
    assert secret is not None
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])  # the token alone
    return secret


def shown_token(response) -> str | None:
    """The new token a page shows, if it shows one."""
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    if 'id="new-token">' not in html:
        return None
    start = html.index('id="new-token">') + len('id="new-token">')
    return html[start:html.index("<", start)]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def trainee(make_user):
    return make_user(Role.TRAINEE_RADIOLOGIST, username="tina")


# ---- the account page ----------------------------------------------------------------------


def test_a_token_is_shown_once_kept_as_a_hash_listed_and_audited(client, trainee):
    secret = make_token(client, trainee, scope="read")
    assert secret.startswith("cxr_")
    [row] = db.session.scalars(select(ApiToken)).all()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.prefix, row.token_hash, row.name) and row.scope == "read"
    assert secret.startswith(f"cxr_{row.prefix}_")
    login(client, trainee.username)
    page = client.get("/account/api-tokens").get_data(as_text=True)
    assert secret not in page  # shown once
    assert f"cxr_{row.prefix}_" in page and "registry" in page and "never" in page
    client.get("/api/v1/exercises", headers=bearer(secret))
    db.session.refresh(row)
    assert row.last_used_at is not None
    submit_form(client, "/account/api-tokens", button="Revoke")
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_type == "api_token")).all()
    assert sorted(actions) == ["api_token.create", "api_token.revoke"]
    assert "registry" not in str(db.session.scalars(select(AuditEvent.detail)).all())


def test_reloading_the_page_that_shows_a_new_token_neither_shows_it_again_nor_creates_one(
        client, trainee):
    login(client, trainee.username)
    expires = (utcnow().date() + timedelta(days=5)).isoformat()
    created = submit_form(client, "/account/api-tokens", button="Create token",
                          fields={"name": "LMS", "scope": "read", "expires_on": expires})
    # Post/redirect/get: the answer to the form is a redirect, not the page with the token.
    assert created.status_code == 303 and "cxr_" not in created.get_data(as_text=True)
    page = created.headers["Location"]
    assert page == "/account/api-tokens"
    secret = shown_token(client.get(page))
    assert secret and secret.startswith("cxr_")
    assert client.get(page).status_code == 200  # the reload
    assert shown_token(client.get(page)) is None
    assert db.session.scalar(select(func.count(ApiToken.id))) == 1
    # The token waited in the session encrypted, and is gone from it.
    with client.session_transaction() as held:
        assert NEW_TOKEN not in held
    # Nowhere in the logs or the audit table either.
    assert secret not in Path(destination(client.application)).read_text()
    assert secret not in str(db.session.scalars(select(AuditEvent.detail)).all())


def test_a_new_token_is_shown_to_its_creator_alone_and_not_once_revoked(client, trainee,
                                                                        make_user):
    login(client, trainee.username)
    expires = (utcnow().date() + timedelta(days=5)).isoformat()
    submit_form(client, "/account/api-tokens", button="Create token",
                fields={"name": "LMS", "scope": "read", "expires_on": expires})
    with client.session_transaction() as held:
        waiting = dict(held[NEW_TOKEN])
    assert "cxr_" not in str(waiting)  # encrypted in the cookie
    # Revoked before the page showed it: not shown.
    row = db.session.scalars(select(ApiToken)).one()
    row.revoked_at = utcnow()
    db.session.commit()
    assert shown_token(client.get("/account/api-tokens")) is None
    # Another account's session given the value: not shown either.
    other = make_user(Role.TRAINER)
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
    login(client, other.username)
    with client.session_transaction() as held:
        held[NEW_TOKEN] = waiting
    assert shown_token(client.get("/account/api-tokens")) is None


@pytest.mark.parametrize(("fields", "reason"), [
    ({"name": ""}, "Give the token a name"),
    ({"expires_on": "+366"}, "at most 365 days"),
    ({"expires_on": "-1"}, "has passed"),
    ({"expires_on": ""}, "Choose the date"),
    ({"expires_on": "2027-02-30"}, "Choose the date"),
])
def test_bad_token_requests_are_refused_with_a_reason_and_create_nothing(
        client, trainee, fields, reason):
    login(client, trainee.username)
    values = {"name": "n", "scope": "write",
              "expires_on": (utcnow().date() + timedelta(days=5)).isoformat(), **fields}
    if values["expires_on"][:1] in "+-" and values["expires_on"]:
        values["expires_on"] = (utcnow().date() + timedelta(
            days=int(values["expires_on"]))).isoformat()
    response = submit_form(client, "/account/api-tokens", button="Create token",
                           fields=values)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert db.session.scalars(select(ApiToken)).all() == []


def test_the_service_refuses_long_names_and_unknown_scopes(trainee):
    from app.api.tokens import TokenError, create_token

    later = utcnow().date() + timedelta(days=3)
    with pytest.raises(TokenError, match="80 characters"):
        create_token(trainee, "x" * 81, "read", later)
    with pytest.raises(TokenError, match="read only, or read and write"):
        create_token(trainee, "n", "admin", later)
    assert db.session.scalars(select(ApiToken)).all() == []


def test_someone_elses_token_cannot_be_revoked(client, trainee, make_user):
    make_token(client, trainee)
    [row] = db.session.scalars(select(ApiToken)).all()
    other = make_user(Role.TRAINEE_RADIOLOGIST)
    login(client, other.username)
    token = csrf_token(client, "/account/api-tokens")
    response = client.post(f"/account/api-tokens/{row.id}/revoke",
                           data={"csrf_token": token})
    assert response.status_code == 404
    db.session.refresh(row)
    assert row.revoked_at is None


# ---- an exercise end to end --------------------------------------------------------------


def test_an_api_client_takes_an_exercise_end_to_end(client, trainee, practice):
    token = make_token(client, trainee)
    listed = client.get("/api/v1/exercises", headers=bearer(token))
    assert listed.status_code == 200
    [row] = [e for e in listed.json if e["id"] == practice.id]
    assert row["start_refused"] is None and row["open_attempt"] is None

    started = client.post(f"/api/v1/exercises/{practice.id}/attempts", headers=bearer(token))
    assert started.status_code == 201, started.json
    attempt = started.json
    assert attempt["state"] == "in_progress" and len(attempt["case_ids"]) == 2
    assert "reference" not in str(attempt)  # no key while it runs
    base = f"/api/v1/attempts/{attempt['id']}"
    assert client.get(f"{base}/result", headers=bearer(token)).status_code == 409

    saved = client.put(f"{base}/answers/1", headers=bearer(token),
                       json={"answers": ANSWER, "marks": [], "revision": 0})
    assert saved.status_code == 200, saved.json
    assert saved.json["revision"] == 1
    # A save based on an older revision is refused, with the newer answer (compare-and-set).
    stale = client.put(f"{base}/answers/1", headers=bearer(token),
                       json={"answers": {"overall": "normal"}, "revision": 0})
    assert stale.status_code == 409 and stale.json["reason"] == "stale"
    assert stale.json["revision"] == 1 and stale.json["answers"]["overall"] == "abnormal"
    assert client.put(f"{base}/answers/2", headers=bearer(token),
                      json={"answers": {"overall": "normal"}}).status_code == 200
    again = client.get(base, headers=bearer(token)).json
    assert [a["revision"] for a in again["answers"]] == [1, 1]

    submitted = client.post(f"{base}/submit", headers=bearer(token))
    assert submitted.status_code == 200 and submitted.json["state"] == "submitted"
    result = client.get(f"{base}/result", headers=bearer(token))
    assert result.status_code == 200, result.json
    body = result.json
    # A practice set shows the score and each case's key after the attempt.
    assert body["score_shown"] is True and body["metrics"]["accuracy"] is not None
    by_case = {c["case_id"]: c for c in body["cases"]}
    first = by_case[attempt["case_ids"][0]]
    assert first["reference_tb_positive"] is True and first["tb_correct"] is True
    assert first["teaching_notes"]
    # Saving after submission is refused with the reason.
    late = client.put(f"{base}/answers/1", headers=bearer(token), json={"answers": ANSWER})
    assert late.status_code == 409 and late.json["message"]


def test_an_exam_result_withholds_the_key_as_the_page_does(client, trainee, exam_cases):
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in exam_cases], actor=None,
                           time_limit_minutes=10)
    token = make_token(client, trainee)
    attempt = client.post(f"/api/v1/exercises/{exam.id}/attempts", headers=bearer(token)).json
    client.put(f"/api/v1/attempts/{attempt['id']}/answers/1", headers=bearer(token),
               json={"answers": ANSWER})
    client.post(f"/api/v1/attempts/{attempt['id']}/submit", headers=bearer(token))
    body = client.get(f"/api/v1/attempts/{attempt['id']}/result", headers=bearer(token)).json
    assert body["score_shown"] is True
    for case in body["cases"]:
        assert case["tb_correct"] is None and case["reference_tb_positive"] is None
        assert case["reference_answers"] is None and case["teaching_notes"] is None


def test_someone_elses_attempt_is_not_found(client, trainee, practice, make_user):
    token = make_token(client, trainee)
    attempt = client.post(f"/api/v1/exercises/{practice.id}/attempts",
                          headers=bearer(token)).json
    other = make_token(client, make_user(Role.TRAINEE_RADIOLOGIST))
    for method, path in (("GET", ""), ("POST", "/submit"), ("GET", "/result")):
        response = client.open(f"/api/v1/attempts/{attempt['id']}{path}", method=method,
                               headers=bearer(other))
        assert response.status_code == 404 and response.json["message"]


# ---- scope, role, expiry, revocation -----------------------------------------------------


@pytest.mark.parametrize(("roles", "scope", "method", "path", "status"), [
    ((Role.TRAINEE_RADIOLOGIST,), "read", "GET", "/api/v1/exercises", 200),
    ((Role.TRAINEE_RADIOLOGIST,), "read", "POST", "/api/v1/exercises/{practice}/attempts",
     403),
    ((Role.TRAINEE_RADIOLOGIST,), "write", "POST", "/api/v1/exercises/{practice}/attempts",
     201),
    ((Role.TRAINEE_RADIOLOGIST,), "write", "GET", "/api/v1/cases", 403),
    ((Role.TRAINEE_RADIOLOGIST,), "write", "GET", "/api/v1/users", 403),
    ((Role.TRAINEE_RADIOLOGIST,), "write", "GET", "/api/v1/clinics", 403),
    ((Role.TRAINER,), "read", "GET", "/api/v1/cases", 200),
    ((Role.TRAINER,), "read", "GET", "/api/v1/cases/{case}", 200),
    ((Role.TRAINER,), "read", "GET", "/api/v1/users", 403),
    ((Role.ADMIN,), "read", "GET", "/api/v1/users", 200),
    ((Role.ADMIN,), "read", "GET", "/api/v1/clinics", 200),
    ((Role.ADMIN,), "read", "GET", "/api/v1/exercises", 403),
    ((Role.PROGRAMME_LEAD,), "write", "GET", "/api/v1/cases", 403),
])
def test_tokens_act_with_their_users_roles_and_scope(
        client, make_user, practice, cases, roles, scope, method, path, status):
    token = make_token(client, make_user(*roles), scope=scope)
    url = path.format(practice=practice.id, case=cases[0].id)
    response = client.open(url, method=method, headers=bearer(token))
    assert response.status_code == status, response.json
    assert "Set-Cookie" not in response.headers  # nothing kept in a session
    if status == 403:
        assert response.json["message"]
        if scope == "read" and method != "GET":
            assert response.json["reason"] == "read_only_token"


def _refused(client, token: str, reason: str) -> None:
    response = client.get("/api/v1/exercises", headers=bearer(token))
    assert response.status_code == 401, response.json
    assert response.json["reason"] == reason and response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_revoked_unknown_and_malformed_tokens_are_401_with_the_reason(
        client, trainee, practice):
    token = make_token(client, trainee)
    assert client.get("/api/v1/exercises", headers=bearer(token)).status_code == 200
    _refused(client, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "unknown")
    _refused(client, "cxr_nothing", "unknown")
    _refused(client, "x" * 5000, "unknown")
    response = client.get("/api/v1/exercises", headers={"Authorization": "Basic dTpw"})
    assert response.status_code == 401 and response.json["reason"] == "malformed"
    row = db.session.scalars(select(ApiToken)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    _refused(client, token, "expired")
    row.expires_at = utcnow() + timedelta(days=1)
    db.session.commit()
    login(client, trainee.username)
    submit_form(client, "/account/api-tokens", button="Revoke")
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
    _refused(client, token, "revoked")


def test_a_deactivated_account_s_token_is_refused(client, trainee, practice):
    token = make_token(client, trainee)
    trainee.active = False
    db.session.commit()
    _refused(client, token, "inactive_account")


def test_without_a_token_or_session_the_api_asks_for_one(client):
    response = client.get("/api/v1/exercises")
    assert response.status_code == 401 and "Authorization: Bearer" in response.json["message"]


def test_a_privileged_users_token_needs_no_second_factor_session(client, make_user, cases):
    trainer = make_user(Role.TRAINER)
    token = make_token(client, trainer, scope="read")
    response = client.get("/api/v1/cases", headers=bearer(token))
    assert response.status_code == 200
    assert {c["id"] for c in response.json["items"]} >= {c.id for c in cases}


def test_session_requests_to_the_api_still_need_the_csrf_token(client, trainee, practice):
    login(client, trainee.username)
    assert client.get("/api/v1/exercises").status_code == 200
    refused = client.post(f"/api/v1/exercises/{practice.id}/attempts")
    assert refused.status_code == 400 and "CSRF" in refused.json["message"]
    token = csrf_token(client, "/training/")
    accepted = client.post(f"/api/v1/exercises/{practice.id}/attempts",
                           headers={"X-CSRFToken": token})
    assert accepted.status_code == 201


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"answers": ANSWER, "junk": 1}, 422, "junk"),
    ({"answers": ANSWER, "revision": -1}, 422, "revision"),
    ({"answers": ANSWER, "revision": "one"}, 422, "revision"),
    ({"answers": [1, 2]}, 422, "answers"),
    ({"marks": "x"}, 422, "marks"),
    ({"answers": {"overall": "maybe"}}, 400, None),
    ({"answers": {"nope": "x"}}, 400, None),
    ({"answers": ANSWER, "revision": 7}, 409, None),
])
def test_bad_answers_are_refused_with_a_reason(client, trainee, practice, body, status, field):
    token = make_token(client, trainee)
    attempt = client.post(f"/api/v1/exercises/{practice.id}/attempts",
                          headers=bearer(token)).json
    response = client.put(f"/api/v1/attempts/{attempt['id']}/answers/1",
                          headers=bearer(token), json=body)
    assert response.status_code == status, response.json
    assert response.json["message"]
    if field:
        assert field in str(response.json["errors"])
    assert client.get(f"/api/v1/attempts/{attempt['id']}",
                      headers=bearer(token)).json["answers"] == []


@pytest.mark.parametrize("data", ["not json", "[1,", '{"answers": NaN}', "1e999"])
def test_bodies_that_are_not_json_objects_are_4xx(client, trainee, practice, data):
    token = make_token(client, trainee)
    attempt = client.post(f"/api/v1/exercises/{practice.id}/attempts",
                          headers=bearer(token)).json
    response = client.put(f"/api/v1/attempts/{attempt['id']}/answers/1",
                          headers={**bearer(token), "Content-Type": "application/json"},
                          data=data)
    assert 400 <= response.status_code < 500 and response.json["message"]


def test_positions_and_query_strings_out_of_range_are_4xx(client, make_user, practice):
    trainer = make_user(Role.TRAINER, Role.TRAINEE_RADIOLOGIST)
    token = make_token(client, trainer)
    attempt = client.post(f"/api/v1/exercises/{practice.id}/attempts",
                          headers=bearer(token)).json
    for position in (0, 3, 2**40):
        response = client.put(f"/api/v1/attempts/{attempt['id']}/answers/{position}",
                              headers=bearer(token), json={"answers": ANSWER})
        assert response.status_code == 404, response.json
    for query in ("page=0", "per_page=1000", "status=lost", "tb=perhaps", "page=2**64",
                  f"page={2**70}", "tag=" + "x" * 65):
        response = client.get(f"/api/v1/cases?{query}", headers=bearer(token))
        assert response.status_code in (400, 422), (query, response.json)
        assert response.json["message"]


def test_certificates_are_verified_without_a_token(client, make_user, practice, cases):
    from tests.test_api_schemathesis import _certificate

    holder = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Amina Odhiambo")
    code = _certificate(holder, practice, cases[2])
    response = client.get(f"/api/v1/certificates/{code}")
    assert response.status_code == 200, response.json
    assert response.json["holder"] == "Amina Odhiambo" and response.json["status"] == "valid"
    assert response.json["issued"] == utcnow().date().isoformat()
    response = client.get("/api/v1/certificates/NOSUCHCODE123")
    assert response.status_code == 404
    assert response.json["message"] == "No certificate has this code."


def test_the_openapi_document_is_3_1_and_names_the_bearer_scheme(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/certificates/{code}"]["get"]["security"] == []


def test_the_api_answers_in_english_whatever_the_callers_language(client, trainee, practice):
    """Programs compare the API's sentences: a caller whose setting is French or Spanish gets
    the same English message as an English one (the pages are in the reader's language)."""
    token = make_token(client, trainee)
    started = client.post(f"/api/v1/exercises/{practice.id}/attempts", headers=bearer(token))
    base = f"/api/v1/attempts/{started.json['id']}"
    assert client.post(f"{base}/submit", headers=bearer(token)).status_code == 200
    messages = {}
    for language in ("en", "fr", "es"):
        trainee.language = language
        db.session.commit()
        late = client.put(f"{base}/answers/1", headers=bearer(token), json={"answers": ANSWER})
        assert late.status_code == 409
        messages[language] = late.json["message"]
    assert messages["fr"] == messages["es"] == messages["en"], messages
