"""Exercises and attempts: one open attempt, autosave, server time, submission, and the
answer key never leaving the server during an attempt."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.services import (
    AttemptError,
    expire_overdue_attempts,
    open_case,
    start_attempt,
    submit_attempt,
    view_case,
)
from app.schemes.registry import get_scheme
from tests.conftest import csrf_token, login
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import FormNotFound, submit_form, submit_html

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TEACHING = "Thick-walled cavity in the right apex: active TB until proven otherwise"


def published_tb_case(trainer, seed: int) -> Case:
    """A published case with a TB reference read (one cavity outlined) and teaching notes."""
    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    [result] = import_files([Source("x.dcm", lambda d=data: d)], actor=trainer,
                            options=ImportOptions()).results
    case = db.session.get(Case, result.case_id)
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "abnormal", "findings": ["cavitary_lesion"]},
              marks=[{"image_id": case.images[0].id, "finding": "cavitary_lesion",
                      "shape": "ellipse",
                      "geometry": {"cx": 31.7, "cy": 17.3, "rx": 4.1, "ry": 3.9}}])
    case.teaching_notes = TEACHING
    case.status = CaseStatus.PUBLISHED.value
    return case


@pytest.fixture
def cases(app, make_user) -> list[Case]:
    trainer = make_user(Role.TRAINER, username="expert")
    made = [published_tb_case(trainer, 300 + seed) for seed in range(3)]
    made[2].exam_bank = True
    db.session.commit()
    return made


@pytest.fixture
def practice(cases):
    return create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                           case_ids=[c.id for c in cases[:2]], actor=None)


@pytest.fixture
def exam(cases, exam_cases):
    return create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in exam_cases], actor=None, time_limit_minutes=10,
                           max_attempts=2, cooldown_hours=24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"case_ids": []}, "at least one case"),
        ({"case_ids": [99999]}, "not a published case"),
        ({"kind": "quiz"}, "unknown exercise kind"),
        ({"scheme_key": "nope"}, "no reporting scheme"),
        ({"title": " "}, "needs a title"),
        ({"time_limit_minutes": 0}, "positive number of minutes"),
    ],
)
def test_bad_exercises_are_refused(cases, kwargs, message):
    args = {"title": "T", "kind": "practice", "scheme_key": "ds3030",
            "case_ids": [cases[0].id], "actor": None, **kwargs}
    with pytest.raises(AttemptError, match=message):
        create_exercise(**args)


def test_exam_bank_cases_only_in_exams(cases):
    with pytest.raises(AttemptError, match="exam bank"):
        create_exercise(title="P", kind="practice", scheme_key="ds3030",
                        case_ids=[cases[2].id], actor=None)


def test_starting_twice_returns_the_same_attempt_and_the_database_refuses_two(
        practice, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    first = start_attempt(practice, trainee)
    assert start_attempt(practice, trainee).id == first.id
    db.session.add(Attempt(exercise=practice, user=trainee, state="in_progress", number=9,
                           case_order=[1]))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_autosave_reading_time_and_submission(practice, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    with freeze_time(T0):
        attempt = start_attempt(practice, trainee)
        case, _ = view_case(attempt, trainee, 0)
        open_case(attempt, trainee, case.id)  # posted by the page once it has loaded
    with freeze_time(T0 + timedelta(seconds=40)):
        answer = save_answer(attempt, trainee, case.id, {"overall": "abnormal"}, [])
    assert answer.revision == 1 and answer.seconds == pytest.approx(40)
    with freeze_time(T0 + timedelta(minutes=30)):  # away for a long time: capped
        answer = save_answer(attempt, trainee, case.id, {"overall": "normal"}, [])
    assert answer.revision == 2 and answer.seconds == pytest.approx(40 + 300)
    with pytest.raises(AttemptError, match="not one of the options"):
        save_answer(attempt, trainee, case.id, {"overall": "maybe"}, [])
    with pytest.raises(AttemptError, match="must name one of this case's images"):
        save_answer(attempt, trainee, case.id, {}, [{"image_id": 12345, "finding": "nodule",
                                                      "shape": "point",
                                                      "geometry": {"x": 1, "y": 1}}])
    other = make_user(Role.TRAINEE_RADIOLOGIST)
    with pytest.raises(AttemptError, match="not your attempt"):
        save_answer(attempt, other, case.id, {}, [])
    with freeze_time(T0 + timedelta(minutes=31)):
        submitted = submit_attempt(attempt, trainee)
        assert submit_attempt(attempt, trainee) is submitted  # idempotent
    assert submitted.state == AttemptState.SUBMITTED.value
    with pytest.raises(AttemptError, match="has ended"):
        save_answer(attempt, trainee, case.id, {}, [])


def test_exam_times_out_by_server_time_even_without_the_trainee(app, exam, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    with freeze_time(T0):
        attempt = start_attempt(exam, trainee)
    assert attempt.deadline_at == T0 + timedelta(minutes=10)
    with freeze_time(T0 + timedelta(minutes=11)):
        result = app.test_cli_runner().invoke(args=["quizzes", "expire"])
        assert "1 attempts timed out" in result.output
    db.session.expire_all()
    attempt = db.session.get(Attempt, attempt.id)
    assert attempt.state == AttemptState.TIMED_OUT.value
    assert attempt.ended_at == T0 + timedelta(minutes=10)
    with freeze_time(T0 + timedelta(hours=2)), pytest.raises(AttemptError, match="cool-down"):
        start_attempt(exam, trainee)
    with freeze_time(T0 + timedelta(hours=25)):
        second = start_attempt(exam, trainee)
        submit_attempt(second, trainee)
    with freeze_time(T0 + timedelta(hours=50)), pytest.raises(AttemptError, match="all 2"):
        start_attempt(exam, trainee)
    with freeze_time(T0 + timedelta(hours=50)):
        assert expire_overdue_attempts() == 0


def test_autosave_endpoint_acknowledges_and_refuses_bad_input(app, client, practice, login_as):
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    response = post_start(client, practice)
    assert response.status_code == 302
    attempt = db.session.scalars(select(Attempt)).one()
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    token = csrf_token(client, response.headers["Location"])
    url = save_url(attempt.id, 1)
    ok = client.post(url, json={"answers": {"overall": "normal"}, "marks": []},
                     headers={"X-CSRFToken": token})
    assert ok.status_code == 200 and ok.get_json()["revision"] == 1
    bad = client.post(url, json={"answers": {"overall": 3}}, headers={"X-CSRFToken": token})
    assert bad.status_code == 400 and "not one of the options" in bad.get_json()["message"]
    not_json = client.post(url, data="x", headers={"X-CSRFToken": token,
                                                   "Content-Type": "application/json"})
    assert not_json.status_code == 400
    no_csrf = client.post(url, json={"answers": {}})
    assert no_csrf.status_code == 400
    for position in (0, 3, 99999):  # the attempt has two cases
        wrong_case = client.post(save_url(attempt.id, position), json={},
                                 headers={"X-CSRFToken": token})
        assert wrong_case.status_code == 404
    assert trainee.id == attempt.user_id


def post_start(client, exercise):
    """Press Start (or Resume) beside the exercise on the trainee's list."""
    return submit_form(client, "/training/", action=f"/exercises/{exercise.id}/start")


