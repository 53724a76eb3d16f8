"""The scoring path's cost does not grow with the exam: ending and scoring an attempt, and
the pages that score one, take the same number of SQL statements for 10 cases as for 60
(cases with images, reference reads from two experts, answers with marks); scheme
definitions are parsed once per process, not per case or per request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

import app.schemes.definitions as definitions
import app.schemes.registry as registry
from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case
from app.cases.reads import reference_for, references_for
from app.extensions import db
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.rescoring import rescore
from app.quizzes.results import score
from app.quizzes.services import submit_attempt
from app.schemes.parts import Scheme
from app.schemes.registry import add_scheme, builtin_schemes, get_scheme
from bench.exam_data import add_cases, add_exam, finished_read
from tests.conftest import csrf_token, login, postgresql_only
from tests.forms import submit_html

SMALL, LARGE = 10, 60
# Everything shown after the attempt, so that the result page scores and the review page
# opens (an exam's defaults hide both).
SHOW_ALL = {"score": "after_submit", "correctness": "after_submit",
            "reference": "after_submit", "teaching_notes": "after_submit"}


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs."""
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


@pytest.fixture(params=["builtin", "trainer_made"])
def scheme(request, app) -> Scheme:
    """The built-in TB screening scheme, or the same definition stored by a trainer (read
    from the database, where a per-case lookup would cost a statement per case)."""
    if request.param == "builtin":
        return get_scheme("tb_screening")
    definition = {**builtin_schemes()["tb_screening"].definition, "key": "clinic_tb_read",
                  "name": "Clinic TB read"}
    return add_scheme(json.dumps(definition), actor=None)


@pytest.fixture
def exams(app, make_user, scheme) -> dict[int, int]:
    """{number of cases: exam id}: a 10-case and a 60-case exam over the same library."""
    experts = [make_user(Role.TRAINER), make_user(Role.TRAINER)]
    case_ids = add_cases(LARGE, scheme=scheme, experts=experts, seed=7)
    return {size: add_exam(case_ids[:size], scheme=scheme, title=f"{size} cases", review=SHOW_ALL)
            for size in (SMALL, LARGE)}


def _fresh(model: type, ident: int):
    """The row as a new request would see it: nothing of the set-up left in the session."""
    db.session.remove()
    return db.session.get(model, ident)


def test_ending_an_attempt_takes_as_many_statements_for_60_cases_as_for_10(
        exams, make_user: Callable[..., User]):
    counts = {}
    for size, exam_id in exams.items():
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt_id, user_id = finished_read(exam_id, trainee, seed=size), trainee.id
        user = _fresh(User, user_id)
        attempt = db.session.get(Attempt, attempt_id)
        with statements() as sent:
            submit_attempt(attempt, user)
        counts[size] = len(sent)
        ended = _fresh(Attempt, attempt_id)
        assert ended.state == AttemptState.SUBMITTED.value
        assert len(ended.metrics["cases"]) == size
        assert ended.sensitivity is not None and ended.specificity is not None
    assert counts[SMALL] == counts[LARGE], counts


def _page_counts(client, attempt_id: int) -> dict[str, int]:
    """Statements of each request that ends or scores the attempt, made as the pages do."""
    counts = {}
    page = f"/training/attempts/{attempt_id}/1"
    with statements() as sent:  # the case page with its navigator of every case
        html = client.get(page).get_data(as_text=True)
    counts["case page"] = len(sent)
    # Autosave, as the case page's script sends it.
    token = csrf_token(client, page)
    with statements() as sent:
        saved = client.post(re.search(r'data-save-url="([^"]+)"', html).group(1),
                            json={"answers": {"classification": "normal", "tb_likelihood": 2},
                                  "marks": []},
                            headers={"X-CSRFToken": token})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    counts["autosave"] = len(sent)
    summary_url = f"/training/attempts/{attempt_id}/summary"
    with statements() as sent:
        summary = submit_html(client, html, page, button="Submit all answers")
    assert summary.status_code == 200, summary.get_data(as_text=True)
    assert summary.request.path == summary_url
    counts["summary"] = len(sent)
    with statements() as sent:
        submitted = submit_html(client, summary.get_data(as_text=True), summary_url,
                                button="Submit and finish")
    assert submitted.status_code == 302, submitted.get_data(as_text=True)
    counts["submit"] = len(sent)
    for name, url, marker in (
        ("result", f"/training/attempts/{attempt_id}/result", 'data-testid="case-feedback"'),
        ("review", f"/training/attempts/{attempt_id}/review/1", "Case 1"),
        ("roc.png", f"/training/attempts/{attempt_id}/roc.png", ""),
    ):
        with statements() as sent:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert marker in response.get_data(as_text=True) if marker else response.data
        counts[name] = len(sent)
    return counts


