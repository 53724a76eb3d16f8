"""Item analysis of an exercise's cases (Moodle's quiz statistics): facility, discrimination
against the rest of the exercise, discriminative efficiency, Cronbach's alpha / KR-20 and
the standard error of measurement; on each trainee's first ended attempt or on all of them;
and the trainers' statistics page that shows them."""

from __future__ import annotations

import math
import re
import statistics
import warnings

import numpy as np
import pandas as pd
import pingouin
import pytest
from bs4 import BeautifulSoup
from scipy import stats
from sqlalchemy import event, select

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from app.quizzes.results import Population, exercise_statistics
from app.quizzes.scoring.items import (
    MIN_ATTEMPTS,
    REVIEW_BELOW,
    CaseAnalysis,
    analyse,
    case_set_key,
    compact_scores,
    score_matrix,
)
from app.quizzes.services import (
    abandon_attempt,
    start_attempt,
    submit_attempt,
)
from bench.scale_data import Scale, populate
from tests.conftest import login
from tests.forms import submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)

# Ten trainees, five cases. Case 1 is right for 8 of 10, but the two who miss it are among
# the better readers of the other four cases.
PROPPED_UP = [
    [0, 1, 1, 0, 1],
    [1, 0, 1, 0, 1],
    [1, 0, 0, 1, 1],
    [0, 0, 1, 1, 0],
    [1, 0, 1, 0, 0],
    [1, 1, 0, 0, 1],
    [1, 0, 0, 0, 0],
    [1, 0, 0, 0, 1],
    [1, 0, 0, 1, 1],
    [1, 1, 1, 1, 0],
]


def test_a_case_that_looks_neutral_with_itself_in_the_total_is_negative_without():
    """Worked by hand. Case 1: x = 0 1 1 0 1 1 1 1 1 1 (sum 8), rest of the exercise
    r = 3 2 2 2 1 2 0 1 2 3 (sum 18, sum of squares 40), sum of x*r = 13, n = 10.
      Sxx = 8 - 10*0.8^2 = 1.6;  Srr = 40 - 10*1.8^2 = 7.6;  Sxr = 13 - 10*0.8*1.8 = -1.4
      corrected r = -1.4 / sqrt(1.6 * 7.6) = -0.4015
      with the case in the total t = x + r: Sxt = Sxr + Sxx = 0.2,
      Stt = Srr + 2 Sxr + Sxx = 6.4, uncorrected r = 0.2 / sqrt(1.6 * 6.4) = +0.0625
      largest covariance: the 8 right paired with the 8 highest rests (1+2+2+2+2+2+3+3 = 17):
      Sxr max = 17 - 14.4 = 2.6, discriminative efficiency = -1.4 / 2.6 = -7/13
    Alpha: item variances (n-1 = 9) 1.6, 2.1, 2.5, 2.4, 2.4 over 9 (sum 11/9); totals
    3 3 3 2 2 3 1 2 3 4, variance 6.4/9; alpha = 5/4 * (1 - 11/6.4) = -115/128."""
    x = np.array(PROPPED_UP, dtype=float)
    uncorrected = np.corrcoef(x[:, 0], x.sum(axis=1))[0, 1]
    assert uncorrected == pytest.approx(0.0625)  # what the old page showed: looks harmless

    result = analyse(PROPPED_UP)
    case = result.cases[0]
    assert case.attempts == 10
    assert case.facility == pytest.approx(0.8)
    assert case.discrimination == pytest.approx(-1.4 / math.sqrt(1.6 * 7.6))
    assert case.discrimination == pytest.approx(-0.4015, abs=1e-4)
    assert case.efficiency == pytest.approx(-7 / 13)
    assert case.flag == "negative"
    assert result.total.alpha == pytest.approx(-115 / 128)
    assert result.total.dichotomous  # so alpha is the KR-20
    assert result.total.mean == pytest.approx(2.6)
    assert result.total.sd == pytest.approx(math.sqrt(6.4 / 9))
    assert result.total.sem == pytest.approx(math.sqrt(6.4 / 9) * math.sqrt(1 + 115 / 128))