def save_url(attempt_id: int, position: int) -> str:
    """Where the case page at ``position`` autosaves (its data-save-url)."""
    return f"/training/attempts/{attempt_id}/{position}/answer"


def press_submit(client, attempt_id: int, position: int = 1):
    """Press "Submit all answers" on a case page of the attempt, then "Submit and finish" on
    the summary it leads to."""
    summary = submit_form(client, f"/training/attempts/{attempt_id}/{position}",
                          button="Submit all answers")
    assert summary.status_code == 200, summary.status_code
    return submit_html(client, summary.get_data(as_text=True),
                       f"/training/attempts/{attempt_id}/summary", button="Submit and finish")


def test_exam_bank_images_only_during_an_open_attempt(app, client, exam, login_as, cases):
    login_as(Role.TRAINEE_RADIOLOGIST)
    bank_image = cases[2].images[0]
    url = f"/cases/images/{bank_image.id}/preview?v=1"
    assert client.get(url).status_code == 404
    post_start(client, exam)
    assert client.get(url).status_code == 200
    attempt = db.session.scalars(select(Attempt)).one()
    assert press_submit(client, attempt.id).status_code == 302
    assert client.get(url).status_code == 404


def test_the_answer_key_never_leaves_the_server_during_an_attempt(app, client, exam, login_as,
                                                                cases):
    """Record every response of a whole attempt and look for the reference read in them."""
    login_as(Role.TRAINEE_RADIOLOGIST)
    bodies: list[bytes] = []
    images: list[bytes] = []

    def get(url):
        response = client.get(url)
        bodies.append(response.data)
        return response

    bodies.append(get("/training/").data)
    started = post_start(client, exam)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, started.headers["Location"])
    for position in range(1, len(attempt.case_order) + 1):
        page = get(f"/training/attempts/{attempt.id}/{position}")
        assert page.status_code == 200
        case = db.session.get(Case, attempt.case_order[position - 1])
        for image in case.images:
            for kind in ("thumbnail", "preview", "display", "approx", "exact"):
                pixels = client.get(f"/cases/images/{image.id}/{kind}?v=1")
                assert pixels.status_code == 200
                images.append(pixels.data)
        saved = client.post(save_url(attempt.id, position),
                            json={"answers": {"overall": "normal"}, "marks": []},
                            headers={"X-CSRFToken": token})
        bodies.append(saved.data)
        assert get(f"/viewer/api/cases/{case.id}").status_code == 200
    everything = b"\n".join(bodies)
    for secret in (TEACHING, "reference_marks", '"findings": ["cavitary_lesion"]',
                   "ReferenceRead", "reference_tb_positive"):
        assert secret.encode() not in everything + b"\n".join(images), secret
    # The reference mark's coordinates, as numbers in the text (image bytes are pixels, where
    # any short byte run turns up by chance).
    for coordinate in ("31.7", "17.3"):
        assert not re.search(rb"(?<![\w.-])" + re.escape(coordinate.encode()) + rb"(?!\d)",
                             everything), coordinate


