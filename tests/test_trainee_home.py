"""The trainee's home page: programmes and progress, certificates with expiry dates, open
attempts to resume and latest results, with plain empty states."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from app.auth.roles import Role
from app.certification.services import create_programme
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.services import start_attempt
from tests.conftest import login
from tests.test_results_page import (
    NORMAL_READ,
    TB_READ,
    likelihood_case,
    take,
    visible_text,
)


@pytest.fixture
def trainer(app, make_user):
    return make_user(Role.TRAINER, username="expert")


def test_a_new_trainee_lands_on_home_with_plain_empty_states(client, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Amina Otieno")
    response = login(client, trainee.username)
    assert response.headers["Location"] == "/home"
    text = visible_text(client.get("/home").get_data(as_text=True))
    assert "Welcome, Dr Amina Otieno" in text
    assert "You have no exercise in progress." in text
    assert "No certification programme is open to you yet." in text
    assert "You hold no certificate yet." in text
    assert "You have no results yet." in text


@pytest.mark.parametrize("role", [Role.TRAINER, Role.PROGRAMME_LEAD, Role.ADMIN])
def test_home_is_for_trainees(client, login_as, role):
    login_as(role)
    response = client.get("/home")
    assert response.status_code == 403
    assert "This page is only for:" in response.get_data(as_text=True)


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/home")
    assert response.status_code == 302 and response.headers["Location"].startswith(
        "/auth/login")


def test_home_shows_progress_certificates_open_attempts_and_results(client, trainer,
                                                                     login_as):
    cases = [likelihood_case(trainer, 800 + n, tb=n in (0, 2)) for n in range(5)]
    practice = create_exercise(title="TB practice", kind="practice",
                               scheme_key="tb_screening", case_ids=[cases[0].id, cases[1].id],
                               actor=None)
    second = create_exercise(title="More practice", kind="practice",
                             scheme_key="tb_screening",
                             case_ids=[cases[0].id, cases[1].id, cases[4].id], actor=None)
    exam = create_exercise(title="TB exam", kind="exam", scheme_key="tb_screening",
                           case_ids=[cases[2].id, cases[3].id], actor=None,
                           criteria=[("sensitivity", 0.9)])
    create_programme(title="TB reader",
                     requirements=[(practice.id, "practice"), (exam.id, "exam")],
                     eligible_roles=["trainee_radiologist"], validity_days=365)
    create_programme(title="Advanced reader",
                     requirements=[(practice.id, "practice"), (second.id, "practice"),
                                   (exam.id, "exam")],
                     eligible_roles=["trainee_radiologist"])
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    before = visible_text(client.get("/home").get_data(as_text=True))
    assert "0 of 2 requirements met" in before and "0 of 3 requirements met" in before

    take(practice, user, [TB_READ, NORMAL_READ])
    done = take(exam, user, [TB_READ, NORMAL_READ])  # meets "TB reader": certified
    open_attempt = start_attempt(second, user)
    save_answer(open_attempt, user, open_attempt.case_order[0], TB_READ, [])
    db.session.commit()

    html = client.get("/home").get_data(as_text=True)
    text = visible_text(html)
    # The day as English writes it, in the clinic's time zone (Nairobi).
    expiry = format_date((utcnow() + timedelta(days=365)).astimezone(ZoneInfo("Africa/Nairobi")),
                         "medium", locale="en")
    assert f"Certified until {expiry}" in text  # the programme met
    assert "2 of 3 requirements met" in text  # the other programme
    assert expiry in text.split("Your certificates")[1]
    assert "Valid, 364 days left" in text or "Valid, 365 days left" in text
    # Resume at the first case without a saved read.
    assert f'href="/training/attempts/{open_attempt.id}/2"' in html
    assert "Resume “More practice”" in text and "1 of 3 cases read" in text
    assert f'href="/training/attempts/{done.id}/result"' in html
    assert "“TB exam”, attempt 1" in text and "accuracy 100 % · passed" in text
    recent = text.split("Your latest results")[1]
    assert recent.index("“TB exam”") < recent.index("“TB practice”")  # newest first


def test_a_hidden_score_stays_hidden_on_home(client, trainer, login_as):
    cases = [likelihood_case(trainer, 820 + n, tb=n == 0) for n in range(2)]
    exam = create_exercise(title="Closed-review exam", kind="exam",
                           scheme_key="tb_screening", case_ids=[c.id for c in cases],
                           actor=None, closes_at=utcnow() + timedelta(days=30),
                           review={"score": "after_close"})
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    take(exam, user, [TB_READ, NORMAL_READ])
    text = visible_text(client.get("/home").get_data(as_text=True))
    assert "“Closed-review exam”, attempt 1" in text and "score shown later" in text
    assert "accuracy" not in text and "passed" not in text
