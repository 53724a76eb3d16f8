"""The training area in French and Spanish through the pages' own forms: a practice set
started, answered and submitted, its result's sentences (verdict reasons, outcomes, notes),
the refusal to start again during the cool-down, the exercise form's labels and its
refusals, the statistics and review pages; English refusals stay English for the API."""

from __future__ import annotations

import re

import pytest
from flask_babel import force_locale

from app.auth.models import User
from app.auth.roles import Role
from app.extensions import db
from app.quizzes import wording
from app.quizzes.exercises import create_exercise, edit_exercise
from app.quizzes.models import Attempt, Exercise
from app.quizzes.services import AttemptError
from tests.conftest import csrf_token
from tests.forms import submit_form, submit_html
from tests.test_attempts import cases, save_url  # noqa: F401 (cases: fixture)
from tests.test_results_page import take, visible_text

# What the pages say, per language. French puts a no-break space before ":" ";" "?" "!".
WORDS = {
    "fr": {
        "submit": "Soumettre toutes les réponses",
        "finish": "Soumettre et terminer",
        "submitted": "Vos réponses sont soumises.",
        "below": "Sensibilité (évocateur de tuberculose) 0 % est inférieur au minimum requis "
                 "de 90 %.",
        "uncomputed": "Spécificité : calcul impossible, ce critère ne peut donc pas être "
                      "rempli. Non calculé : tous les cas de référence sont évocateurs de "
                      "tuberculose.",
        "outcome": "Décision d'examen des crachats erronée",
        "cool_down": r"De nouveau disponible le .+ \(délai après une tentative\)\.",
        "review": "Correction du cas 1 sur 2",
        "grade": "Grade 3b : discordance majeure (normal et anormal inversés) qui change la "
                 "décision d'examen des crachats (cliniquement significative).",
    },
    "es": {
        "submit": "Enviar todas las respuestas",
        "finish": "Enviar y terminar",
        "submitted": "Sus respuestas se han enviado.",
        "below": "Sensibilidad (sugestivo de TB) 0 % está por debajo del mínimo exigido de "
                 "90 %.",
        "uncomputed": "Especificidad: no se pudo calcular, por lo que este criterio no puede "
                      "cumplirse. No calculado: todos los casos de referencia son sugestivos "
                      "de TB.",
        "outcome": "Decisión de estudio de esputo errónea",
        "cool_down": r"Disponible de nuevo el .+ \(espera tras un intento\)\.",
        "review": "Revisión del caso 1 de 2",
        "grade": "Grado 3b: discrepancia mayor (normal y anormal intercambiados) que cambia la "
                 "decisión de estudio de esputo (clínicamente significativa).",
    },
}


def text_of(html: str) -> str:
    """The page's visible text, no-break spaces as spaces, runs of white space as one."""
    return " ".join(visible_text(html).replace("\u00a0", " ").split())


def speaking(user: User, language: str) -> User:
    user.language = language
    db.session.commit()
    return user


@pytest.fixture
def graded_practice(cases):  # noqa: F811 (the fixture imported above)
    return create_exercise(title="Graded practice", kind="practice", scheme_key="ds3030",
                           case_ids=[c.id for c in cases[:2]], actor=None, cooldown_hours=24,
                           criteria=[("sensitivity", 0.9), ("specificity", 0.8)])