def _take(client, exercise, answers):
    started = post_start(client, exercise)
    attempt_id = int(started.headers["Location"].split("/attempts/")[1].split("/")[0])
    attempt = db.session.get(Attempt, attempt_id)
    token = csrf_token(client, started.headers["Location"])
    for position in range(1, len(attempt.case_order) + 1):
        response = client.post(save_url(attempt.id, position),
                               json={"answers": answers, "marks": []},
                               headers={"X-CSRFToken": token})
        assert response.status_code == 200
    assert press_submit(client, attempt.id).status_code == 302
    return client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)


def test_practice_result_shows_scores_and_case_feedback(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, practice, {"overall": "abnormal", "findings": ["cavitary_lesion"]})
    assert 'data-testid="scores"' in page
    assert "Sensitivity (TB-suggestive)" in page and "100 %" in page
    assert page.count('data-testid="case-feedback"') == 2
    assert "grade 1" in page
    assert TEACHING in page  # after submission, a practice set teaches
    assert "0 of 1 reference lesions found" in page
    assert "Positive predictive value" in page and "Negative predictive value" in page
    # The per-finding table names findings by the scheme's labels, never by their keys.
    assert "Per finding" in page and "<td>Cavitary lesion</td>" in page
    assert "cavitary_lesion" not in page


