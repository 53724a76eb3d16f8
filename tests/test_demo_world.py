"""`cxr-academy demo` shows every role's job on its first run: peers with ended, scored
attempts (peer percentile, the lead's dashboard, case statistics, certificates, one of them
expiring), the radiographers' image-quality practice set, TB likelihoods for ROC, a case
with its prior and one held for pixel review; and seeding again changes nothing."""

from __future__ import annotations

import random
import re
from datetime import timedelta

from babel.dates import format_date
from sqlalchemy import func, select

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseImage, CaseStatus, ReferenceRead
from app.cases.reads import reference_for
from app.certification.models import Certificate, Programme
from app.db_types import utcnow
from app.demo import (
    DEMO_EXAM,
    DEMO_PRACTICE,
    DEMO_PROGRAMME,
    DEMO_QUALITY_PRACTICE,
    seed_demo,
    seed_demo_library,
)
from app.demo_peers import PEERS, Peer, seed_demo_peers, take
from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt, Exercise
from tests.conftest import login, sign_out
from tests.forms import submit_form


def _counts() -> dict[str, int]:
    tables = {"users": User.id, "attempts": Attempt.id, "certificates": Certificate.id,
              "cases": Case.id, "images": CaseImage.id, "reads": ReferenceRead.id,
              "exercises": Exercise.id, "programmes": Programme.id}
    return {name: db.session.scalar(select(func.count(column))) for name, column in
            tables.items()}


def _exercise(title: str) -> Exercise:
    return db.session.scalars(select(Exercise).where(Exercise.title == title)).one()


def _user(username: str) -> User:
    return db.session.scalars(select(User).where(User.username == username)).one()


def seed_everything() -> dict[str, str]:
    passwords = {a.username: a.password for a in seed_demo()}
    seed_demo_library()
    assert seed_demo_peers() == len(PEERS)
    return passwords