def test_pages_that_end_or_score_an_attempt_do_not_grow_with_its_cases(
        app, exams, make_user: Callable[..., User]):
    counts = {}
    for size, exam_id in exams.items():
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt_id = finished_read(exam_id, trainee, seed=size)
        client = app.test_client()
        assert login(client, trainee.username).status_code == 302
        db.session.remove()
        counts[size] = _page_counts(client, attempt_id)
        ended = _fresh(Attempt, attempt_id)
        assert ended.state == AttemptState.SUBMITTED.value
        assert len(ended.metrics["cases"]) == size
    grew = {name: (n, counts[LARGE][name]) for name, n in counts[SMALL].items()
            if n != counts[LARGE][name]}
    assert not grew, f"statements for {SMALL} and {LARGE} cases: {grew}"


def test_scheme_definitions_are_parsed_once_per_process(
        exams, make_user: Callable[..., User], monkeypatch):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt_id = finished_read(exams[LARGE], trainee, seed=3)
    parsed: list[str] = []
    real = definitions.parse_scheme

    def counting(data):
        parsed.append(str(data.get("key")) if isinstance(data, dict) else "?")
        return real(data)

    # Both names: the registry calls the one it imported.
    monkeypatch.setattr(definitions, "parse_scheme", counting)
    monkeypatch.setattr(registry, "parse_scheme", counting)
    first, _ = score(_fresh(Attempt, attempt_id))
    after_first = len(parsed)
    second, _ = score(_fresh(Attempt, attempt_id))
    assert after_first <= 1, parsed  # at most the first use of a stored definition
    assert len(parsed) == after_first, parsed  # and never again in this process
    assert second.metrics == first.metrics
    assert len(second.cases) == LARGE
    # The bulk references are the ones reference_for gives case by case.
    cases = [db.session.get(Case, case_id) for case_id in _fresh(Attempt, attempt_id).case_order]
    assert references_for(cases) == {case.id: reference_for(case) for case in cases}


@pytest.mark.parametrize("image_of", ["other case", "text id"])
def test_autosave_refuses_a_mark_on_an_image_not_of_its_case(app, make_user, image_of):
    """Autosave looks up only the saved case's images: a mark naming another case's image
    (or an id that is not a number) is refused with the reason, and nothing is written."""
    scheme = get_scheme("tb_screening")
    experts = [make_user(Role.TRAINER), make_user(Role.TRAINER)]
    case_ids = add_cases(2, scheme=scheme, experts=experts, seed=5)
    exam_id = add_exam(case_ids, scheme=scheme)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt_id = finished_read(exam_id, trainee, seed=5)
    attempt = db.session.get(Attempt, attempt_id)
    _case_id, other_id = attempt.case_order
    before = {a.case_id: (a.revision, a.answers, a.marks) for a in attempt.answers}
    other_image = db.session.get(Case, other_id).images[0].id
    client = app.test_client()
    assert login(client, trainee.username).status_code == 302
    page = f"/training/attempts/{attempt_id}/1"
    token = csrf_token(client, page)
    mark = {"image_id": other_image if image_of == "other case" else str(other_image),
            "finding": "nodule", "shape": "point", "geometry": {"x": 10, "y": 10}}
    refused = client.post(f"/training/attempts/{attempt_id}/1/answer",  # case_id's page
                          json={"answers": {"classification": "normal"}, "marks": [mark]},
                          headers={"X-CSRFToken": token})
    assert refused.status_code == 400
    assert "must name one of this case's images" in refused.get_json()["message"]
    stored = _fresh(Attempt, attempt_id)
    assert {a.case_id: (a.revision, a.answers, a.marks) for a in stored.answers} == before