def test_missed_tb_is_a_major_significant_discrepancy(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, practice, {"overall": "normal"})
    assert "grade 3b" in page
    assert "abnormal image read as normal" in page


def test_exam_result_shows_scores_but_not_the_reference(client, exam, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, exam, {"overall": "normal"})
    assert 'data-testid="scores"' in page
    assert TEACHING not in page
    assert 'data-testid="case-feedback"' not in page


def test_trainer_creates_an_exam_with_pass_criteria(client, cases, login_as):
    def create(**fields):
        return submit_form(client, "/training/manage", button="Create exercise", fields=fields)

    login_as(Role.TRAINER)
    assert client.get("/training/manage").status_code == 200
    response = create(
        title="Certification exam", kind="exam", scheme="ds3030",
        cases=[str(c.id) for c in cases], time_limit="30", max_attempts="2",
        cooldown_hours="48", min_sensitivity="90", min_specificity="80",
        shuffle=True)
    assert response.status_code == 302
    from app.quizzes.models import Exercise

    exam = db.session.scalars(select(Exercise)).one()
    assert exam.criteria == [{"metric": "sensitivity", "minimum": 0.9},
                             {"metric": "specificity", "minimum": 0.8}]
    assert (exam.time_limit_minutes, exam.max_attempts, exam.cooldown_hours) == (30, 2, 48)
    bad = create(title="X", kind="exam", scheme="ds3030", min_kappa="7")
    assert bad.status_code == 400
    assert "Enter a kappa from 0 to 1." in bad.get_data(as_text=True)
    # Shares are entered in %, as the results show them.
    for wrong in ("107", "-1"):
        bad = create(title="X", kind="exam", scheme="ds3030", min_sensitivity=wrong,
                     cases=[str(cases[0].id)])
        assert bad.status_code == 400
        assert "Enter a percentage from 0 to 100." in bad.get_data(as_text=True)
    assert db.session.scalars(select(Exercise)).all() == [exam]
    none = create(title="X", kind="exam", scheme="ds3030")
    assert none.status_code == 400
    assert "Choose at least one case, or give a rule." in none.get_data(as_text=True)


def test_trainees_cannot_manage_exercises(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get("/training/manage").status_code == 403


def test_failed_criteria_are_listed_with_reasons(client, cases, login_as):
    exam = create_exercise(title="Graded", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None,
                           criteria=[("sensitivity", 0.9), ("specificity", 0.8)])
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, exam, {"overall": "normal"})
    assert "Not passed" in page
    # In the units of the score table (%), in words.
    assert "Sensitivity (TB-suggestive) 0 % is below the required 90 %." in page
    assert ("Specificity could not be computed, so it cannot pass. Not computed: every "
            "reference case is TB-suggestive.") in page


def test_attempt_page_prefetches_the_next_case_and_hides_the_reference(client, practice,
                                                                      login_as):
    import json
    import re

    login_as(Role.TRAINEE_RADIOLOGIST)
    started = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    html = client.get(started.headers["Location"]).get_data(as_text=True)
    payload = json.loads(re.search(
        r'<script type="application/json" id="viewer-data">(.*?)</script>', html, re.S).group(1))
    next_case = db.session.get(Case, attempt.case_order[1])
    expected = {f"/cases/images/{i.id}/{kind}?v={i.version}"
                for i in next_case.images
                for kind in ("preview", "display", "approx", "exact")}
    assert set(payload["prefetch"]) == expected
    assert payload["editable"] is True and payload["autosave"] is True
    assert payload["marks"] == [] and "reference_marks" not in payload
    last = client.get(f"/training/attempts/{attempt.id}/2").get_data(as_text=True)
    assert '"prefetch"' not in last


