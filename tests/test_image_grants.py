"""A worker remembers for a few seconds that a trainee may fetch an image of their exam: the
stages of one image and the next case's preview then cost only the session's statement.
What the memory may outlive (an attempt's end) it outlives by those seconds at most;
sign-out, another user and a refusal are never answered from it."""

from __future__ import annotations

import pytest

from app.auth.roles import Role
from app.cases import image_grants
from app.quizzes.services import submit_attempt
from tests.conftest import csrf_token, login
from tests.test_attempts import (  # noqa: F401 (fixtures)
    cases,
    exam,
    exam_cases,
    post_start,
    published_tb_case,
)
from tests.test_exam_request_statements import _open_exam, _viewer_data
from tests.test_scoring_path import statements

SECONDS = 5.0


@pytest.fixture
def clock(app, monkeypatch):
    """The grants' clock, moved by hand; grants last SECONDS as in production."""
    app.config["IMAGE_GRANT_SECONDS"] = SECONDS
    image_grants.forget_all()  # ids repeat from one test's database to the next
    now = [1000.0]
    monkeypatch.setattr(image_grants, "_clock", lambda: now[0])
    yield now
    image_grants.forget_all()


def _exam_image_urls(client, page: str) -> list[str]:
    payload = _viewer_data(client.get(page).get_data(as_text=True))
    image = payload["images"][0]
    return [image["preview_url"], *payload["prefetch"]]


def _bank_image_url(cases) -> str:  # noqa: F811
    """An image of the exam's exam-bank case: seen only through an open attempt."""
    return f"/cases/images/{cases[2].images[0].id}/preview?v=1"


def test_a_second_fetch_of_an_image_costs_only_the_session(client, exam, make_user,  # noqa: F811
                                                            clock):
    _, page = _open_exam(client, exam, make_user)
    url = _exam_image_urls(client, page)[0]
    first = client.get(url)
    assert first.status_code == 200
    with statements() as sent:
        again = client.get(url)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(sent) == 1, "\n".join(sent)  # the session row with its user


def test_an_ended_attempt_stops_its_images_within_the_grant(client, exam, cases,  # noqa: F811
                                                            make_user, clock):
    attempt, _ = _open_exam(client, exam, make_user)
    url = _bank_image_url(cases)
    assert client.get(url).status_code == 200
    submit_attempt(attempt, attempt.user)
    clock[0] += SECONDS - 1
    assert client.get(url).status_code == 200  # remembered: at most SECONDS late
    clock[0] += 1
    assert client.get(url).status_code == 404


def test_sign_out_and_other_users_are_never_answered_from_a_grant(
        client, exam, cases, make_user, clock):  # noqa: F811
    _, page = _open_exam(client, exam, make_user)
    url = _bank_image_url(cases)
    assert client.get(url).status_code == 200
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, page)})
    assert client.get(url).status_code == 401
    other = make_user(Role.TRAINEE_RADIOLOGIST, username="other")
    login(client, other.username)
    assert client.get(url).status_code == 404  # an exam-bank case of someone else's attempt


def test_a_refusal_is_not_remembered(client, exam, cases, make_user, clock):  # noqa: F811
    login(client, make_user(Role.TRAINEE_RADIOLOGIST, username="late").username)
    url = _bank_image_url(cases)
    assert client.get(url).status_code == 404
    post_start(client, exam)  # the same exam: its cases are this trainee's now
    assert client.get(url).status_code == 200


def test_the_images_a_case_page_shows_cost_only_the_session(client, exam, make_user,  # noqa: F811
                                                             clock):
    """The viewed case's and the prefetched next case's: granted by the page itself."""
    _, page = _open_exam(client, exam, make_user)
    urls = _exam_image_urls(client, page)
    assert len(urls) >= 2
    for url in urls:
        with statements() as sent:
            answer = client.get(url)
        assert answer.status_code == 200, url
        assert len(sent) == 1, "\n".join(sent)


def test_a_case_page_grants_nothing_when_the_grants_memory_is_off(client, exam,  # noqa: F811
                                                                   make_user, clock, app):
    app.config["IMAGE_GRANT_SECONDS"] = 0
    _, page = _open_exam(client, exam, make_user)
    url = _exam_image_urls(client, page)[0]
    with statements() as sent:
        assert client.get(url).status_code == 200
    assert len(sent) >= 2, "\n".join(sent)  # the session, the image (and its access)


def test_a_full_memory_remembers_the_new_grant_not_an_old_one(monkeypatch):
    """Pruning a full memory must not mix the grants up: the grant made is the one kept and
    returned, for that user and image only."""
    image_grants.forget_all()
    now = [100.0]
    monkeypatch.setattr(image_grants, "_clock", lambda: now[0])
    monkeypatch.setattr(image_grants, "_MAX_ENTRIES", 3)
    for image_id in (1, 2, 3):
        image_grants.remember(7, image_id, f"old-{image_id}", f"etag-{image_id}", 1, 5)
    now[0] += 10  # all three expired: the next grant prunes them
    made = image_grants.remember(8, 99, "new-key", "new-etag", 4, 5)
    try:
        assert made.storage_key == "new-key"
        kept = image_grants.remembered(8, 99)
        assert kept is not None and (kept.storage_key, kept.etag, kept.version) == (
            "new-key", "new-etag", 4)
        assert image_grants.remembered(7, 3) is None
    finally:
        image_grants.forget_all()