def test_a_case_that_separates_good_from_weak_readers():
    """Four trainees with 3, 2, 1 and 0 of three cases right, case 1 the easiest.
    Case 1: x = 1 1 1 0, rest = 2 1 0 0: Sxx = 0.75, Srr = 5 - 2.25 = 2.75,
    Sxr = 3 - 4*0.75*0.75 = 0.75, r = 0.75 / sqrt(0.75 * 2.75) = sqrt(3/11) = 0.522; rank-
    paired the three right meet rests 0 1 2 (sum 3) too, so the efficiency is 1."""
    result = analyse([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]])
    first = result.cases[0]
    assert first.facility == 0.75
    assert first.discrimination == pytest.approx(math.sqrt(3 / 11))
    assert first.efficiency == pytest.approx(1.0)
    assert first.flag is None
    assert [c.facility for c in result.cases] == [0.75, 0.5, 0.25]
    # A perfect Guttman pattern: alpha = 3/2 * (1 - (3 * 0.25 ... ) / var) worked below.
    item_var = sum(p * (1 - p) * 4 / 3 for p in (0.75, 0.5, 0.25))
    total_var = statistics.variance([3, 2, 1, 0])
    assert result.total.alpha == pytest.approx(1.5 * (1 - item_var / total_var))


def test_flags_follow_the_stated_thresholds():
    assert CaseAnalysis(10, 0.5, 0.5, -0.01, -0.02).flag == "negative"
    assert CaseAnalysis(10, 0.5, 0.5, 0.0, 0.0).flag == "review"
    assert CaseAnalysis(10, 0.5, 0.5, REVIEW_BELOW - 1e-9, 0.3).flag == "review"
    assert CaseAnalysis(10, 0.5, 0.5, REVIEW_BELOW, 0.3).flag is None
    assert CaseAnalysis(2, 0.5, None, None, None, "not enough data").flag is None


def _independent(x: np.ndarray) -> dict:
    """The same statistics computed another way: scipy's Pearson r on explicit rest
    scores, np.cov on independently sorted copies, pingouin's Cronbach's alpha."""
    total = x.sum(axis=1)
    per_case = []
    for j in range(x.shape[1]):
        item, rest = x[:, j], np.delete(x, j, axis=1).sum(axis=1)
        if np.ptp(item) == 0 or np.ptp(rest) == 0:
            per_case.append((item.mean(), None, None))
            continue
        r = stats.pearsonr(item, rest).statistic
        cov = np.cov(item, rest)[0, 1]
        cov_max = np.cov(sorted(item), sorted(rest))[0, 1]
        per_case.append((item.mean(), r, cov / cov_max))
    alpha = pingouin.cronbach_alpha(pd.DataFrame(x))[0]
    sd = statistics.stdev(total.tolist())
    return {"cases": per_case, "alpha": alpha, "sd": sd,
            "sem": sd * math.sqrt(1 - alpha), "mean": statistics.fmean(total.tolist())}


def _random_scores(rng: np.random.Generator, partial: bool) -> np.ndarray:
    """Readers of varying ability and cases of varying difficulty (a Rasch-like model),
    some cases keyed backwards, so that discrimination spans negative to high."""
    n, k = int(rng.integers(MIN_ATTEMPTS, 250)), int(rng.integers(2, 40))
    ability = rng.normal(0, 1.5, size=(n, 1))
    difficulty = rng.normal(0, 1, size=(1, k))
    direction = np.where(rng.random(k) < 0.15, -1.0, 1.0)
    p = 1 / (1 + np.exp(-(direction * ability - difficulty)))
    if partial:  # partial credit in steps of a quarter
        return np.round(p * 4 + rng.normal(0, 0.8, size=p.shape)).clip(0, 4) / 4
    return (rng.random(p.shape) < p).astype(float)