def test_review_shows_hit_missed_and_false_marks_only_after_submission(client, practice,
                                                                      login_as):
    import json
    import re

    login_as(Role.TRAINEE_RADIOLOGIST)
    started = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, started.headers["Location"])
    first, second = attempt.case_order
    assert client.get(f"/training/attempts/{attempt.id}/review/1").status_code == 403
    for position, case_id, mark in (
            (1, first, {"cx": 31.5, "cy": 17.5, "rx": 3, "ry": 3}),  # on the lesion
            (2, second, {"cx": 5, "cy": 5, "rx": 2, "ry": 2})):  # elsewhere
        image_id = db.session.get(Case, case_id).images[0].id
        client.post(save_url(attempt.id, position), headers={
            "X-CSRFToken": token}, json={"answers": {"overall": "abnormal"}, "marks": [
                {"image_id": image_id, "finding": "cavitary_lesion", "shape": "ellipse",
                 "geometry": mark}]})
    assert press_submit(client, attempt.id).status_code == 302

    def payload(position):
        html = client.get(f"/training/attempts/{attempt.id}/review/{position}").get_data(
            as_text=True)
        return json.loads(re.search(r'id="viewer-data">(.*?)</script>', html, re.S).group(1))

    one, two = payload(1), payload(2)
    assert one["review"] is True and one["editable"] is False
    assert [m["status"] for m in one["marks"]] == ["hit"]
    assert [m["status"] for m in one["reference_marks"]] == ["reference"]
    assert [m["status"] for m in two["marks"]] == ["false"]
    assert [m["status"] for m in two["reference_marks"]] == ["miss"]
    assert client.get(f"/training/attempts/{attempt.id}/review/9").status_code == 404


def test_exam_review_is_not_shown(client, exam, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    _take(client, exam, {"overall": "normal"})
    attempt = db.session.scalars(select(Attempt)).one()
    assert client.get(f"/training/attempts/{attempt.id}/review/1").status_code == 403


def test_scores_are_fixed_at_submission_and_rescored_on_demand(app, client, practice,
                                                              login_as, cases):
    login_as(Role.TRAINEE_RADIOLOGIST)
    _take(client, practice, {"overall": "normal"})
    attempt = db.session.scalars(select(Attempt)).one()
    assert attempt.metrics["metrics"]["specificity"] is None
    assert attempt.metrics["metrics"]["sensitivity"] == 0.0
    # The reference changes: every case becomes normal. Re-scoring follows it.
    for case in cases[:2]:
        save_read(case, author=None, scheme=get_scheme("ds3030"), answers={"overall": "normal"},
                  marks=[])
    from app.cases.models import ReferenceRead

    for read in db.session.scalars(select(ReferenceRead)):
        if read.author_id is not None:
            read.current = False
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["quizzes", "rescore"])
    assert "1 attempts re-scored" in result.output
    db.session.expire_all()
    rescored = db.session.get(Attempt, attempt.id)
    assert rescored.metrics["metrics"]["specificity"] == 1.0
    # The peer figures follow the new scores: the trainee's standing holds the new
    # accuracy, and the running counts equal a recount from the attempts.
    from app.quizzes.models import PeerAccuracy, PeerCaseCalls, PeerCaseShare, PeerStanding
    from app.quizzes.peers import rebuild_peer_calls
    from app.quizzes.standings import rebuild_standings

    standing = db.session.get(PeerStanding, (rescored.exercise_id, rescored.user_id))
    assert standing.accuracy == rescored.metrics["metrics"]["accuracy"] == rescored.accuracy

    def counts() -> list:
        return [sorted(tuple(row) for row in db.session.execute(select(*model.__table__.c)))
                for model in (PeerAccuracy, PeerCaseCalls, PeerCaseShare)]

    kept = counts()
    rebuild_standings()
    rebuild_peer_calls()
    assert [[r for r in rows if r[-1] != 0] for rows in counts()] == [
        [r for r in rows if r[-1] != 0] for rows in kept]


