"""The result and review pages speak to a reader: named figures in the table's units, why a
figure is missing, no internal keys; the ROC figure only when there is a curve; the case
list with thumbnails, outcomes, review links and other readers' calls."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pytest
from PIL import Image
from sqlalchemy import event

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.extensions import db
from app.quizzes import wording
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.figures import roc_figure, roc_plot
from app.quizzes.models import Attempt
from app.quizzes.peers import peer_calls, rebuild_peer_calls
from app.quizzes.scoring.criteria import CriterionResult
from app.quizzes.scoring.grades import GRADES
from app.quizzes.services import start_attempt, submit_attempt
from app.schemes.registry import get_scheme
from tests.dicom_factory import cr_dataset, to_bytes
from tests.test_attempts import published_tb_case

TB_READ = {"classification": "abnormal_tb", "tb_likelihood": 5, "findings": ["cavitary_lesion"]}
NORMAL_READ = {"classification": "normal", "tb_likelihood": 1}


def likelihood_case(trainer, seed: int, *, tb: bool) -> Case:
    """A published case read with the TB screening scheme (classification + likelihood)."""
    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    [result] = import_files([Source(f"l{seed}.dcm", lambda: data)], actor=trainer,
                            options=ImportOptions()).results
    case = db.session.get(Case, result.case_id)
    save_read(case, author=trainer, scheme=get_scheme("tb_screening"),
              answers={**(TB_READ if tb else NORMAL_READ), "tb_likelihood": 5 if tb else 1},
              marks=[])
    case.teaching_notes = f"teaching note {seed}"
    case.status = CaseStatus.PUBLISHED.value
    db.session.commit()
    return case


def take(exercise, user, reads: list[dict | None]) -> Attempt:
    """An ended attempt with ``reads`` in the exercise's case order (None: left blank)."""
    attempt = start_attempt(exercise, user)
    by_case = {link.case_id: n for n, link in enumerate(exercise.cases)}
    for case_id in attempt.case_order:
        read = reads[by_case[case_id]]
        if read is not None:
            save_answer(attempt, user, case_id, read, [])
    return submit_attempt(attempt, user)