@pytest.mark.parametrize("partial", [False, True], ids=["right-wrong", "partial-credit"])
def test_statistics_equal_an_independent_computation_on_random_data(partial):
    rng = np.random.default_rng(20260601 + partial)
    negative_seen = 0
    for _ in range(60):
        x = _random_scores(rng, partial)
        expected = _independent(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no division by zero, no NaN on the way
            result = analyse(x)
        assert result.total.dichotomous is (not partial or bool(np.isin(x, (0, 1)).all()))
        for got, (facility, r, efficiency) in zip(result.cases, expected["cases"],
                                                  strict=True):
            assert got.facility == pytest.approx(facility, abs=1e-12)
            if r is None:
                assert got.discrimination is None and got.efficiency is None and got.note
                continue
            assert got.discrimination == pytest.approx(r, abs=1e-9)
            assert got.efficiency == pytest.approx(efficiency, abs=1e-9)
            assert got.efficiency <= 1 + 1e-12
            negative_seen += got.discrimination < 0
        assert result.total.mean == pytest.approx(expected["mean"])
        assert result.total.sd == pytest.approx(expected["sd"])
        assert result.total.alpha == pytest.approx(expected["alpha"], abs=1e-9)
        assert result.total.sem == pytest.approx(expected["sem"], abs=1e-9)
    assert negative_seen > 0  # the data did exercise the flag's side of the scale


def _no_nan(result) -> None:
    for value in (result.total.mean, result.total.sd, result.total.alpha, result.total.sem,
                  *(v for c in result.cases
                    for v in (c.facility, c.sd, c.discrimination, c.efficiency))):
        assert value is None or math.isfinite(value)


@pytest.mark.parametrize(("scores", "case_note", "test_note"), [
    ([], "no ended attempts", "no ended attempts"),
    ([[1, 0, 1]], f"fewer than {MIN_ATTEMPTS} attempts", f"fewer than {MIN_ATTEMPTS}"),
    ([[1, 0, 1], [0, 1, 1]], f"fewer than {MIN_ATTEMPTS} attempts", f"fewer than {MIN_ATTEMPTS}"),
    ([[1, 1, 1]] * 5, "every attempt got this case right", "the same total"),
    ([[0, 0, 0]] * 5, "every attempt got this case wrong", "the same total"),
    ([[1], [0], [1], [1]], "no other case", "at least two cases"),
])
def test_degenerate_data_says_not_enough_data_instead_of_nan(scores, case_note, test_note):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyse(np.array(scores, dtype=float).reshape(len(scores), -1)
                         if scores else np.zeros((0, 3)))
    _no_nan(result)
    for case in result.cases:
        assert case.discrimination is None and case.efficiency is None and case.flag is None
        assert case.note.startswith("not enough data") and case_note in case.note
    assert result.total.alpha is None and result.total.sem is None
    assert result.total.note.startswith("not enough data") and test_note in result.total.note


def test_a_case_nobody_answered_counts_as_wrong_and_has_no_discrimination():
    stored = [{"1": 1, "2": None, "3": 1}, {"1": 0, "2": None, "3": 1},
              {"1": 1, "2": None, "3": 0}, {"1": 0, "2": None, "3": 0}]
    matrix = score_matrix("".join(compact_scores(s)[1] for s in stored), 3)
    assert matrix[:, 1].tolist() == [0, 0, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyse(matrix)
    _no_nan(result)
    blank = result.cases[1]
    assert blank.facility == 0 and blank.discrimination is None
    assert "wrong (or left it blank)" in blank.note
    # The other cases still get their figures, against a rest that includes the blank.
    assert result.cases[0].discrimination is not None
    assert result.total.alpha is not None


def test_compact_scores_line_up_by_case_id_and_name_their_case_set():
    key, scores = compact_scores({"12": 1, "3": None, "100": 0, "7": 1})
    assert scores == "0110"  # cases 3, 7, 12, 100
    assert key == case_set_key([100, 12, 7, 3]) == case_set_key([3, 7, 12, 100, 7])
    assert key != case_set_key([3, 7, 12]) and key != case_set_key([3, 7, 12, 101])
    assert compact_scores({"3": 0, "7": 1})[1] == "01"
    matrix = score_matrix("0110" + "1001", 4)
    assert matrix.tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]
    assert score_matrix("", 4).shape == (0, 4)
    assert score_matrix("", 0).shape == (0, 0)
    # Partial credit has no compact form: the attempt is left out, its submission unharmed.
    assert compact_scores({"3": 0.5, "7": 1}) == (case_set_key([3, 7]), None)
    assert compact_scores({"3": True, "7": False, "9": 1.0})[1] == "101"
    for bad, width in (("011", 2), ("01x1", 2), ("01", 0)):
        with pytest.raises(ValueError, match="rows of"):
            score_matrix(bad, width)


@pytest.mark.parametrize(("scores", "message"), [
    ([1, 0, 1], "matrix"),
    ([[1, float("nan")], [0, 1], [1, 1]], "finite"),
])
def test_bad_score_matrices_are_refused(scores, message):
    with pytest.raises(ValueError, match=message):
        analyse(scores)


# ---- the trainers' page --------------------------------------------------------------------

TB = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
NORMAL = {"overall": "normal"}


def _take(exam, trainee, right: tuple[int, ...], case_ids: list[int]) -> None:
    """One ended attempt answering the cases flagged 1 in ``right`` correctly (every demo
    reference read is TB: a normal read is wrong) and leaving the others blank or wrong."""
    attempt = start_attempt(exam, trainee)
    for case_id in attempt.case_order:
        good = right[case_ids.index(case_id)]
        if good or case_id != case_ids[0]:  # case 1 missed by leaving it blank
            save_answer(attempt, trainee, case_id, TB if good else NORMAL, [])
    submit_attempt(attempt, trainee)


@pytest.fixture
def retaken(cases, make_user):  # noqa: F811
    """Five trainees' first attempts, on which case 3 discriminates negatively (right for
    the weaker readers only); then four of them retake and get everything right. A practice
    set, so that one trainee can abandon an attempt before their first ended one."""
    cases[2].exam_bank = False
    db.session.commit()
    exam = create_exercise(title="Retaken", kind="practice", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None,
                           criteria=[("accuracy", 0.6)])
    ids = [c.id for c in cases]
    firsts = [(1, 1, 0), (1, 1, 0), (1, 0, 1), (0, 0, 1), (0, 1, 0)]
    trainees = [make_user(Role.TRAINEE_RADIOLOGIST) for _ in firsts]
    # An abandoned attempt does not count: the first ENDED attempt is the first attempt.
    abandon_attempt(start_attempt(exam, trainees[0]), trainees[0])
    for trainee, right in zip(trainees, firsts, strict=True):
        _take(exam, trainee, right, ids)
    for trainee in trainees[1:]:
        _take(exam, trainee, (1, 1, 1), ids)
    return exam


def _table(page: str) -> dict[str, dict[str, str]]:
    soup = BeautifulSoup(page, "html.parser")
    table = soup.find("table", attrs={"data-testid": "case-statistics"})
    heads = [th.get("data-column") for th in table.thead.find_all("th")]
    return {row.find("td").get_text(strip=True): {
        h: td.get_text(" ", strip=True) for h, td in zip(heads, row.find_all("td"),
                                                         strict=True)}
        for row in table.tbody.find_all("tr")}


def test_first_attempts_by_default_and_all_attempts_on_request(client, retaken, login_as):
    titles = [link.case.title for link in retaken.cases]
    first = exercise_statistics(retaken.id)
    assert first.population is Population.FIRST and first.analysed == 5
    assert [c.share_correct for c in first.cases] == [0.6, 0.6, 0.4]
    assert first.cases[2].discrimination < 0 and first.cases[2].flag == "negative"
    everything = exercise_statistics(retaken.id, Population.ALL)
    assert everything.analysed == 9
    assert [c.share_correct for c in everything.cases] == pytest.approx([7 / 9, 7 / 9, 6 / 9])

    login_as(Role.TRAINER)
    url = f"/training/manage/{retaken.id}/statistics"
    page = client.get(url).get_data(as_text=True)
    assert "5 first attempts" in page
    rows = _table(page)
    assert rows[titles[0]]["facility"] == "60 %" and rows[titles[2]]["facility"] == "40 %"
    assert "negative" in rows[titles[2]]["flag"]
    assert f"discrimination below {REVIEW_BELOW:.2f}" in page  # the threshold, stated
    assert "Cronbach" in page and "KR-20" in page

    response = submit_form(client, url, button="Show", fields={"attempts": "all"})
    assert response.status_code == 200
    page_all = response.get_data(as_text=True)
    assert "all 9 ended attempts" in page_all and "5 first attempts" not in page_all
    rows_all = _table(page_all)
    assert rows_all[titles[0]]["facility"] == "78 %"
    assert rows_all[titles[2]]["facility"] == "67 %"
    assert rows_all[titles[2]]["discrimination"] != rows[titles[2]]["discrimination"]
    # The control keeps its choice, and can go back.
    back = submit_form(client, f"{url}?attempts=all", button="Show",
                       fields={"attempts": "first"}).get_data(as_text=True)
    assert _table(back) == rows


def test_figures_on_the_page_match_the_pure_analysis(client, retaken, login_as):
    stats_ = exercise_statistics(retaken.id)
    login_as(Role.TRAINER)
    page = client.get(f"/training/manage/{retaken.id}/statistics").get_data(as_text=True)
    rows = list(_table(page).values())
    for row, case in zip(rows, stats_.cases, strict=True):
        shown = row["discrimination"]
        assert shown == ("—" if case.discrimination is None
                         else f"{case.discrimination:+.2f}")
    alpha = stats_.total.alpha
    assert alpha is not None
    shown_alpha = f"{alpha:+.2f}"
    assert re.search(rf"KR-20[^<]*</dt>\s*<dd[^>]*>{re.escape(shown_alpha)}<", page)


def test_a_bad_population_is_refused_with_a_reason(app, client, retaken, login_as,
                                                   make_user):
    login_as(Role.TRAINER)
    response = client.get(f"/training/manage/{retaken.id}/statistics?attempts=latest")
    assert response.status_code == 400
    assert "first or all" in response.get_data(as_text=True)
    assert client.get("/training/manage/9999/statistics").status_code == 404
    trainee = app.test_client()
    login(trainee, make_user(Role.TRAINEE_RADIOLOGIST).username)
    assert trainee.get(f"/training/manage/{retaken.id}/statistics").status_code == 403


def test_an_exercise_without_attempts_says_not_enough_data(client, cases, login_as):  # noqa: F811
    exam = create_exercise(title="Untried", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None)
    login_as(Role.TRAINER)
    page = client.get(f"/training/manage/{exam.id}/statistics").get_data(as_text=True)
    assert "not enough data: no ended attempts" in page
    table = BeautifulSoup(page, "html.parser").find("table").get_text(" ").lower()
    assert "nan" not in table.split()


def test_query_count_does_not_grow_with_the_attempts(app, make_user):
    data = populate(Scale(users=20, clinics=2, countries=1, attempts=80, certificates=0,
                          cases_per_exercise=4), seed=1, tag="a")
    trainer = make_user(Role.TRAINER)
    client = app.test_client()
    assert login(client, trainer.username).status_code == 302
    exam = data.exercise_ids[2]
    urls = [f"/training/manage/{exam}/statistics",
            f"/training/manage/{exam}/statistics?attempts=all"]

    def counts() -> list[int]:
        found = []
        for url in urls:
            statements: list[str] = []

            def count(*args, **kwargs) -> None:
                statements.append(args[2])  # noqa: B023 (used at once)

            event.listen(db.engine, "before_cursor_execute", count)
            try:
                assert client.get(url).status_code == 200
            finally:
                event.remove(db.engine, "before_cursor_execute", count)
            found.append(len(statements))
        return found

    before = counts()
    populate(Scale(users=60, clinics=2, countries=1, attempts=600, certificates=0), seed=2,
             tag="b", existing=data)
    assert db.session.scalar(select(db.func.count(Attempt.id))) == 680
    assert counts() == before


def test_attempts_at_an_earlier_case_list_are_left_out_and_said_so(client, retaken, login_as):
    """A case taken out of the exercise after attempts were made (as when an exam case is
    removed from a practice set): those attempts' scores no longer line up with the current
    cases, so they are counted as left out rather than mixed in."""
    from app.quizzes.models import ExerciseCase

    before = exercise_statistics(retaken.id, Population.ALL)
    assert (before.analysed, before.left_out) == (9, 0)
    dropped = retaken.cases[2].case_id
    db.session.delete(db.session.get(ExerciseCase, (retaken.id, dropped)))
    db.session.commit()
    trainee = db.session.scalars(select(Attempt)).first().user
    _take(retaken, trainee, (1, 0), [link.case_id for link in retaken.cases])
    after = exercise_statistics(retaken.id, Population.ALL)
    assert (after.analysed, after.left_out) == (1, 9)
    assert [c.attempts for c in after.cases] == [1, 1]
    login_as(Role.TRAINER)
    page = client.get(f"/training/manage/{retaken.id}/statistics?attempts=all")
    assert "9 more left out" in page.get_data(as_text=True)


def test_migration_fills_compact_scores_from_the_stored_scores(retaken):
    from flask_migrate import downgrade, upgrade

    from app import MIGRATIONS_DIR

    kept = {a.id: (a.case_set, a.case_scores) for a in db.session.scalars(select(Attempt))}
    # Nine ended attempts with scores; the abandoned one has none.
    assert sorted(scores is None for _, scores in kept.values()) == [False] * 9 + [True]
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="6491851cb4c1")
    upgrade(directory=str(MIGRATIONS_DIR))
    again = {a.id: (a.case_set, a.case_scores) for a in db.session.scalars(select(Attempt))}
    assert again == kept


def test_rescoring_updates_the_case_statistics(retaken):
    """A changed read after the fact (as when a reference read is corrected and
    `quizzes rescore` runs): the compact scores, and so the statistics, follow."""
    from app.quizzes.models import AttemptAnswer
    from app.quizzes.rescoring import rescore

    before = exercise_statistics(retaken.id, Population.ALL)
    third = retaken.cases[2].case_id
    wrong = [a for a in db.session.scalars(select(AttemptAnswer).where(
        AttemptAnswer.case_id == third)) if a.answers == NORMAL]
    assert wrong
    for answer in wrong:
        answer.answers = TB
    db.session.commit()
    assert rescore(retaken.id).attempts == 9
    after = exercise_statistics(retaken.id, Population.ALL)
    assert before.cases[2].share_correct == pytest.approx(6 / 9)
    assert after.cases[2].share_correct == 1.0
    assert after.cases[2].discrimination is None and "right" in after.cases[2].note
    assert [c.share_correct for c in after.cases[:2]] == [c.share_correct
                                                         for c in before.cases[:2]]