def test_rescoring_loads_the_cases_once_per_run_not_per_attempt(
        exams, make_user: Callable[..., User]):
    exam_id = exams[LARGE]
    attempt_ids = []
    for n in range(3):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt_id, user_id = finished_read(exam_id, trainee, seed=20 + n), trainee.id
        user = _fresh(User, user_id)
        submit_attempt(db.session.get_one(Attempt, attempt_id), user)
        attempt_ids.append(attempt_id)
    kept = {i: _fresh(Attempt, i).metrics for i in attempt_ids}
    db.session.remove()
    with statements() as sent:
        report = rescore(exam_id)
    assert report.attempts == 3 and not report.changes
    assert sum(1 for s in sent if "FROM teaching_case" in s) == 1
    # The same scores as at submission.
    assert {i: _fresh(Attempt, i).metrics for i in attempt_ids} == kept


def test_rescoring_in_batches_and_processes_gives_the_scores_of_submission(
        exams, make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch):
    """Batches of two attempts shared between two processes (forked on PostgreSQL; SQLite
    re-scores in this one): every attempt once, each with the scores it got when it was
    submitted, and the peer figures as they were."""
    from app.quizzes import rescoring
    from app.quizzes.models import PeerAccuracy, PeerCaseShare, PeerStanding

    monkeypatch.setattr(rescoring, "BATCH", 2)
    exam_id = exams[SMALL]
    attempt_ids = []
    for n in range(5):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt_id, user_id = finished_read(exam_id, trainee, seed=40 + n), trainee.id
        user = _fresh(User, user_id)
        submit_attempt(db.session.get_one(Attempt, attempt_id), user)
        attempt_ids.append(attempt_id)

    def peers() -> list:
        return [sorted(tuple(getattr(row, c.key) for c in model.__table__.columns)
                       for row in db.session.scalars(select(model)))
                for model in (PeerStanding, PeerAccuracy, PeerCaseShare)]

    kept = {i: _fresh(Attempt, i).metrics for i in attempt_ids}
    peers_before = peers()
    db.session.remove()
    progress: list[int] = []
    report = rescoring.rescore(exam_id, processes=2,
                               on_batch=lambda count, total, changes: progress.append(count))
    assert report.attempts == 5 and not report.changes
    if db.engine.dialect.name == "sqlite":
        assert progress == [2, 2, 1]  # told here, in each batch's transaction
    assert {i: _fresh(Attempt, i).metrics for i in attempt_ids} == kept
    db.session.remove()
    assert peers() == peers_before


@postgresql_only  # SQLite re-scores in one process
def test_a_rescoring_process_that_dies_fails_the_run_instead_of_hanging(
        exams, make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch):
    """A forked re-scoring process killed mid-run (out of memory, by hand) sends nothing
    back: the run fails with the reason; the batches committed before stay re-scored."""
    import os

    from app.quizzes import rescoring

    exam_id = exams[SMALL]
    attempt_ids = []
    for n in range(4):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt_id, user_id = finished_read(exam_id, trainee, seed=60 + n), trainee.id
        user = _fresh(User, user_id)
        submit_attempt(db.session.get_one(Attempt, attempt_id), user)
        attempt_ids.append(attempt_id)
    db.session.remove()
    real_finalise = rescoring.finalise
    parent = os.getpid()

    def killed_on_the_last(attempt, **options):
        if attempt.id == attempt_ids[-1] and os.getpid() != parent:
            os._exit(9)
        return real_finalise(attempt, **options)

    monkeypatch.setattr(rescoring, "BATCH", 1)
    monkeypatch.setattr(rescoring, "finalise", killed_on_the_last)
    with pytest.raises(RuntimeError, match="a re-scoring process stopped"):
        rescoring.rescore(exam_id, processes=2)