class _Text(HTMLParser):
    """What a reader sees: text outside scripts and styles, and alt/title texts."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in ("alt", "title", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def assert_reads_well(text: str) -> None:
    assert not re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", text), text
    assert not re.search(r"-?\binf\b|\bnan\b|infinity", text, re.IGNORECASE), text
    assert "not defined" not in text.lower() and "undefined" not in text.lower(), text


# --- the reader's words (pure) ---------------------------------------------------------

def test_values_are_in_the_tables_units_and_never_nan_or_infinite():
    assert wording.format_value("sensitivity", 0.9) == "90 %"
    assert wording.format_value("kappa", 0.4211) == "0.42"
    assert wording.format_value("mean_reading_seconds", 41.4) == "41 s"
    for bad in (float("nan"), float("inf"), float("-inf"), None):
        assert wording.format_value("auc", bad) is None
    assert wording.interval_text("sensitivity", (0.4, 0.8)) == "95 % CI 40 to 80 %"
    assert wording.interval_text("auc", (0.61, 0.88)) == "95 % CI 0.61 to 0.88"


def test_pass_criteria_are_said_in_percent_and_words():
    failed = CriterionResult("sensitivity", 0.9, None, 0.5, False, "x")
    assert wording.criterion_sentence(failed, {}) == (
        "Sensitivity (TB-suggestive) 50 % is below the required 90 %.")
    kappa = CriterionResult("kappa", 0.6, None, 0.42, False, "x")
    assert wording.criterion_sentence(kappa, {}) == "Cohen's kappa 0.42 is below the required 0.60."
    missing = CriterionResult("auc", 0.7, None, None, False, "not defined: x")
    said = wording.criterion_sentence(missing, {"auc": "ROC needs ..."})
    assert said.startswith("ROC AUC could not be computed") and "likelihood rating" in said
    finding = CriterionResult("finding_sensitivity:cavitary_lesion", 0.5, None, 0.25, False, "")
    assert wording.criterion_sentence(finding, {}, {"cavitary_lesion": "Cavitary lesion"}) == (
        "Sensitivity for Cavitary lesion 25 % is below the required 50 %.")


def test_notes_lose_internal_keys_and_infinities():
    notes = wording.reader_notes([
        "no marks at all: every lesion rates -inf, so AFROC/wAFROC are 0.5",
        "per-finding sensitivity is not defined for findings absent from every reference "
        "read: cavitary_lesion, pleural_effusion",
        "auc_variance is not defined: DeLong's variance needs at least two cases",
    ], {"cavitary_lesion": "Cavitary lesion"})
    assert len(notes) == 2  # "<metric> is not defined" notes: the table says why instead
    assert notes[0] == ("No marks at all: every lesion counts as unmarked (below any mark), "
                        "so AFROC/wAFROC are 0.5.")
    assert notes[1] == ("Per-finding sensitivity is left out for findings that no reference "
                        "read names: Cavitary lesion; pleural effusion.")
    assert_reads_well(" ".join(notes))


def test_grade_reasons_name_options_by_their_labels():
    labels = {"normal": "Normal", "abnormal_tb": "Abnormal, suggestive of TB"}
    assert wording.plain("classification 'abnormal_tb', reference 'normal'", labels) == (
        "classification 'Abnormal, suggestive of TB', reference 'Normal'")


def test_roc_auc_not_computed_is_explained():
    assert wording.not_computed("auc", "ROC needs ... (0 and 3 here)") == (
        "ROC AUC needs at least one abnormal and one normal case with a likelihood rating.")
    assert "does not ask for one" in wording.not_computed("auc", None,
                                                          scheme_has_likelihood=False)


def test_every_grade_has_a_sentence():
    for grade in GRADES:
        meaning = wording.grade_meaning(grade)
        assert meaning.startswith(f"Grade {grade}:") and len(meaning) > 30
    assert "changes the sputum decision" in wording.grade_meaning("3b")
    assert "does not change" in wording.grade_meaning("2a")


def test_answers_compare_regardless_of_order_and_empty_values():
    assert wording.same_answer(["a", "b"], ["b", "a"])
    assert wording.same_answer(None, [])
    assert not wording.same_answer({"pass": True}, {"pass": False})
    assert wording.same_answer({"pass": True, "reason": ""}, {"pass": True})
    assert not wording.same_answer("normal", "abnormal")


# --- rendered edge cases -----------------------------------------------------------------

@pytest.fixture
def trainer(app, make_user):
    return make_user(Role.TRAINER, username="expert")


def _exercise(cases, scheme="tb_screening", criteria=(("sensitivity", 0.9),
                                                       ("specificity", 0.8), ("auc", 0.7))):
    return create_exercise(title="Edge", kind="practice", scheme_key=scheme,
                           case_ids=[c.id for c in cases], actor=None, criteria=list(criteria))


@pytest.mark.parametrize("edge", ["all_normal", "no_likelihood", "all_blank", "perfect",
                                  "all_tb_wrong"])
def test_result_page_reads_well_in_edge_cases(client, trainer, login_as, edge):
    if edge == "no_likelihood":
        cases = [published_tb_case(trainer, 700), published_tb_case(trainer, 701)]
        db.session.commit()
        exercise = _exercise(cases, scheme="ds3030")
        reads = [{"overall": "normal"}, {"overall": "abnormal",
                                         "findings": ["cavitary_lesion"]}]
    else:
        tb = {"all_normal": [False, False, False], "all_blank": [True, False],
              "perfect": [True, True, False, False], "all_tb_wrong": [True, True]}[edge]
        cases = [likelihood_case(trainer, 710 + n, tb=t) for n, t in enumerate(tb)]
        exercise = _exercise(cases)
        reads = {
            "all_normal": [NORMAL_READ, TB_READ, {"classification": "normal"}],
            "all_blank": [None, {"tb_likelihood": 3}],  # a likelihood alone is blank
            "perfect": [TB_READ, TB_READ, NORMAL_READ, NORMAL_READ],
            "all_tb_wrong": [NORMAL_READ, NORMAL_READ],
        }[edge]
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(exercise, user, reads)
    page = client.get(f"/training/attempts/{attempt.id}/result")
    assert page.status_code == 200
    text = visible_text(page.get_data(as_text=True))
    assert "Your scores" in text and "Your cases" in text
    assert_reads_well(text)
    if edge in ("all_normal", "all_tb_wrong"):
        assert ("ROC AUC needs at least one abnormal and one normal case with a likelihood "
                "rating.") in text
    if edge == "no_likelihood":  # DS-3030, its optional likelihood not given: no ROC figure
        assert 'data-testid="roc-figure"' not in page.get_data(as_text=True)
        assert ("ROC AUC could not be computed, so it cannot pass. ROC AUC needs TB likelihood "
                "ratings, and none was given in this attempt.") in text
    if edge == "perfect":
        assert "Passed" in text and "100 %" in text
    else:
        assert "Not passed" in text


# --- the ROC figure ------------------------------------------------------------------------

def test_roc_figure_only_when_there_is_a_curve(client, trainer, login_as):
    mixed = [likelihood_case(trainer, 720 + n, tb=n < 2) for n in range(4)]
    normal = [likelihood_case(trainer, 730 + n, tb=False) for n in range(2)]
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    good = take(_exercise(mixed, criteria=()), user,
                [TB_READ, {**NORMAL_READ, "tb_likelihood": 2}, NORMAL_READ, TB_READ])
    page = client.get(f"/training/attempts/{good.id}/result").get_data(as_text=True)
    assert 'data-testid="roc-figure"' in page
    png = client.get(f"/training/attempts/{good.id}/roc.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")

    flat = take(_exercise(normal, criteria=()), user, [NORMAL_READ, NORMAL_READ])
    page = client.get(f"/training/attempts/{flat.id}/result").get_data(as_text=True)
    assert 'data-testid="roc-figure"' not in page and 'data-testid="roc-missing"' in page
    refused = client.get(f"/training/attempts/{flat.id}/roc.png")
    assert refused.status_code == 404
    assert "at least one abnormal and one normal case" in refused.get_data(as_text=True)


def test_roc_of_an_attempt_in_progress_is_refused_with_a_reason(client, trainer, login_as):
    cases = [likelihood_case(trainer, 740 + n, tb=n == 0) for n in range(2)]
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(_exercise(cases, criteria=()), user)
    response = client.get(f"/training/attempts/{attempt.id}/roc.png")
    assert response.status_code == 409 and "still in progress" in response.get_data(as_text=True)
    assert client.get("/training/attempts/999999/roc.png").status_code == 404


def test_roc_axis_labels_stay_inside_the_figure():
    truth, ratings = [True, True, False, False, True], [5, 3, 2, 1, 4]
    fig = roc_plot(truth, ratings, 0.9, (0.0, 0.67))
    assert fig.get_layout_engine() is not None  # constrained layout makes room for labels
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    for label in (fig.axes[0].xaxis.label, fig.axes[0].yaxis.label):
        box = label.get_window_extent(renderer)
        assert box.x0 >= frame.x0 and box.y0 >= frame.y0, label.get_text()
        assert box.x1 <= frame.x1 and box.y1 <= frame.y1, label.get_text()
    # The saved PNG: a white margin all round (nothing cut at an edge), and the y label's
    # ink in the left band, beside the axis.
    image = Image.open(io.BytesIO(roc_figure(truth, ratings, 0.9, (0.0, 0.67)))).convert("L")
    width, height = image.size
    pixels = image.load()
    edges = [pixels[x, y] for x in range(width) for y in (0, 1, height - 2, height - 1)]
    edges += [pixels[x, y] for y in range(height) for x in (0, 1, width - 2, width - 1)]
    assert min(edges) > 200
    left_band = [pixels[x, y] for x in range(2, 30) for y in range(height // 4, height * 3 // 4)]
    assert min(left_band) < 100


# --- the case list -------------------------------------------------------------------------

def test_case_list_thumbnails_outcomes_and_review_links(client, trainer, login_as):
    cases = [likelihood_case(trainer, 750 + n, tb=n == 0) for n in range(2)]
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(_exercise(cases, criteria=()), user, [NORMAL_READ, None])
    html = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert html.count('data-testid="case-row"') == 2
    thumbnails = re.findall(r'<img class="thumb" src="([^"]+)"', html)
    assert len(thumbnails) == 2
    for url, case in zip(thumbnails, [db.session.get(Case, i) for i in attempt.case_order],
                         strict=True):
        # By image: the library case id is not in the address.
        assert url.startswith(f"/cases/images/{case.images[0].id}/thumbnail")
        assert not re.search(rf"/cases/{case.id}\b", url)
        assert client.get(url).status_code == 200
    text = visible_text(html)
    assert "Wrong sputum decision" in text and "Not answered (counts as wrong)" in text
    assert "Review case 1" in text and "Review case 2" in text
    assert "other readers called" not in text  # nobody else has read these cases


def test_exam_case_list_shows_no_outcome_review_or_peers(client, trainer, login_as, make_user):
    cases = [likelihood_case(trainer, 760 + n, tb=n == 0) for n in range(2)]
    exam = create_exercise(title="Exam", kind="exam", scheme_key="tb_screening",
                           case_ids=[c.id for c in cases], actor=None)
    for _ in range(5):
        take(exam, make_user(Role.TRAINEE_RADIOLOGIST), [TB_READ, NORMAL_READ])
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(exam, user, [TB_READ, NORMAL_READ])
    text = visible_text(client.get(f"/training/attempts/{attempt.id}/result")
                        .get_data(as_text=True))
    assert "Your cases" in text
    assert "Correct sputum decision" not in text and "Review case" not in text
    assert text.count("Not shown for this exercise") == 2  # an exam's default: never
    assert "other readers called" not in text


def test_other_readers_calls_need_five_distinct_readers_across_exercises(
        client, trainer, login_as, make_user):
    tb_case, normal_case = (likelihood_case(trainer, 770, tb=True),
                            likelihood_case(trainer, 771, tb=False))
    first, second = _exercise([tb_case, normal_case], criteria=()), _exercise(
        [tb_case, normal_case], criteria=())
    # Four readers; one of them twice: four readers, not five.
    readers = [make_user(Role.TRAINEE_RADIOLOGIST) for _ in range(4)]
    take(first, readers[0], [TB_READ, NORMAL_READ])
    take(first, readers[1], [NORMAL_READ, TB_READ])
    take(second, readers[2], [TB_READ, None])  # a blank is no call
    take(second, readers[3], [TB_READ, NORMAL_READ])
    take(second, readers[0], [TB_READ, NORMAL_READ])
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    mine = take(first, user, [TB_READ, NORMAL_READ])
    page = client.get(f"/training/attempts/{mine.id}/result").get_data(as_text=True)
    assert "other readers called" not in page
    # A fifth reader, in the other exercise: the TB case now has five readers.
    take(second, make_user(Role.TRAINEE_RADIOLOGIST), [NORMAL_READ, NORMAL_READ])
    page = visible_text(client.get(f"/training/attempts/{mine.id}/result")
                        .get_data(as_text=True))
    # Readers' shares of TB calls: 1, 0, 1, 1, 0 -> 60 %; the normal case: 4 readers.
    assert "60 % of 5 other readers called this case abnormal" in page
    assert page.count("other readers called") == 1


def test_other_readers_calls_are_one_aggregate_query(app, trainer, make_user):
    cases = [likelihood_case(trainer, 780 + n, tb=n == 0) for n in range(3)]
    exercise = _exercise(cases, criteria=())
    for _ in range(6):
        take(exercise, make_user(Role.TRAINEE_RADIOLOGIST),
             [TB_READ, NORMAL_READ, NORMAL_READ])
    me = make_user(Role.TRAINEE_RADIOLOGIST).id
    wanted = {c.id: n == 0 for n, c in enumerate(cases)}
    ids = list(wanted)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        calls = peer_calls(me, wanted)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Read from the running counts: no attempt is read, however many ended.
    assert len(statements) == 1 and "attempt" not in statements[0]
    assert calls[ids[0]].readers == 6 and calls[ids[0]].share_abnormal == 1.0
    assert calls[ids[1]].share_abnormal == 0.0
    # Recounted from the attempts' kept calls, the figures are the same.
    rebuild_peer_calls()
    assert peer_calls(me, wanted) == calls


# --- the review page -----------------------------------------------------------------------

def test_review_compares_reads_explains_the_grade_and_walks_the_cases(client, trainer,
                                                                      login_as):
    cases = [likelihood_case(trainer, 790 + n, tb=n == 0) for n in range(3)]
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = take(_exercise(cases, criteria=()), user, [NORMAL_READ, NORMAL_READ, None])
    first_tb = 1 + [db.session.get(Case, i).reference_tb_positive
                    for i in attempt.case_order].index(True)
    html = client.get(f"/training/attempts/{attempt.id}/review/{first_tb}").get_data(
        as_text=True)
    text = visible_text(html)
    assert 'data-testid="compare-table"' in html
    assert "Your read" in text and "Reference read" in text
    assert "✗ differs" in text and "✓ same" not in text.split("Classification")[1][:80]
    assert "Normal" in text and "Abnormal \N{EN DASH} suggestive of TB" in text
    assert "Grade 3b: a major discrepancy" in text
    assert "Back to the result" in text
    assert ("Next case" in text) == (first_tb < 3) and ("Previous case" in text) == (
        first_tb > 1)
    assert_reads_well(text)
    for bad in (0, 4):
        response = client.get(f"/training/attempts/{attempt.id}/review/{bad}")
        assert response.status_code == 404
        assert "no such case" in response.get_data(as_text=True)


def test_review_next_and_previous_skip_a_case_whose_key_is_withheld(client, trainer, login_as):
    cases = [likelihood_case(trainer, 840 + n, tb=n == 0) for n in range(4)]
    first = create_exercise(title="First", kind="exam", scheme_key="tb_screening",
                            case_ids=[c.id for c in cases[:3]], actor=None, shuffle=False,
                            review={"reference": "after_submit", "correctness": "after_submit"})
    renewal = create_exercise(title="Renewal", kind="exam", scheme_key="tb_screening",
                              case_ids=[cases[1].id, cases[3].id], actor=None)
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    start_attempt(renewal, user)  # holds case 2 of the first exam: its key stays withheld
    ended = take(first, user, [TB_READ, NORMAL_READ, NORMAL_READ])
    assert client.get(f"/training/attempts/{ended.id}/review/2").status_code == 403
    html = client.get(f"/training/attempts/{ended.id}/review/1").get_data(as_text=True)
    assert re.search(rf'href="/training/attempts/{ended.id}/review/3">Next case<', html)
    assert "Previous case" not in html
    html = client.get(f"/training/attempts/{ended.id}/review/3").get_data(as_text=True)
    assert re.search(rf'href="/training/attempts/{ended.id}/review/1">Previous case<', html)
    assert "Next case" not in html
    result = client.get(f"/training/attempts/{ended.id}/result").get_data(as_text=True)
    assert "Review case 1" in result and "Review case 3" in result
    assert "Review case 2" not in result
