"""Scoring as the portal does it: stored reference reads and answers through
app/quizzes/results.py, on both databases. Blank reads count as wrong, several experts'
outlines of one lesion are one lesion, the scheme's compatible findings apply, and a point
lesion's tolerance is 10 mm on the image's own pixel spacing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseImage, CaseStatus
from app.cases.reads import reference_for, save_read
from app.extensions import db
from app.quizzes import disclosure
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from app.quizzes.results import case_feedback, score
from app.quizzes.services import start_attempt, submit_attempt
from app.schemes.registry import get_scheme
from tests.dicom_factory import cr_dataset, to_bytes

TB_DS3030 = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
NORMAL_DS3030 = {"overall": "normal"}


@pytest.fixture
def make_case(app, make_user) -> Callable[..., Case]:
    """A published case of one image (200 x 160 px) with its experts' reads."""
    seeds = iter(range(7100, 7999))

    def factory(reads: list[tuple[dict[str, Any], list[dict[str, Any]]]], *,
                scheme: str = "ds3030", spacing: float | None = None) -> Case:
        extra = {"ImagerPixelSpacing": [spacing, spacing]} if spacing else {}
        data = to_bytes(cr_dataset(seed=next(seeds), rows=200, columns=160, **extra))
        [result] = import_files([Source("x.dcm", lambda d=data: d)], actor=None,
                                options=ImportOptions()).results
        case = db.session.get(Case, result.case_id)
        image_id = case.images[0].id
        for answers, marks in reads:
            expert = make_user(Role.TRAINER)
            save_read(case, author=expert, scheme=get_scheme(scheme), answers=answers,
                      marks=[{"image_id": image_id, **m} for m in marks])
        case.status = CaseStatus.PUBLISHED.value
        db.session.commit()
        return case

    return factory


def ellipse(finding: str, cx: float, cy: float, rx: float, ry: float) -> dict[str, Any]:
    return {"finding": finding, "shape": "ellipse",
            "geometry": {"cx": cx, "cy": cy, "rx": rx, "ry": ry}}


def point_mark(finding: str, x: float, y: float) -> dict[str, Any]:
    return {"finding": finding, "shape": "point", "geometry": {"x": x, "y": y}}


def take(exercise, trainee, answers: dict[int, tuple[dict, list]]) -> Attempt:
    """Start, answer the cases given (by case id; the others stay blank) and submit."""
    attempt = start_attempt(exercise, trainee)
    for case_id, (case_answers, marks) in answers.items():
        image_id = db.session.get(Case, case_id).images[0].id
        save_answer(attempt, trainee, case_id, case_answers,
                    [{"image_id": image_id, **m} for m in marks])
    return submit_attempt(attempt, trainee)


def test_a_blank_tb_case_fails_the_exam_and_the_result_page_says_why(
        client, make_case, login_as) -> None:
    answered_tb = make_case([(TB_DS3030, [])])
    blank_tb = make_case([(TB_DS3030, [])])
    normal = make_case([(NORMAL_DS3030, [])])
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[answered_tb.id, blank_tb.id, normal.id], actor=None,
                           criteria=[("sensitivity", 0.9)])
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(exam, trainee, {answered_tb.id: (TB_DS3030, []),
                                   normal.id: (NORMAL_DS3030, [])})
    assert attempt.passed is False
    assert attempt.metrics["metrics"]["sensitivity"] == 0.5
    assert attempt.metrics["metrics"]["blank_cases"] == 1
    assert attempt.metrics["grades"]["U"] == 1
    # Per-case correctness for the trainers' statistics: the blank case is wrong (0).
    assert attempt.metrics["cases"] == {str(answered_tb.id): 1, str(blank_tb.id): 0,
                                        str(normal.id): 1}
    page = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert 'data-testid="blank-rule"' in page
    assert "Unanswered cases count as wrong" in page
    assert "1 of 3 cases not answered" in page
    assert "Sensitivity (TB-suggestive) 50 % is below the required 90 %." in page


def test_a_likelihood_without_a_classification_is_a_blank_read(make_case, make_user) -> None:
    tb_case = make_case([({"classification": "abnormal_tb", "tb_likelihood": 5}, [])],
                        scheme="tb_screening")
    normal = make_case([({"classification": "normal", "tb_likelihood": 1}, [])],
                       scheme="tb_screening")
    practice = create_exercise(title="P", kind="practice", scheme_key="tb_screening",
                               case_ids=[tb_case.id, normal.id], actor=None)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = take(practice, trainee, {
        tb_case.id: ({"classification": "abnormal_tb", "tb_likelihood": 5}, []),
        normal.id: ({"tb_likelihood": 1}, []),  # a likelihood, no classification
    })
    result, feedback = score(attempt)
    # Today's "not TB" reading of the likelihood-only read made it a true negative.
    assert result.metrics["specificity"] == 0.0
    assert result.confusion["fp"] == 1 and result.metrics["blank_cases"] == 1
    by_case = {f.case.id: f.score for f in feedback}
    assert by_case[normal.id].grade == "U"
    # ROC: the blank normal case rates 5 (worst), tying the TB case's 5: AUC 0.5.
    assert result.metrics["auc"] == 0.5
    assert sorted(result.roc) == [(False, 5.0), (True, 5.0)]  # what the ROC figure plots