def take_in(client, exercise: Exercise, language: str, answers: dict) -> tuple[Attempt, str]:
    """Start from the training list's form, answer every case (the page's autosave), submit
    from the case page and the summary, as a reader of ``language`` does: the result page."""
    started = submit_form(client, "/training/", action=f"/exercises/{exercise.id}/start")
    assert started.status_code == 302, started.status_code
    case_page = started.headers["Location"]
    attempt_id = int(case_page.split("/attempts/")[1].split("/")[0])
    attempt = db.session.get(Attempt, attempt_id)
    token = csrf_token(client, case_page)
    for position in range(1, len(attempt.case_order) + 1):
        saved = client.post(save_url(attempt_id, position), json={"answers": answers,
                                                                   "marks": []},
                            headers={"X-CSRFToken": token})
        assert saved.status_code == 200, saved.get_json()
    words = WORDS[language]
    summary = submit_form(client, case_page, button=words["submit"])
    assert summary.status_code == 200, summary.status_code
    done = submit_html(client, summary.get_data(as_text=True),
                       f"/training/attempts/{attempt_id}/summary", button=words["finish"])
    assert done.status_code == 302, done.status_code
    result = client.get(done.headers["Location"])
    assert result.status_code == 200
    return attempt, result.get_data(as_text=True)


@pytest.mark.parametrize("language", ["fr", "es"])
def test_a_practice_set_taken_and_its_result_in_the_readers_language(
        client, login_as, graded_practice, language):
    trainee = speaking(login_as(Role.TRAINEE_RADIOLOGIST), language)
    words = WORDS[language]
    attempt, html = take_in(client, graded_practice, language, {"overall": "normal"})
    assert f'<html lang="{language}"' in html
    text = text_of(html)
    assert words["submitted"] in text  # the flash message
    assert words["below"] in text  # a criterion's verdict, with the table's units
    assert words["uncomputed"] in text  # why a figure is missing, in one sentence
    assert words["outcome"] in text  # the case list's outcome column
    assert "below the required" not in text and "Not computed" not in text
    # The review of a case: its heading and the grade in words.
    review = text_of(client.get(f"/training/attempts/{attempt.id}/review/1")
                     .get_data(as_text=True))
    assert words["review"] in review and words["grade"] in review
    # Starting again during the cool-down: refused in the reader's language and time zone.
    listing = text_of(client.get("/training/").get_data(as_text=True))
    assert re.search(words["cool_down"], listing), listing
    assert trainee.language == language


def test_the_exercise_form_and_its_refusals_in_french(client, login_as, cases):  # noqa: F811
    speaking(login_as(Role.TRAINER), "fr")
    page = text_of(client.get("/training/manage").get_data(as_text=True))
    assert "Réussite : kappa minimum" in page and "Nouvel exercice" in page
    assert "Ce que voient les apprenants, et quand" in page

    def create(**fields):
        return submit_form(client, "/training/manage", button="Créer l'exercice",
                           fields={"title": "X", "kind": "exam", "scheme": "ds3030", **fields})

    bad = create(min_kappa="7", cases=[str(cases[0].id)])
    assert bad.status_code == 400
    assert "Saisissez un kappa de 0 à 1." in text_of(bad.get_data(as_text=True))
    nothing = create()
    assert nothing.status_code == 400
    assert "Choisissez au moins un cas, ou donnez une règle." in text_of(
        nothing.get_data(as_text=True))
    # A refusal of the case draw (selection rules), with what the trainer wrote.
    rule = create(rule_total="2", rule_findings="nonsense")
    assert rule.status_code == 400
    assert ("Écrivez 'nonsense' sous la forme d'une anomalie et d'un nombre de cas, "
            "p. ex. « Lésion cavitaire : 5 ».") in text_of(rule.get_data(as_text=True))
    # A refusal from the database's side: a case already in an exam is not for practice.
    clash = create(kind="practice", cases=[str(cases[2].id)])
    assert clash.status_code == 409
    assert (f"Le cas {cases[2].id} figure dans la banque d'examen : les séries "
            "d'entraînement et les examens ne partagent jamais de cas.") in text_of(
        clash.get_data(as_text=True))
    assert db.session.query(Exercise).count() == 0


