"""A case's image-quality reference read beside its radiologists' read, and DS-3030's
optional TB likelihood: each exercise is scored against the read in its own scheme, and ROC
appears when likelihoods are given (never an AUC of 0 from likelihoods nobody was asked
for)."""

from __future__ import annotations

import pytest

from app.auth.roles import Role
from app.cases.models import Case
from app.cases.reads import reference_for, save_read
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.services import start_attempt, submit_attempt
from app.schemes.errors import SchemeError
from app.schemes.registry import get_scheme
from tests.keycases import make_key_case

GOOD = {key: {"pass": True, "reason": ""} for key in (
    "inclusion", "rotation", "scapulae", "inspiration", "exposure", "collimation", "artefacts")}
APICES_CUT = {**GOOD, "inclusion": {"pass": False, "reason": "apices cut off"}, "grade": "3"}


@pytest.fixture
def curator(make_user):
    return make_user(Role.TRAINER)


@pytest.fixture
def cases(app, curator) -> list[Case]:
    made = [make_key_case(curator, seed, tb=seed % 2 == 0, label="case") for seed in range(4)]
    return [db.session.get_one(Case, c.id) for c in made]


def test_an_image_quality_read_sits_beside_the_diagnostic_read(cases, curator):
    case = cases[0]
    quality = get_scheme("image_quality")
    save_read(case, author=curator, scheme=quality, answers={**GOOD, "grade": "1"})
    # The same author, kind and version in another scheme: no clash, nothing superseded.
    assert reference_for(case).scheme.key == "ds3030"
    assert reference_for(case).answers["overall"] == "abnormal"
    assert reference_for(case, scheme_key="image_quality").answers["grade"] == "1"
    save_read(case, author=curator, scheme=quality, answers=APICES_CUT)
    assert reference_for(case, scheme_key="image_quality").answers["grade"] == "3"
    assert len([r for r in case.current_reads if r.scheme_key == "image_quality"]) == 1
    assert case.reference_tb_positive is True  # the library summary is the diagnostic read's
    # Two diagnostic schemes on one case still make no reference.
    with pytest.raises(SchemeError, match="same reporting scheme"):
        save_read(case, author=None, scheme=get_scheme("tb_screening"),
                  answers={"classification": "normal", "tb_likelihood": 1})


def test_an_image_quality_exercise_is_scored_against_the_quality_reads(cases, curator,
                                                                       make_user):
    for case in cases:
        save_read(case, author=curator, scheme=get_scheme("image_quality"),
                  answers=APICES_CUT if case.id == cases[0].id else {**GOOD, "grade": "1"})
    exercise = create_exercise(title="Image quality", kind="practice",
                               scheme_key="image_quality", case_ids=[c.id for c in cases],
                               actor=curator)
    radiographer = make_user(Role.TRAINEE_RADIOGRAPHER)
    attempt = start_attempt(exercise, radiographer)
    for case in cases:  # every film passed: the cut-off apices missed
        save_answer(attempt, radiographer, case.id, {**GOOD, "grade": "1"}, [])
    submit_attempt(attempt, radiographer)
    metrics = attempt.metrics["metrics"]
    assert metrics["quality_agreement"] == pytest.approx(27 / 28)


def _ds3030_attempt(cases, curator, trainee, likelihoods: dict[int, int]):
    exercise = create_exercise(title="DS-3030", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases], actor=curator)
    attempt = start_attempt(exercise, trainee)
    for case in cases:
        read = ({"overall": "abnormal", "findings": ["cavitary_lesion"]}
                if case.reference_tb_positive else {"overall": "normal"})
        if case.id in likelihoods:
            read["tb_likelihood"] = likelihoods[case.id]
        save_answer(attempt, trainee, case.id, read, [])
    return submit_attempt(attempt, trainee)


def test_ds3030_reads_without_likelihoods_have_no_roc(cases, curator, make_user):
    attempt = _ds3030_attempt(cases, curator, make_user(Role.TRAINEE_RADIOLOGIST), {})
    assert attempt.metrics["metrics"]["sensitivity"] == 1.0
    assert attempt.metrics["metrics"]["auc"] is None


def test_ds3030_likelihoods_give_the_roc(cases, curator, make_user):
    likelihoods = {c.id: 5 if c.reference_tb_positive else 1 for c in cases}
    likelihoods.pop(cases[1].id)  # a normal case without one: the worst rating (5)
    attempt = _ds3030_attempt(cases, curator, make_user(Role.TRAINEE_RADIOLOGIST), likelihoods)
    assert attempt.metrics["metrics"]["auc"] == pytest.approx(0.75)


def test_exported_case_files_carry_the_quality_reference(cases, curator, tmp_path):
    import json

    from app.cases.library_files import export_library

    save_read(cases[0], author=curator, scheme=get_scheme("image_quality"), answers=APICES_CUT)
    [path] = export_library(tmp_path, [cases[0]])
    spec = json.loads(path.read_text())
    assert spec["reference"]["scheme"] == "ds3030"
    assert spec["quality_reference"]["scheme"] == "image_quality"
    assert spec["quality_reference"]["answers"]["inclusion"] == {"pass": False,
                                                                 "reason": "apices cut off"}


@pytest.mark.parametrize("broken", [{"scheme": "ds3030", "answers": {"overall": "normal"}},
                                    {"scheme": "image_quality"}])
def test_a_case_file_with_a_broken_quality_reference_is_refused_with_the_reason(
        cases, tmp_path, broken):
    import json

    from app.cases.library_files import export_library, load_library

    [path] = export_library(tmp_path, [cases[1]])
    spec = json.loads(path.read_text())
    spec["quality_reference"] = broken
    path.write_text(json.dumps(spec))
    [result] = load_library(tmp_path)
    assert result.status == "refused"
    assert "quality reference" in result.reason
    db.session.expire_all()
    assert [r.scheme_key for r in db.session.get_one(Case, cases[1].id).current_reads] == [
        "ds3030"]


def test_the_case_page_shows_the_quality_reference_beside_the_main_one(client, cases, curator):
    from tests.conftest import login

    save_read(cases[0], author=curator, scheme=get_scheme("image_quality"), answers=APICES_CUT)
    login(client, curator.username)
    page = client.get(f"/cases/{cases[0].id}").get_data(as_text=True)
    side = page.split('data-testid="side-reference"')[1].split("</section>")[0]
    assert "Radiographer image quality (PA chest)" in side and "apices cut off" in side
    plain = client.get(f"/cases/{cases[1].id}").get_data(as_text=True)
    assert 'data-testid="side-reference"' not in plain


def test_the_viewer_page_lists_cases_for_trainers_and_points_trainees_to_training(
        client, cases, curator, make_user):
    from tests.conftest import login, sign_out

    login(client, curator.username)
    page = client.get("/viewer/").get_data(as_text=True)
    listed = page.split('data-testid="viewer-cases"')[1]
    assert all(f'href="/viewer/cases/{case.id}"' in listed for case in cases)
    assert 'href="/viewer/">Viewer</a>' in page  # the menu item, for trainers
    sign_out(client, "/viewer/")
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    login(client, trainee.username)
    page = client.get("/viewer/").get_data(as_text=True)
    assert 'data-testid="viewer-cases"' not in page and 'href="/training/">Training</a>' in page
    assert 'href="/viewer/">Viewer</a>' not in page
