"""Reporting schemes in English, French and Spanish: labels and help per language inside the
scheme JSON, validated strictly; the DS-3030's official English wording kept beside its
translation; and reads and scores that never depend on the language of the form."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, ReferenceRead
from app.extensions import db
from app.i18n import LANGUAGES
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from app.schemes.definitions import parse_scheme
from app.schemes.errors import SchemeError
from app.schemes.models import ReportingScheme
from app.schemes.readform import answers_from_form
from app.schemes.registry import add_scheme, builtin_schemes, get_scheme
from app.schemes.translations import MAX_HELP, SCHEME_LANGUAGES
from tests.conftest import csrf_token, login
from tests.forms import fill, find_form, form_fields, submit_form
from tests.test_attempts import cases, post_start, press_submit, save_url  # noqa: F401
from tests.test_reference_read_page import _import

NBSP = "\u00a0"


def _speaks(user: User, language: str) -> User:
    user.language = language
    db.session.commit()
    return user


def _tiny(**extra: Any) -> dict[str, Any]:
    """A small valid scheme with one scale item, one grouped multi item."""
    return {
        "key": "tiny", "version": 1, "name": "Tiny",
        "items": [
            {"key": "sure", "type": "scale", "label": "Sure", "min": 1, "max": 3,
             "anchors": {"1": "no", "3": "yes"}},
            {"key": "seen", "type": "multi", "label": "Seen",
             "groups": [{"key": "g", "label": "Group"}],
             "options": [{"value": "a", "label": "A", "group": "g"}]},
        ],
        **extra,
    }


# ---- the format ----------------------------------------------------------------------------


def test_the_schemes_languages_are_the_portals():
    assert set(SCHEME_LANGUAGES) == set(LANGUAGES) - {"en"}


@pytest.mark.parametrize("key", ["ds3030", "tb_screening", "image_quality"])
def test_every_builtin_label_has_a_french_and_a_spanish_translation(key):
    scheme = builtin_schemes()[key]
    parts: list[Any] = [*scheme.items]
    for item in scheme.items:
        parts += [*item.options, *item.groups]
    for language in SCHEME_LANGUAGES:
        assert scheme.is_translated("name", language)
        untranslated = [p.label for p in parts if not p.is_translated("label", language)]
        assert untranslated == []
        for item in scheme.items:
            assert {v: item.anchor_in(v, language) != text for v, text in item.anchors.items()
                    } == dict.fromkeys(item.anchors, True)


def test_ds3030_finding_names_as_radiologists_say_them():
    scheme = builtin_schemes()["ds3030"]
    assert scheme.official_language == "en"
    findings = {o.value: o for o in scheme.item("findings").options}
    assert findings["infiltrate"].label_in("fr") == "Infiltrat ou condensation"
    assert findings["cavitary_lesion"].label_in("fr") == "Lésion cavitaire"
    assert findings["hilar_adenopathy"].label_in("fr") == "Adénopathies hilaires/médiastinales"
    assert findings["pleural_effusion"].label_in("fr") == "Épanchement pleural"
    assert findings["miliary"].label_in("fr") == "Aspect miliaire"
    assert findings["infiltrate"].label_in("es") == "Infiltrado o consolidación"
    assert findings["cavitary_lesion"].label_in("es") == "Lesión cavitada"
    assert findings["pleural_effusion"].label_in("es") == "Derrame pleural"
    assert findings["miliary"].label_in("es") == "Patrón miliar"
    # French typography: a no-break space before the colon.
    group = scheme.item("findings").groups[1]
    assert f"nécessaires{NBSP}:" in group.label_in("fr")
    # English is the label itself, and the fallback of a language without a translation.
    assert findings["infiltrate"].label_in("en") == "Infiltrate or consolidation"
    assert findings["infiltrate"].label_in("pt") == "Infiltrate or consolidation"


def test_translations_and_help_are_read_and_fall_back_to_english():
    scheme = parse_scheme(_tiny(
        help="Read it all.", translations={"fr": {"name": "Minuscule"}},
        items=[{"key": "sure", "type": "scale", "label": "Sure", "min": 1, "max": 3,
                "help": "How sure", "anchors": {"1": "no", "3": "yes"},
                "translations": {"es": {"label": "Seguro", "help": "Cuán seguro",
                                        "anchors": {"3": "sí"}}}}]))
    item = scheme.item("sure")
    assert scheme.name_in("fr") == "Minuscule" and scheme.name_in("es") == "Tiny"
    assert scheme.help == "Read it all." and scheme.help_in("es") == "Read it all."
    assert (item.label_in("es"), item.help_in("es"), item.help_in("fr")) == (
        "Seguro", "Cuán seguro", "How sure")
    assert (item.anchor_in("3", "es"), item.anchor_in("1", "es")) == ("sí", "no")
    # A translation changes no part of what is compared or scored.
    assert item == replace(item, translations={})


def _with(path: str, value: Any) -> dict[str, Any]:
    """The tiny scheme with ``value`` put at ``path`` ("items.1.options.0.translations")."""
    data = copy.deepcopy(_tiny())
    where: Any = data
    *parents, last = path.split(".")
    for step in parents:
        where = where[int(step)] if step.isdigit() else where[step]
    where[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "message"), [
    ("translations", {"de": {"name": "Winzig"}}, r"'de' is not a language of the portal"),
    ("translations", {"en": {"name": "Tiny"}}, "the English text is the part's own"),
    ("translations", ["fr"], "'translations' must be an object"),
    ("translations", {"fr": "Minuscule"}, "the 'fr' translation must be an object"),
    ("translations", {"fr": {"label": "x"}}, r"'label' cannot be translated here \(only"),
    ("items.0.translations", {"fr": {"label": 3}}, "item 'sure', 'fr', 'label': must be text"),
    ("items.0.translations", {"fr": {"label": "  "}}, "must be text of 1 to 500 characters"),
    ("items.0.translations", {"fr": {"label": "x" * 501}}, "must be text of 1 to 500"),
    ("items.0.translations", {"fr": {"help": "x" * (MAX_HELP + 1)}}, "1 to 2000 characters"),
    ("items.0.translations", {"fr": {"anchors": {"2": "moyen"}}}, "the scale has no anchor '2'"),
    ("items.0.translations", {"fr": {"anchors": ["non"]}}, "'anchors' must be an object"),
    ("items.0.translations", {"es": {"colour": "rojo"}}, "'colour' cannot be translated here"),
    ("items.1.options.0.translations", {"xx": {"label": "A"}}, "item 'seen', option 'a': 'xx'"),
    ("items.1.groups.0.translations", {"fr": {"help": "aide"}}, "group 'g', 'fr': 'help' cannot"),
    ("items.1.groups.0.label", "x" * 501, "a group's 'label' has at most 500"),
    ("items.0.help", 7, "item 'sure': 'help' must be text of at most 2000"),
    ("help", "x" * (MAX_HELP + 1), "the scheme: 'help' must be text"),
    ("official_language", "fr", "'official_language' may only be 'en'"),
])
def test_bad_translations_are_refused_with_the_reason(path, value, message):
    with pytest.raises(SchemeError, match=message):
        parse_scheme(_with(path, value))


# ---- the schemes page ----------------------------------------------------------------------


def test_a_trainers_scheme_with_bad_translations_is_400_and_nothing_stored(client, login_as):
    login_as(Role.TRAINER)
    bad = _with("items.1.options.0.translations", {"de": {"label": "A"}})
    response = submit_form(client, "/cases/schemes", button="Add scheme",
                           fields={"definition": json.dumps(bad)})
    assert response.status_code == 400
    assert "is not a language of the portal (fr, es)" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ReportingScheme)) == 0


def test_a_trainers_translated_scheme_is_shown_in_the_readers_language(client, login_as):
    trainer = login_as(Role.TRAINER)
    good = _tiny(translations={"fr": {"name": "Minuscule"}, "es": {"name": "Diminuto"}})
    response = submit_form(client, "/cases/schemes", button="Add scheme",
                           fields={"definition": json.dumps(good)})
    assert response.status_code in (200, 302)
    assert get_scheme("tiny").name_in("es") == "Diminuto"
    _speaks(trainer, "es")
    page = client.get("/cases/schemes").get_data(as_text=True)
    assert "<td>Diminuto</td>" in page


# ---- the read forms -------------------------------------------------------------------------


@pytest.fixture
def trainer(make_user):
    return make_user(Role.TRAINER, username="expert")


def _read_page(client, case: Case, scheme: str) -> BeautifulSoup:
    response = client.get(f"/cases/{case.id}/read?scheme={scheme}")
    assert response.status_code == 200
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def test_the_ds3030_form_in_french_keeps_its_english_wording(client, login_as):
    trainer = _speaks(login_as(Role.TRAINER), "fr")
    case = _import(trainer, 21)
    page = _read_page(client, case, "ds3030")
    option = page.find("input", {"name": "findings", "value": "infiltrate"}).parent
    official = option.find("span", class_="official-wording")
    assert option.get_text(" ", strip=True).startswith("Infiltrat ou condensation")
    assert official["lang"] == "en" and official.get_text() == "Infiltrate or consolidation"
    legend = page.find("fieldset", {"data-item": "tb_likelihood"}).legend
    assert "Probabilité de tuberculose" in legend.get_text()
    anchors = [a.get_text() for a in page.select("fieldset[data-item=tb_likelihood] .anchor")]
    assert anchors == ["certainement pas une tuberculose", "incertain",
                       "certainement une tuberculose"]
    assert "Frottis et cultures non nécessaires" in page.select_one(".group-label").parent \
        .parent.get_text()


def test_a_scheme_that_is_no_official_form_shows_the_translation_alone(client, login_as):
    trainer = _speaks(login_as(Role.TRAINER), "es")
    case = _import(trainer, 22)
    page = _read_page(client, case, "tb_screening")
    option = page.find("input", {"name": "findings", "value": "pleural_effusion"}).parent
    assert option.get_text(strip=True) == "Derrame pleural"
    assert page.select(".official-wording") == []


def test_the_english_form_has_no_second_wording(client, login_as):
    trainer = login_as(Role.TRAINER)
    case = _import(trainer, 23)
    page = _read_page(client, case, "ds3030")
    option = page.find("input", {"name": "findings", "value": "infiltrate"}).parent
    assert option.get_text(strip=True) == "Infiltrate or consolidation"
    assert page.select(".official-wording") == []


def test_a_reference_read_is_the_same_from_the_french_and_the_english_form(
        app, make_user, trainer):
    case = _import(trainer, 24)
    fields = {"overall": "abnormal", "findings": ["cavitary_lesion", "pleural_effusion"],
              "tb_likelihood": "4", "other_text": "apex"}
    stored = []
    for language in ("fr", "en"):
        reader = _speaks(make_user(Role.TRAINER), language)
        client = app.test_client()
        login(client, reader.username)
        page = client.get(f"/cases/{case.id}/read?scheme=ds3030").get_data(as_text=True)
        assert ("Lésion cavitaire" in page) == (language == "fr")
        response = submit_form(client, f"/cases/{case.id}/read?scheme=ds3030",
                               selector="form.reference-read-form", fields=fields)
        assert response.status_code == 302, response.status_code
        read = db.session.scalars(select(ReferenceRead).where(
            ReferenceRead.author_id == reader.id)).one()
        stored.append(read.answers)
    assert stored[0] == stored[1] == {"overall": "abnormal", "tb_likelihood": 4,
                                      "other_text": "apex",
                                      "findings": ["cavitary_lesion", "pleural_effusion"]}


def _take_from_the_page(client, attempt_id: int, positions: int, fields: dict) -> None:
    """Fill the read form each case page renders and send what the page's script sends (the
    form's fields turned into answers by item, as attempt.js does)."""
    scheme = get_scheme("ds3030")
    for position in range(1, positions + 1):
        url = f"/training/attempts/{attempt_id}/{position}"
        html = client.get(url).get_data(as_text=True)
        form, _ = find_form(html, selector="form.attempt-form")
        fill(form, fields)
        answers = answers_from_form(scheme, MultiDict(form_fields(form)))
        response = client.post(save_url(attempt_id, position),
                               json={"answers": answers, "marks": []},
                               headers={"X-CSRFToken": csrf_token(client, url)})
        assert response.status_code == 200