def test_result_figures_and_peer_percentile(app, client, practice, make_user, login_as):
    from app.quizzes.results import peer_percentile

    for n in range(5):
        peer = make_user(Role.TRAINEE_RADIOLOGIST)
        other = app.test_client()
        login(other, peer.username)
        tb_read = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
        _take(other, practice, {"overall": "normal"} if n % 2 else tb_read)
    me = login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, practice, {"overall": "abnormal", "findings": ["cavitary_lesion"]})
    assert 'data-testid="percentile"' in page and "of 5 other trainees" in page
    mine = db.session.scalars(select(Attempt).where(Attempt.user_id == me.id)).one()
    percentile, peers = peer_percentile(mine)
    assert peers == 5 and percentile == pytest.approx(100 * (2 + 0.5 * 3) / 5)
    # Three of the five others called each (TB) case TB-suggestive.
    assert page.count("60 % of 5 other readers called this case abnormal") == 2
    # DS-3030's TB likelihood is optional and nobody gave one: no ROC curve, and the page
    # says why in a sentence.
    assert 'data-testid="roc-figure"' not in page
    assert ("There is no ROC curve. ROC AUC needs TB likelihood ratings, and none was given "
            "in this attempt.") in page
    roc = client.get(f"/training/attempts/{mine.id}/roc.png")
    assert roc.status_code == 404 and "none was given" in roc.get_data(as_text=True)
    learning = client.get(f"/training/attempts/{mine.id}/learning.png")
    assert learning.status_code == 200 and learning.mimetype == "image/png"


def test_audience_limits_who_sees_and_starts_an_exercise(client, cases, make_clinic, make_user,
                                                         login_as):
    kenya = make_clinic("Nairobi site", "Nairobi", "KE")
    exercise = create_exercise(title="Radiographers in Kenya", kind="practice",
                               scheme_key="ds3030", case_ids=[cases[0].id], actor=None,
                               audience={"roles": ["trainee_radiographer"],
                                         "countries": ["ke"]})
    assert exercise.audience == {"roles": ["trainee_radiographer"], "clinic_ids": [],
                                 "countries": ["KE"]}
    outsider = make_user(Role.TRAINEE_RADIOGRAPHER, clinic=make_clinic("Lima", "Lima", "PE"))
    with pytest.raises(AttemptError, match="not assigned to you") as refused:
        start_attempt(exercise, outsider)
    assert refused.value.status == 403
    insider = login_as(Role.TRAINEE_RADIOGRAPHER, clinic=kenya)
    assert "Radiographers in Kenya" in client.get("/training/").get_data(as_text=True)
    assert start_attempt(exercise, insider).user_id == insider.id
    with pytest.raises(AttemptError, match="unknown role"):
        create_exercise(title="X", kind="practice", scheme_key="ds3030",
                        case_ids=[cases[0].id], actor=None, audience={"roles": ["king"]})


def test_abandoning_a_practice_attempt_but_not_an_exam(client, practice, exam, make_user):
    from app.quizzes.services import abandon_attempt

    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(practice, trainee)
    assert abandon_attempt(attempt, trainee).state == AttemptState.ABANDONED.value
    assert start_attempt(practice, trainee).number == 2
    exam_attempt = start_attempt(exam, trainee)
    with pytest.raises(AttemptError, match="cannot be abandoned"):
        abandon_attempt(exam_attempt, trainee)


def test_practice_gives_immediate_feedback_per_case_and_locks_it(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    started = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, started.headers["Location"])
    url = save_url(attempt.id, 1)
    client.post(url, json={"answers": {"overall": "normal"}}, headers={"X-CSRFToken": token})
    assert client.get(f"/training/attempts/{attempt.id}/review/1").status_code == 403
    checked = submit_form(client, f"/training/attempts/{attempt.id}/1",
                          button="Check my answer (final for this case)")
    assert checked.status_code == 302
    page = client.get(checked.headers["Location"]).get_data(as_text=True)
    assert "grade 3b" in page and TEACHING in page and "Reference read" in page
    # The answer is final once the feedback has been seen; other cases stay open.
    late = client.post(url, json={"answers": {"overall": "abnormal"}},
                       headers={"X-CSRFToken": token})
    assert late.status_code == 409 and "answer is final" in late.get_json()["message"]
    assert late.get_json()["ended"] is False  # the page stays; only this case is final
    revisit = client.get(f"/training/attempts/{attempt.id}/1").get_data(as_text=True)
    assert 'data-final="1"' in revisit and "fieldset class=\"plain\" disabled" in revisit
    assert client.get(f"/training/attempts/{attempt.id}/review/2").status_code == 403


