"""Every request a trainee's browser makes during an exam, through the real routes, costs a
fixed handful of SQL statements whatever the number of cases: at 1,000 trainees the two
workers serve ~90 requests a second, and each statement is CPU in the worker (the driver's
round trip) as well as in the database."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from tests.conftest import csrf_token, login
from tests.test_attempts import (  # noqa: F401 (fixtures)
    cases,
    exam,
    exam_cases,
    post_start,
    published_tb_case,
)
from tests.test_scoring_path import statements

# The session row with its user and roles, the attempt with its exercise, its stored
# answers, and the attempt's cases with their images, tags and reference reads (loaded once
# to tell answered tiles; the viewed case, the next one and their images come from those).
CASE_PAGE_MAX = 7
# The session row with its user and roles, and the image with its case and the
# attempt that grants it.
IMAGE_MAX = 3
# The session row with its user and roles, the attempt with its exercise, the write.
OPENED_MAX = 3


def _open_exam(client, exercise, make_user, username="reader"):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username=username)
    login(client, trainee.username)
    started = post_start(client, exercise)
    page = started.headers["Location"]
    attempt = db.session.scalars(select(Attempt).where(Attempt.user_id == trainee.id)).one()
    return attempt, page


def _viewer_data(html: str) -> dict:
    return json.loads(re.search(
        r'<script type="application/json" id="viewer-data">(.*?)</script>', html, re.S
    ).group(1))


@pytest.fixture
def long_exam(cases, exam_cases):  # noqa: F811 (fixtures)
    """An exam of seven cases: the three of ``exam`` and four more."""
    from app.auth.models import User

    trainer = db.session.scalars(select(User).where(User.username == "expert")).one()
    more = [published_tb_case(trainer, seed) for seed in (320, 321, 322, 323)]
    db.session.commit()
    return create_exercise(title="Long exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in [*exam_cases, *more]], actor=None,
                           time_limit_minutes=30)


def _case_page_statements(client, page: str) -> int:
    client.get(page)  # the first visit may refresh the session's last activity
    with statements() as sent:
        shown = client.get(page)
    assert shown.status_code == 200, shown.get_data(as_text=True)[:500]
    return len(sent)


def test_a_case_page_costs_the_same_few_statements_whatever_the_number_of_cases(
        client, exam, long_exam, make_user):  # noqa: F811
    _, page = _open_exam(client, exam, make_user)
    short = _case_page_statements(client, page)
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, page)})
    _, long_page = _open_exam(client, long_exam, make_user, username="reader2")
    long = _case_page_statements(client, long_page)
    assert short <= CASE_PAGE_MAX, short
    assert long == short, (short, long)


def test_an_image_of_the_attempts_case_costs_few_statements(client, exam, make_user):  # noqa: F811
    """Its own case's images and the next case's (the prefetch), an exam-bank case among
    them (seen only through the open attempt)."""
    _, page = _open_exam(client, exam, make_user)
    urls = []
    for position in (1, 2):
        payload = _viewer_data(client.get(page[:-1] + str(position)).get_data(as_text=True))
        urls += [payload["images"][0]["preview_url"], *payload["prefetch"]]
    for url in urls:
        with statements() as sent:
            answer = client.get(url)
        assert answer.status_code == 200, url
        assert len(sent) <= IMAGE_MAX, "\n".join(sent)


def test_opened_costs_few_statements(client, exam, make_user):  # noqa: F811
    _, page = _open_exam(client, exam, make_user)
    client.get(page)
    token = csrf_token(client, page)
    with statements() as sent:
        answer = client.post(page + "/opened", headers={"X-CSRFToken": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert len(sent) <= OPENED_MAX, "\n".join(sent)
    # The next case: the reading time goes to the one before (its answer, read and written).
    with statements() as sent:
        answer = client.post(page[:-1] + "2/opened", headers={"X-CSRFToken": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert len(sent) <= OPENED_MAX + 2, "\n".join(sent)


def test_the_portals_own_static_files_cost_no_statement(client, exam, make_user):  # noqa: F811
    """A signed-in browser's stylesheets and scripts: public files, no user needed."""
    _, page = _open_exam(client, exam, make_user)
    html = client.get(page).get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="(/[^"]*static/[^"]+)"', html)
    assert any(a.startswith("/viewer/static/") for a in assets), assets
    assert any(a.startswith("/static/") for a in assets), assets
    for url in assets:
        with statements() as sent:
            answer = client.get(url)
        assert answer.status_code == 200, url
        assert sent == [], (url, sent)
        answer.close()


def test_a_static_file_is_gzipped_once_per_version(client, monkeypatch):
    """The HTJ2K decoder and the scripts go compressed, but are compressed once, not on each
    of a thousand trainees' downloads; a revalidation of the compressed file is a 304."""
    import gzip

    from app import static_cache

    calls = []
    real = gzip.compress

    def counting(data, *args, **kwargs):
        calls.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(static_cache.gzip, "compress", counting)
    url = "/static/js/attempt.js"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    original = plain.get_data()
    plain.close()
    bodies = []
    for _ in range(3):
        sent = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
        assert sent.status_code == 200
        assert sent.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in sent.headers["Vary"]
        bodies.append(sent.get_data())
        etag = sent.headers["ETag"]
    assert len(calls) == 1, calls
    assert all(gzip.decompress(body) == original for body in bodies)
    again = client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304