def test_an_attempt_scores_the_same_in_french_and_in_english(
        app, cases, make_user):  # noqa: F811
    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases[:2]], actor=None)
    fields = {"overall": "abnormal", "findings": ["cavitary_lesion", "miliary"],
              "tb_likelihood": "5"}
    kept = []
    for language in ("fr", "en"):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        client = app.test_client()
        login(client, trainee.username)
        started = post_start(client, practice)
        attempt_id = int(started.headers["Location"].split("/attempts/")[1].split("/")[0])
        _speaks(trainee, language)
        page = client.get(f"/training/attempts/{attempt_id}/1").get_data(as_text=True)
        assert ("Lésion cavitaire" in page) == (language == "fr")
        _take_from_the_page(client, attempt_id, 2, fields)
        _speaks(trainee, "en")  # the submit buttons, as the shared helper names them
        assert press_submit(client, attempt_id).status_code == 302
        db.session.expire_all()
        attempt = db.session.get(Attempt, attempt_id)
        assert attempt.user_id == trainee.id
        kept.append(({a.case_id: (a.answers, a.marks) for a in attempt.answers},
                     attempt.sensitivity, attempt.specificity, attempt.accuracy,
                     attempt.case_scores, attempt.passed))
    (french, english) = kept
    assert french == english
    assert all(answers == {"overall": "abnormal", "tb_likelihood": 5,
                           "findings": ["cavitary_lesion", "miliary"]}
               for answers, _ in french[0].values())