def test_an_attempted_exercise_says_why_it_cannot_change_yet_the_api_stays_english(
        app, client, login_as, make_user, graded_practice):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username="reader")
    take(graded_practice, trainee, [{"overall": "abnormal"}] * 2)
    trainer = speaking(login_as(Role.TRAINER), "fr")
    manage = text_of(client.get("/training/manage").get_data(as_text=True))
    assert ("Non modifiable : il a déjà été tenté (1 tentative) : le modifier noterait les "
            "apprenants selon des règles différentes ; dupliquez-le pour en faire une version "
            "modifiée.") in manage
    stats = text_of(client.get(f"/training/manage/{graded_practice.id}/statistics")
                    .get_data(as_text=True))
    assert "Graded practice : statistiques" in stats and "Indice de facilité" in stats
    assert "Calculé sur 1 premières tentatives" in stats
    # Figures with the French decimal comma: the mean score, the review threshold.
    assert re.search(r"Score moyen \d,\d cas justes sur 2", stats), stats
    assert re.search(r"discrimination inférieure à \d,\d\d\.", stats), stats
    # One attempt cannot say how consistent the cases are: the note says why, in French.
    assert "données insuffisantes : moins de 3 tentatives" in stats
    assert "not enough data" not in stats
    # The service's refusal: English in its message (API, command line, logs), the
    # reader's language in its sentence (the page).
    with app.test_request_context(headers={"Accept-Language": "fr"}), \
            pytest.raises(AttemptError) as refused:
        edit_exercise(graded_practice, actor=None, title="Y", kind="practice",
                      scheme_key="ds3030", case_ids=[], time_limit_minutes=None,
                      max_attempts=None, cooldown_hours=0, opens_at=None, closes_at=None)
    assert str(refused.value) == (
        "'Graded practice' cannot be edited: it has been attempted (1 attempt): changing it "
        "would score trainees on different terms; clone it to make a changed version")
    assert refused.value.sentence.startswith(
        "'Graded practice' ne peut pas être modifié\u00a0: il a déjà été tenté (1 tentative)")
    assert trainee.id != trainer.id


def test_figures_in_the_result_are_written_as_the_language_writes_numbers(app):
    with app.test_request_context():
        assert wording.format_value("kappa", 0.61) == "0.61"
        assert wording.interval_text("sensitivity", (0.4, 0.8)) == "95 % CI 40 to 80 %"
        assert wording.grade_meaning("U").startswith("Grade U: not answered.")
        for language, kappa, interval in (
                ("fr", "0,61", "IC à 95\u00a0% de 40 à 80 %"),
                ("es", "0,61", "IC del 95 % de 40 a 80 %")):
            with force_locale(language):
                assert wording.format_value("kappa", 0.61) == kappa
                assert wording.format_value("sensitivity", 0.9) == "90 %"
                assert wording.interval_text("sensitivity", (0.4, 0.8)) == interval


@pytest.mark.parametrize(("english", "language", "shown"), [
    ("abnormal image read as normal", "en", "abnormal image read as normal"),
    ("abnormal image read as normal", "fr", "image anormale lue comme normale"),
    ("finding(s) missed: fibrosis, cavitary_lesion", "es",
     "hallazgo(s) omitido(s): Fibrosis, Lesión cavitada"),
    ("finding(s) missed: fibrosis, cavitary_lesion", "en",
     "finding(s) missed: Fibrosis, Cavitary lesion"),
    ("criterion 'collimation': pass, reference fail", "fr",
     "critère «\u00a0Collimation\u00a0»\u00a0: conforme, référence non conforme"),
    ("something the scoring says one day", "fr", "something the scoring says one day"),
])
def test_grade_reasons_are_said_in_the_readers_language_with_the_schemes_labels(
        app, english, language, shown):
    """The grade reasons stored with each attempt's scores (English) are shown in the
    reader's language, finding and criterion keys named by the labels the page uses."""
    labels = {"en": {"fibrosis": "Fibrosis", "cavitary_lesion": "Cavitary lesion",
                     "collimation": "Collimation"},
              "es": {"fibrosis": "Fibrosis", "cavitary_lesion": "Lesión cavitada"},
              "fr": {"collimation": "Collimation"}}[language]
    with app.test_request_context(), force_locale(language):
        assert wording.grade_reason(english, labels) == shown