def test_exams_give_no_feedback_during_the_attempt(client, exam, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    started = post_start(client, exam)
    attempt = db.session.scalars(select(Attempt)).one()
    with pytest.raises(FormNotFound):  # an exam page offers no "Check my answer"
        submit_form(client, started.headers["Location"],
                    button="Check my answer (final for this case)")
    token = csrf_token(client, started.headers["Location"])
    # Deliberately hand-built: the check an exam page does not offer, forged.
    response = client.post(f"/training/attempts/{attempt.id}/check/1",
                           data={"csrf_token": token})
    assert response.status_code == 403


def test_radiographer_image_quality_set_end_to_end(app, client, make_user, login_as):
    trainer = make_user(Role.TRAINER)
    data = to_bytes(cr_dataset(seed=900, rows=64, columns=48))
    [result] = import_files([Source("q.dcm", lambda: data)], actor=trainer,
                            options=ImportOptions()).results
    case = db.session.get(Case, result.case_id)
    good = {"pass": True, "reason": ""}
    reference = {key: good for key in ("inclusion", "rotation", "scapulae", "inspiration",
                                       "exposure", "collimation", "artefacts")}
    reference["rotation"] = {"pass": False, "reason": "rotated to the left"}
    save_read(case, author=trainer, scheme=get_scheme("image_quality"),
              answers={**reference, "grade": "2"})
    case.status = CaseStatus.PUBLISHED.value
    db.session.commit()
    exercise = create_exercise(title="Image quality", kind="practice",
                               scheme_key="image_quality", case_ids=[case.id], actor=None,
                               audience={"roles": ["trainee_radiographer"]})
    login_as(Role.TRAINEE_RADIOGRAPHER)
    page = client.get(post_start(client, exercise).headers["Location"]).get_data(as_text=True)
    assert "Rotation: spinous processes midway" in page and 'name="rotation.pass"' in page
    answers = {**{k: good for k in reference}, "grade": "2"}  # misses the rotation fault
    missing_reason = _take_existing(client, exercise, {**answers, "rotation": {"pass": False}})
    assert "give the reason it fails" in missing_reason
    result_page = _take_existing(client, exercise, answers, submit=True)
    assert "Image-quality criteria agreement" in result_page
    assert "86 %" in result_page  # 6 of 7 criteria agree
    # No sputum decision and no lesion marks in this reading form: no rows for them.
    assert "Sensitivity" not in result_page and "Lesion localisation" not in result_page
    assert "grade 2a" in result_page and "criterion &#39;Rotation&#39;" in result_page


def _take_existing(client, exercise, answers, submit=False):
    attempt = db.session.scalars(select(Attempt).where(Attempt.exercise_id == exercise.id)).one()
    token = csrf_token(client, f"/training/attempts/{attempt.id}/1")
    response = client.post(save_url(attempt.id, 1),
                           json={"answers": answers}, headers={"X-CSRFToken": token})
    if not submit:
        return response.get_json()["message"]
    assert press_submit(client, attempt.id).status_code == 302
    return client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)