# ---- result and case pages -----------------------------------------------------------------


def test_the_result_page_names_answers_and_findings_in_the_readers_language(
        app, cases, make_user):  # noqa: F811
    from tests.test_teaching_note_languages import _result_page

    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases[:2]], actor=None)
    page = _result_page(app, make_user, practice, "es")
    compare = page.select_one("[data-testid=compare-table]")
    rows = {row.th.get_text(" ", strip=True): row for row in compare.tbody.find_all("tr")}
    # The official form's wording stays beside the item's translation; answers in Spanish.
    assert "Hallazgos Findings" in rows
    assert rows["Hallazgos Findings"].th.select_one("[lang=en]").get_text() == "Findings"
    assert "Lesión cavitada" in rows["Hallazgos Findings"].get_text()
    assert "Impresión general Overall" in rows
    assert "Anormal" in rows["Impresión general Overall"].get_text()
    # The per-finding table too.
    assert "<td>Lesión cavitada</td>" in str(page)


def test_the_case_page_lists_the_reference_read_in_the_readers_language(
        client, login_as, cases):  # noqa: F811
    _speaks(login_as(Role.TRAINER), "fr")
    page = BeautifulSoup(client.get(f"/cases/{cases[0].id}").get_data(as_text=True),
                         "html.parser")
    table = page.select_one("table.answers")
    assert "Lésion cavitaire" in table.get_text()
    assert "Anormale" in table.get_text()
    assert page.find(string=lambda s: s and "Fiche tuberculose du médecin agréé" in s)


