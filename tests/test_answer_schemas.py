"""One schema for an answer save: the case page's autosave and the API's save accept and
refuse the same bodies (the page with 400 and a sentence its script shows, the API with 422
and each refused field), with the same limits."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.models import CaseImage
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer
from app.schemes.answers import MAX_MARKS
from tests.conftest import csrf_token, login
from tests.test_api import bearer, make_token
from tests.test_attempts import cases, post_start, practice, save_url  # noqa: F401 (fixtures)

ANSWER = {"overall": "abnormal"}


@pytest.fixture
def both(client, practice, make_user):  # noqa: F811 (fixture)
    """A trainee's attempt, saved through the page (session, CSRF) and through the API
    (token): (save by page, save by API)."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    token = make_token(client, trainee)
    login(client, trainee.username)
    started = post_start(client, practice)
    csrf = csrf_token(client, started.headers["Location"])
    attempt = db.session.scalars(select(Attempt)).one()

    def encoded(body: object) -> str:
        return body if isinstance(body, _Raw) else json.dumps(body)

    def by_page(body: object, position: int = 1):
        return client.post(save_url(attempt.id, position), data=encoded(body),
                           headers={"X-CSRFToken": csrf, "Content-Type": "application/json"})

    def by_api(body: object, position: int = 1):
        return client.put(f"/api/v1/attempts/{attempt.id}/answers/{position}",
                          data=encoded(body),
                          headers={**bearer(token), "Content-Type": "application/json"})

    by_page.csrf = csrf  # type: ignore[attr-defined]
    by_api.token = token  # type: ignore[attr-defined]
    return by_page, by_api


def _saved() -> int:
    return db.session.scalar(select(func.count()).select_from(AttemptAnswer)) or 0


def _image_id() -> int:
    attempt = db.session.scalars(select(Attempt)).one()
    return db.session.scalars(select(CaseImage.id).where(
        CaseImage.case_id == attempt.case_order[0])).first()


@pytest.mark.parametrize(("body", "field"), [
    ([ANSWER], "body"),
    ("answers", "body"),
    ({"answers": ANSWER, "junk": 1}, "junk"),
    ({"answers": [1, 2]}, "answers"),
    ({"answers": None}, "answers"),
    ({"answers": {"x" * 65: 1}}, "answers"),
    ({"marks": "x"}, "marks"),
    ({"marks": [1]}, "marks"),
    ({"answers": ANSWER, "revision": -1}, "revision"),
    ({"answers": ANSWER, "revision": "1"}, "revision"),
    ({"answers": ANSWER, "revision": 1.5}, "revision"),
    ({"answers": ANSWER, "revision": True}, "revision"),
    ({"answers": ANSWER, "revision": 2**31}, "revision"),
    ({"answers": ANSWER, "revision": 10**30}, "revision"),
])
def test_the_page_and_the_api_refuse_the_same_bodies_naming_the_field(both, body, field):
    by_page, by_api = both
    page = by_page(body)
    assert page.status_code == 400, page.get_json()
    assert f"{field}:" in page.get_json()["message"]
    api = by_api(body)
    assert api.status_code == 422, api.json
    assert field in api.json["errors"] and api.json["message"]
    assert _saved() == 0


def test_the_api_takes_as_many_marks_as_the_page_and_refuses_more_alike(both):
    by_page, by_api = both
    mark = {"image_id": _image_id(), "finding": "nodule", "shape": "point",
            "geometry": {"x": 1, "y": 1}}
    too_many = {"answers": {}, "marks": [mark] * (MAX_MARKS + 1)}
    for response in (by_page(too_many), by_api(too_many)):
        assert response.status_code in (400, 422)
        assert f"at most {MAX_MARKS} marks" in response.get_data(as_text=True)
    assert _saved() == 0
    # More than the API allowed before, as many as the page always took.
    most = {"answers": {}, "marks": [mark] * MAX_MARKS}
    assert by_api(most).status_code == 200
    assert by_page(most).status_code == 200


def test_what_the_page_sends_is_accepted_by_both(both):
    by_page, by_api = both
    saved = by_page({"answers": ANSWER, "marks": [], "revision": 0})
    assert saved.status_code == 200 and saved.get_json()["revision"] == 1
    assert set(saved.get_json()) == {"saved", "revision", "saved_at", "seconds_left",
                                     "position", "answered"}
    again = by_api({"answers": ANSWER, "marks": [], "revision": 1})
    assert again.status_code == 200 and again.json["revision"] == 2
    # Fields left out take their defaults: the last save wins.
    assert by_page({"answers": ANSWER}).get_json()["revision"] == 3
    assert by_api({}).json["revision"] == 4


@pytest.mark.parametrize(("data", "reason"), [
    ('{"answers": {}, "marks": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
    ('{"answers": {}, "marks": ' + "[" * 40 + "]" * 40 + "}", "nested deeper"),
    ('{"answers": {"tb_likelihood": NaN}}', "NaN is not a number JSON allows"),
    ('{"answers": {"tb_likelihood": Infinity}}', "Infinity is not a number JSON allows"),
    ('{"answers": {"tb_likelihood": 1e400}}', "too large"),
])
def test_json_the_portal_does_not_read_is_refused_alike_with_the_reason(both, data, reason):
    by_page, by_api = both
    for send in (by_page, by_api):
        response = send(_Raw(data))
        assert response.status_code == 400, (send, response.get_data(as_text=True)[:300])
        assert reason in response.get_json()["message"]
    assert _saved() == 0


class _Raw(str):
    """A body sent as it is (the fixture's senders JSON-encode anything else)."""


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_a_body_not_sent_as_json_is_refused_alike_and_saves_nothing(
        client, both, content_type):
    attempt = db.session.scalars(select(Attempt)).one()
    by_page, by_api = both
    token = by_api.token
    headers = {} if content_type is None else {"Content-Type": content_type}
    api = client.put(f"/api/v1/attempts/{attempt.id}/answers/1", data="answers=x",
                     headers={**bearer(token), **headers})
    page = client.post(save_url(attempt.id, 1), data="answers=x",
                       headers={"X-CSRFToken": by_page.csrf, "Accept": "application/json",
                                **headers})
    for response in (page, api):
        assert response.status_code == 400, response.get_data(as_text=True)
        assert "Send the body as JSON" in response.get_json()["message"]
    assert _saved() == 0
