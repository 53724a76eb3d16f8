"""One autosave of an exam attempt, through the real route, costs a fixed handful of SQL
statements: at 1,000 trainees saving every 15 seconds the database sees ~67 saves a second,
so every statement of a save counts."""

from __future__ import annotations

import re
from datetime import timedelta

from freezegun import freeze_time
from sqlalchemy import select

from app.auth.roles import Role
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer
from tests.conftest import csrf_token, login
from tests.test_attempts import cases, exam, exam_cases, post_start  # noqa: F401 (fixtures)
from tests.test_scoring_path import statements

# The user and session row, the attempt (locked), the stored answer, the case's images to
# check marks against, and the write: revision checked in the UPDATE itself.
MAX_STATEMENTS = 6


def _open_exam(client, exam, make_user):  # noqa: F811 (fixture)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username="reader")
    login(client, trainee.username)
    started = post_start(client, exam)
    page = started.headers["Location"]
    html = client.get(page).get_data(as_text=True)
    url = re.search(r'data-save-url="([^"]+)"', html).group(1)
    attempt = db.session.scalars(select(Attempt)).one()
    return attempt.id, url, csrf_token(client, page)


def _save(client, url, token, revision, overall="abnormal"):
    return client.post(url, json={"answers": {"overall": overall}, "marks": [],
                                  "revision": revision},
                       headers={"X-CSRFToken": token})


def test_an_autosave_costs_at_most_six_statements(client, exam, make_user):  # noqa: F811
    attempt_id, url, token = _open_exam(client, exam, make_user)
    counts = []
    for revision in range(3):  # the first save inserts the answer; later ones update it
        with statements() as sent:
            saved = _save(client, url, token, revision)
        assert saved.status_code == 200, saved.get_data(as_text=True)
        assert saved.get_json()["revision"] == revision + 1
        counts.append(len(sent))
        assert len(sent) <= MAX_STATEMENTS, "\n".join(sent)
    db.session.expire_all()
    stored = db.session.scalars(select(AttemptAnswer).where(
        AttemptAnswer.attempt_id == attempt_id)).one()
    assert (stored.revision, stored.answers) == (3, {"overall": "abnormal"})


def test_an_autosave_that_also_refreshes_the_session_stays_within_the_count(
        client, exam, make_user):  # noqa: F811
    """Past the minute between refreshes of the session's last activity, the save writes it
    too, still within the count."""
    _, url, token = _open_exam(client, exam, make_user)
    assert _save(client, url, token, 0).status_code == 200
    with freeze_time(utcnow() + timedelta(minutes=2)), statements() as sent:
        saved = _save(client, url, token, 1)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert any(s.startswith("UPDATE user_session") for s in sent), "\n".join(sent)
    assert len(sent) <= MAX_STATEMENTS, "\n".join(sent)


def test_a_stale_autosave_is_refused_within_the_count(client, exam, make_user):  # noqa: F811
    _, url, token = _open_exam(client, exam, make_user)
    assert _save(client, url, token, 0).status_code == 200
    assert _save(client, url, token, 1, "normal").status_code == 200
    with statements() as sent:
        stale = _save(client, url, token, 1)
    assert stale.status_code == 409 and stale.get_json()["reason"] == "stale"
    assert stale.get_json()["answers"] == {"overall": "normal"}
    assert len(sent) <= MAX_STATEMENTS, "\n".join(sent)