def test_help_texts_are_shown_on_the_read_form_in_the_readers_language(client, login_as):
    trainer = _speaks(login_as(Role.TRAINER), "es")
    scheme = _tiny(items=[
        {"key": "sure", "type": "choice", "label": "Sure", "required": True,
         "help": "Your certainty", "translations": {"es": {"help": "Su certeza"}},
         "options": [{"value": "y", "label": "Yes", "help": "Quite sure",
                      "translations": {"fr": {"label": "Oui"}}}]}])
    add_scheme(json.dumps(scheme), actor=trainer)
    case = _import(trainer, 25)
    page = _read_page(client, case, "tiny")
    fieldset = page.find("fieldset", {"data-item": "sure"})
    assert fieldset.select_one("p.help").get_text() == "Su certeza"
    # No Spanish for the option: its English label and help, marked as English.
    option = fieldset.label
    assert [s.get_text() for s in option.select("[lang=en]")] == ["Yes", "Quite sure"]


def test_a_trainer_may_name_findings_for_a_case_rule_in_any_language():
    from app.quizzes.selection import findings_by_label

    lines = f"Lésion cavitaire{NBSP}: 2\nDerrame pleural: 1\nMiliary findings: 3"
    wanted = findings_by_label(get_scheme("ds3030"), lines)
    assert wanted == {"cavitary_lesion": 2, "pleural_effusion": 1, "miliary": 3}


def test_the_viewers_finding_labels_are_in_the_readers_language(client, login_as,
                                                                cases):  # noqa: F811
    _speaks(login_as(Role.TRAINER), "es")
    payload = client.get(f"/viewer/api/cases/{cases[0].id}").json
    labels = {label["value"]: label["label"] for label in payload["labels"]}
    assert labels["cavitary_lesion"] == "Lesión cavitada"
    assert labels["pleural_effusion"] == "Derrame pleural"


def test_an_answer_that_does_not_fit_is_refused_in_the_readers_language(app):
    """The read form's refusals name the item as the reader's form does; outside a request
    (the command line) and in the API they stay the English they always were."""
    from flask_babel import force_locale

    from app.schemes.answers import validate_answers
    from app.schemes.errors import SchemeError
    from app.schemes.registry import get_scheme
    scheme = get_scheme("ds3030")
    with pytest.raises(SchemeError) as english:
        validate_answers(scheme, {})
    assert str(english.value) == "'Overall' needs an answer"
    with app.test_request_context("/"), force_locale("fr"), pytest.raises(SchemeError) as fr:
        validate_answers(scheme, {"overall": "perhaps"})
    assert "ne fait pas partie des options" in str(fr.value)
    assert "'perhaps'" in str(fr.value) and "Impression générale" in str(fr.value)