def test_two_experts_outlining_one_lesion_give_one_reference_lesion(app, make_case,
                                                                     make_user) -> None:
    tb_case = make_case([
        (TB_DS3030, [ellipse("cavitary_lesion", 80, 100, 20, 16)]),
        (TB_DS3030, [ellipse("cavitary_lesion", 86, 103, 18, 18)]),
    ])
    normal = make_case([(NORMAL_DS3030, []), (NORMAL_DS3030, [])])
    assert len(reference_for(tb_case).marks) == 2  # two experts' outlines, not byte-identical
    practice = create_exercise(title="P", kind="practice", scheme_key="ds3030",
                               case_ids=[tb_case.id, normal.id], actor=None)
    found = take(practice, make_user(Role.TRAINEE_RADIOLOGIST), {
        tb_case.id: (TB_DS3030, [point_mark("cavitary_lesion", 83, 101)]),
        normal.id: (NORMAL_DS3030, []),
    })
    result, _ = score(found)
    assert result.metrics["lesion_localisation_sensitivity"] == 1.0
    assert result.metrics["afroc"] == 1.0 and result.metrics["wafroc"] == 1.0
    # The review shows each expert's outline, coloured by its lesion's outcome.
    position = found.case_order.index(tb_case.id) + 1
    with app.test_request_context():  # the payload holds image URLs
        payload = disclosure.review_payload(case_feedback(found, position),
                                            disclosure.of_attempt(found).at(position))
    assert [m["status"] for m in payload["reference_marks"]] == ["reference", "reference"]
    assert [m["status"] for m in payload["marks"]] == ["hit"]
    missed = take(practice, make_user(Role.TRAINEE_RADIOLOGIST), {
        tb_case.id: (TB_DS3030, [point_mark("cavitary_lesion", 150, 20)]),
        normal.id: (NORMAL_DS3030, []),
    })
    position = missed.case_order.index(tb_case.id) + 1
    with app.test_request_context():
        payload = disclosure.review_payload(case_feedback(missed, position),
                                            disclosure.of_attempt(missed).at(position))
    assert [m["status"] for m in payload["reference_marks"]] == ["miss", "miss"]
    assert [m["status"] for m in payload["marks"]] == ["false"]


def test_the_schemes_compatible_findings_apply_in_production(make_case, make_user) -> None:
    reference = {"classification": "abnormal_tb", "tb_likelihood": 5, "findings": ["infiltrate"]}
    tb_case = make_case([(reference, [ellipse("infiltrate", 80, 100, 30, 25)])],
                        scheme="tb_screening")
    practice = create_exercise(title="P", kind="practice", scheme_key="tb_screening",
                               case_ids=[tb_case.id], actor=None)
    attempt = take(practice, make_user(Role.TRAINEE_RADIOLOGIST), {tb_case.id: (
        {"classification": "abnormal_tb", "tb_likelihood": 4, "findings": ["tb_lesion"]},
        [point_mark("tb_lesion", 85, 100)])})
    result, feedback = score(attempt)
    assert feedback[0].score.localisation.ll == 1
    assert result.metrics["lesion_localisation_sensitivity"] == 1.0


def test_the_point_tolerance_is_10_mm_on_each_images_spacing(make_case, make_user) -> None:
    # Reference point lesions at (80, 100); the trainee's point is 20 px to the right.
    # At 0.2 mm per pixel 10 mm is 50 px (found); at 1.0 mm per pixel it is 10 px (missed).
    fine = make_case([(TB_DS3030, [point_mark("cavitary_lesion", 80, 100)])], spacing=0.2)
    coarse = make_case([(TB_DS3030, [point_mark("cavitary_lesion", 80, 100)])], spacing=1.0)
    unknown = make_case([(NORMAL_DS3030, [])])
    images = {c.id: c.images[0] for c in (fine, coarse, unknown)}
    assert (images[fine.id].row_spacing_mm, images[fine.id].column_spacing_mm) == (0.2, 0.2)
    assert images[coarse.id].column_spacing_mm == 1.0
    assert images[unknown.id].row_spacing_mm is None
    practice = create_exercise(title="P", kind="practice", scheme_key="ds3030",
                               case_ids=[fine.id, coarse.id], actor=None)
    attempt = take(practice, make_user(Role.TRAINEE_RADIOLOGIST), {
        case.id: (TB_DS3030, [point_mark("cavitary_lesion", 100, 100)]) for case in (fine, coarse)
    })
    _, feedback = score(attempt)
    hits = {f.case.id: f.score.localisation.lesions[0].hit for f in feedback}
    assert hits == {fine.id: True, coarse.id: False}


def test_the_review_of_a_blank_case_says_it_was_not_answered(client, make_case,
                                                               login_as) -> None:
    tb_case = make_case([(TB_DS3030, [ellipse("cavitary_lesion", 80, 100, 20, 16)])])
    other = make_case([(NORMAL_DS3030, [])])
    practice = create_exercise(title="P", kind="practice", scheme_key="ds3030",
                               case_ids=[tb_case.id, other.id], actor=None)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(practice, trainee, {other.id: (NORMAL_DS3030, [])})
    position = attempt.case_order.index(tb_case.id) + 1
    page = client.get(f"/training/attempts/{attempt.id}/review/{position}").get_data(
        as_text=True)
    assert "grade U" in page
    assert 'data-testid="blank-case"' in page and "You did not answer this case" in page
    payload = json.loads(re.search(r'id="viewer-data">(.*?)</script>', page, re.S).group(1))
    assert [m["status"] for m in payload["reference_marks"]] == ["miss"]
    result_page = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert "grade U" in result_page and "1 of 2 cases not answered" in result_page


def test_images_are_stored_with_their_spacing(make_case) -> None:
    case = make_case([(NORMAL_DS3030, [])], spacing=0.143)
    image = db.session.scalars(select(CaseImage).where(CaseImage.case_id == case.id)).one()
    assert image.row_spacing_mm == pytest.approx(0.143)
    assert image.column_spacing_mm == pytest.approx(0.143)