def test_review_settings_decide_what_is_shown_and_when(client, cases, login_as):
    later = datetime.now(UTC) + timedelta(hours=1)
    exam = create_exercise(title="Graded later", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases[:2]], actor=None, closes_at=later,
                           review={"score": "after_close", "reference": "after_submit",
                                   "teaching_notes": "never"})
    assert exam.review == {"score": "after_close", "correctness": "never",
                           "reference": "after_submit", "teaching_notes": "never"}
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, exam, {"overall": "normal"})
    assert 'data-testid="scores-hidden"' in page and "after the exercise closes" in page
    assert 'data-testid="scores"' not in page
    assert "Reference read" in page and "grade 3b" not in page and TEACHING not in page
    attempt = db.session.scalars(select(Attempt)).one()
    assert client.get(f"/training/attempts/{attempt.id}/roc.png").status_code == 403
    assert client.get(f"/training/attempts/{attempt.id}/review/1").status_code == 200
    with freeze_time(later + timedelta(minutes=1)):
        login(client, trainee.username)  # an hour later: signed in afresh
        shown = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert 'data-testid="scores"' in shown


def test_immediate_feedback_is_for_practice_sets_only(cases):
    with pytest.raises(AttemptError, match="only practice sets"):
        create_exercise(title="E", kind="exam", scheme_key="ds3030", case_ids=[cases[0].id],
                        actor=None, review={"reference": "immediate"})
    with pytest.raises(AttemptError, match="unknown review setting"):
        create_exercise(title="P", kind="practice", scheme_key="ds3030",
                        case_ids=[cases[0].id], actor=None, review={"score": "sometimes"})


def test_trainer_statistics_show_pass_rate_difficulty_and_discrimination(client, cases,
                                                                         make_user, login_as):
    from app.quizzes.results import exercise_statistics

    exam = create_exercise(title="Stats", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None,
                           criteria=[("accuracy", 0.6)])
    tb = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
    # Four trainees: 3, 2, 1 and 0 of the three cases right.
    for right in (3, 2, 1, 0):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt = start_attempt(exam, trainee)
        for case_id in attempt.case_order:
            case_index = [c.id for c in cases].index(case_id)
            save_answer(attempt, trainee, case_id,
                        tb if case_index < right else {"overall": "normal"}, [])
        submit_attempt(attempt, trainee)
    stats = exercise_statistics(exam.id)
    summary, rows = stats.summary, stats.cases
    assert summary == {"attempts": 4, "trainees": 4, "pass_rate": 0.5}
    assert [r.share_correct for r in rows] == [0.75, 0.5, 0.25]
    assert all(r.discrimination is not None and r.discrimination > 0 for r in rows)
    login_as(Role.TRAINER)
    page = client.get(f"/training/manage/{exam.id}/statistics").get_data(as_text=True)
    assert "4 ended attempts by 4 trainees · pass rate 50 %" in page
    assert client.get("/training/manage/9999/statistics").status_code == 404


@pytest.fixture
def exam_cases(cases) -> list[Case]:
    """The exam's cases: the exam-bank case and two more like the practice set's, but none
    of the practice set's (exams and practice sets share no case)."""
    from app.auth.models import User

    trainer = db.session.scalars(select(User).where(User.username == "expert")).one()
    made = [published_tb_case(trainer, seed) for seed in (310, 311)]
    db.session.commit()
    return [*made, cases[2]]


def test_the_viewer_names_an_attempts_case_by_its_place_not_its_library_title(
        client, cases, login_as):
    import json
    import re

    # The library's second case is the first (and only) case of this practice set.
    single = create_exercise(title="One case", kind="practice", scheme_key="ds3030",
                             case_ids=[cases[1].id], actor=None)
    login_as(Role.TRAINEE_RADIOLOGIST)
    started = post_start(client, single)
    html = client.get(started.headers["Location"]).get_data(as_text=True)
    payload = json.loads(re.search(
        r'<script type="application/json" id="viewer-data">(.*?)</script>', html,
        re.S).group(1))
    assert payload["case"]["title"] == "Case 1"
    assert cases[1].title != "Case 1" and cases[1].title not in json.dumps(payload)