def test_the_demo_shows_every_roles_job_and_seeding_again_changes_nothing(app, client):
    passwords = seed_everything()
    practice, exam = _exercise(DEMO_PRACTICE), _exercise(DEMO_EXAM)
    quality = _exercise(DEMO_QUALITY_PRACTICE)

    # Peers: radiologists and radiographers across the lead's countries, no password.
    peers = [_user(p.username) for p in PEERS]
    assert all(u.password_hash is None for u in peers)
    assert {u.clinic.country_code for u in peers} == {"KE", "PH", "BD"}
    radiologists = [u for u in peers if u.has_role(Role.TRAINEE_RADIOLOGIST)]
    radiographers = [u for u in peers if u.has_role(Role.TRAINEE_RADIOGRAPHER)]
    assert len(radiologists) >= 6 and len(radiographers) >= 5

    # Their attempts ended and were scored by the portal's scoring, with varied results.
    ended = db.session.scalars(select(Attempt).where(
        Attempt.user_id.in_([u.id for u in peers]))).all()
    assert ended and all(a.state in ENDED_STATES for a in ended)
    exam_metrics = [a.metrics["metrics"] for a in ended if a.exercise_id == exam.id]
    assert len(exam_metrics) >= len(radiologists)
    assert len({m["accuracy"] for m in exam_metrics}) >= 3
    assert {a.passed for a in ended if a.exercise_id == exam.id} == {True, False}
    # TB likelihoods in the reads make ROC and AFROC real.
    assert all(m["auc"] is not None and m["afroc"] is not None for m in exam_metrics)
    quality_attempts = [a for a in ended if a.exercise_id == quality.id]
    assert len(quality_attempts) == len(radiographers)
    assert all(a.metrics["metrics"]["quality_agreement"] is not None for a in quality_attempts)

    # The demo cases carry image-quality reference reads beside their DS-3030 reads.
    for link in quality.cases:
        assert reference_for(link.case, scheme_key="image_quality").scheme.key == "image_quality"
        assert reference_for(link.case).scheme.key == "ds3030"
        assert reference_for(link.case).answers["tb_likelihood"] in range(1, 6)
    grades = {reference_for(link.case, scheme_key="image_quality").answers["grade"]
              for link in quality.cases}
    assert grades >= {"1", "3"}

    # A follow-up case with its prior, in the practice set.
    [with_prior] = [link.case for link in practice.cases
                    if any(image.is_prior for image in link.case.images)]
    assert [image.is_prior for image in with_prior.images] == [False, True]
    # A case held for pixel review.
    held = db.session.scalars(select(Case).where(Case.status == CaseStatus.IN_REVIEW.value)).all()
    assert [(c.pixel_review_needed, c.pixel_reviewed_at) for c in held] == [(True, None)]

    # Certificates: one expiring within the reminder window, in the lead's countries.
    certificates = db.session.scalars(select(Certificate)).all()
    now = utcnow()
    expiring = [c for c in certificates if now < c.expires_at <= now + timedelta(days=90)]
    assert [c.user.username for c in expiring] == ["peer-ke-kiprono"]
    assert sum(1 for c in certificates if c.expires_at > now + timedelta(days=90)) >= 2

    # The demo radiologist's practice result shows her place among her peers and the ROC.
    login(client, "demo-radiologist", passwords["demo-radiologist"])
    assert DEMO_QUALITY_PRACTICE not in client.get("/training/").get_data(as_text=True)
    [mine] = db.session.scalars(select(Attempt).where(
        Attempt.user_id == _user("demo-radiologist").id)).all()
    result = client.get(f"/training/attempts/{mine.id}/result").get_data(as_text=True)
    assert re.search(r'data-testid="percentile">.*your accuracy is higher than \d+ % of \d+ '
                     r"other trainees", result)
    assert mine.metrics["metrics"]["auc"] is not None
    roc = client.get(f"/training/attempts/{mine.id}/roc.png")
    assert roc.status_code == 200 and roc.mimetype == "image/png"
    # Trainees have no Viewer menu item: their cases open in the viewer from exercises.
    assert 'href="/viewer/"' not in client.get("/training/").get_data(as_text=True)
    sign_out(client)

    # The radiographer starts the image-quality practice set from her training list.
    login(client, "demo-radiographer", passwords["demo-radiographer"])
    training = client.get("/training/").get_data(as_text=True)
    assert DEMO_QUALITY_PRACTICE in training
    assert DEMO_PRACTICE not in training and DEMO_EXAM not in training  # radiologists' sets
    started = submit_form(client, "/training/", action=f"/training/exercises/{quality.id}/start")
    assert started.status_code == 302
    attempt_page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Inclusion: both apices" in attempt_page
    sign_out(client)

    # The lead's dashboard: several readers, the expiring certificate among them.
    login(client, "demo-lead", passwords["demo-lead"])
    programme = db.session.scalars(select(Programme).where(
        Programme.title == DEMO_PROGRAMME)).one()
    dashboard = client.get(f"/certification/programmes/{programme.id}").get_data(as_text=True)
    table = dashboard.split('data-testid="readers-table"')[1]
    assert table.count("<tr><td><a href=") >= 8
    row = next(r for r in table.split("<tr>") if "Dr Daniel Kiprono" in r)
    assert "expiring within 90 days" in row
    assert "expired" in next(r for r in table.split("<tr>") if "Dr Kamal Hossain" in r)
    assert "expiring within 90 days" in client.get(
        f"/certification/programmes/{programme.id}?status=expiring").get_data(as_text=True)
    sign_out(client, "/certification/")

    # The trainer: case statistics from the peers' first attempts; the viewer's case list.
    login(client, "demo-trainer", passwords["demo-trainer"])
    statistics = client.get(f"/training/manage/{exam.id}/statistics").get_data(as_text=True)
    assert re.search(r"\d+ ended attempts by (\d+) trainees", statistics)
    assert int(re.search(r"ended attempts by (\d+) trainees", statistics)[1]) >= 6
    viewer = client.get("/viewer/").get_data(as_text=True)
    assert f'href="/viewer/cases/{with_prior.id}"' in viewer and "(with prior)" in viewer
    assert held[0].title in client.get("/cases/?review=1").get_data(as_text=True)
    sign_out(client)

    # Seeding again (the command on an existing install) changes nothing.
    before = _counts()
    seed_demo()
    seed_demo_library()
    assert seed_demo_peers() == 0
    assert _counts() == before

    # A certificate earned today: the lead sees when and how to renew it, nothing overdue.
    trainee = _user("demo-radiologist")
    perfect = Peer("demo-radiologist", "", Role.TRAINEE_RADIOLOGIST, "", 1.0, 1.0, 0)
    passed = take(exam, trainee, perfect, utcnow() - timedelta(minutes=25),
                  random.Random(1))
    assert passed is not None and passed.passed
    [earned] = db.session.scalars(select(Certificate).where(
        Certificate.user_id == trainee.id)).all()
    login(client, "demo-lead", passwords["demo-lead"])
    history = client.get(f"/certification/readers/{trainee.id}").get_data(as_text=True)
    steps = re.findall(r'<li data-testid="reader-step">(.*?)</li>', history, re.S)
    renewal = " ".join(next(s for s in steps if "To renew" in s).split())
    window = (earned.expires_at - timedelta(days=programme.renewal_window_days))
    # Days as the lead's language writes them, in the lead's time zone (a day either side
    # of the UTC date).
    found = re.search(r"between (.+) and (.+), when the certificate expires$", renewal)
    assert found, renewal

    def days_around(moment):
        return {format_date(moment.date() + timedelta(days=d), "medium", locale="en")
                for d in (-1, 0, 1)}
    assert found.group(1) in days_around(window), renewal
    assert found.group(2) in days_around(earned.expires_at), renewal
    assert "done" not in renewal and "due by" not in renewal
    # Figures in the units of the results page: percentages.
    attempts = history.split('data-testid="reader-attempts"')[1]
    assert re.search(r"<td>\d+ %</td>", attempts)
    assert not re.search(r"<td>[01]\.\d\d</td><td>[01]\.\d\d</td>", attempts)
