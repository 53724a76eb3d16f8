"""Why a scheme definition (or a mark) is refused, in the reader's language: a trainer adding
a malformed scheme on the schemes page reads the reason in French or Spanish; the command line
in its environment's language; the exception's own text, logs and the API stay English. Every
refusal the schemes package raises is a message of the catalogue, translated in both
languages with the English placeholders."""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from bs4 import BeautifulSoup
from flask_babel import force_locale
from sqlalchemy import func, select

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.services import AttemptError
from app.schemes.answers import validate_marks
from app.schemes.definitions import parse_scheme
from app.schemes.errors import SchemeError
from app.schemes.models import ReportingScheme
from app.schemes.registry import builtin_schemes
from tests.forms import submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_i18n_library import run

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ROOT / "app" / "schemes"
# Modules outside the package that raise the package's refusal for it (a read's marks).
ALSO_RAISING = (ROOT / "app" / "cases" / "reads.py",)
NBSP = "\u00a0"
BUTTON = {"en": "Add scheme", "fr": "Ajouter le schéma", "es": "Añadir el esquema"}


def _tiny(**extra: Any) -> dict[str, Any]:
    return {"key": "tiny", "version": 1, "name": "Tiny",
            "items": [{"key": "seen", "type": "multi", "label": "Seen",
                       "options": [{"value": "a", "label": "A"}]}], **extra}


def _bad_option_language() -> str:
    data = _tiny()
    data["items"][0]["options"][0]["translations"] = {"de": {"label": "A"}}
    return json.dumps(data)


# (definition, English sentence, French sentence, Spanish sentence) as the page shows them.
MALFORMED = [
    ("[]", "A scheme is a JSON object.", "Un schéma est un objet JSON.",
     "Un esquema es un objeto JSON."),
    ("{", "The definition is not valid JSON (line 1).",
     "La définition n'est pas du JSON valide (ligne 1).",
     "La definición no es un JSON válido (línea 1)."),
    ('{"key": "tiny", "version": NaN}',
     "The definition is refused: NaN is not a number JSON allows.",
     f"La définition est refusée{NBSP}: NaN n'est pas un nombre admis par JSON.",
     "La definición se rechaza: NaN no es un número que JSON admita."),
    (json.dumps(_tiny(version=0)), "'version' must be a whole number from 1 to 1000000.",
     "'version' doit être un nombre entier de 1 à 1000000.",
     "'version' debe ser un número entero de 1 a 1000000."),
    (json.dumps(_tiny(items=[{"key": "seen", "type": "colour", "label": "Seen"}])),
     "Item 'seen': 'type' must be one of choice, multi, scale, text, criterion.",
     f"Item 'seen'{NBSP}: 'type' doit être l'un de ces types{NBSP}: choice, multi, scale, "
     "text, criterion.",
     "Ítem 'seen': 'type' debe ser uno de estos tipos: choice, multi, scale, text, criterion."),
    # A part named within a part: each level in the reader's language.
    (_bad_option_language(),
     "Item 'seen', option 'a': 'de' is not a language of the portal (fr, es).",
     f"Item 'seen', option 'a'{NBSP}: 'de' n'est pas une langue du portail (fr, es).",
     "Ítem 'seen', opción 'a': 'de' no es un idioma del portal (fr, es)."),
    (json.dumps(_tiny(key="ds3030")), "'ds3030' is a built-in scheme; choose another key.",
     f"'ds3030' est un schéma intégré{NBSP}; choisissez une autre clé.",
     "'ds3030' es un esquema integrado; elija otra clave."),
]


def _refusal(html: str) -> list[str]:
    """The reasons the page shows beside the definition box."""
    soup = BeautifulSoup(html, "html.parser")
    box = soup.find("textarea", attrs={"name": "definition"})
    assert box is not None
    field = box.find_parent("div", class_="field")
    return [p.get_text() for p in field.select("p.error")]


@pytest.mark.parametrize("language", ["fr", "es", "en"])
@pytest.mark.parametrize(("definition", "en", "fr", "es"), MALFORMED, ids=[
    "not-an-object", "not-json", "nan", "version", "item-type", "option-language", "built-in"])
def test_a_malformed_scheme_is_refused_in_the_trainers_language(
        client, login_as, language, definition, en, fr, es):
    trainer = login_as(Role.TRAINER)
    trainer.language = language
    db.session.commit()
    response = submit_form(client, "/cases/schemes", button=BUTTON[language],
                           fields={"definition": definition})
    assert response.status_code == 400
    assert _refusal(response.get_data(as_text=True)) == [{"en": en, "fr": fr, "es": es}[language]]
    assert db.session.scalar(select(func.count()).select_from(ReportingScheme)) == 0


# ---- the exception's text and the command line ----------------------------------------------


def test_the_exception_stays_english_and_says_it_in_the_readers_language(app):
    with app.test_request_context("/"), force_locale("fr"):
        with pytest.raises(SchemeError) as refused:
            parse_scheme(json.loads(_bad_option_language()))
        assert str(refused.value) == (
            "item 'seen', option 'a': 'de' is not a language of the portal (fr, es)")
        assert refused.value.text() == (
            f"item 'seen', option 'a'{NBSP}: 'de' n'est pas une langue du portail (fr, es)")
    with pytest.raises(SchemeError) as outside:  # no request, no application: English
        parse_scheme([])
    assert outside.value.text() == str(outside.value) == "a scheme is a JSON object"


def test_a_marks_refusal_stays_english_and_says_it_in_the_readers_language(app):
    scheme = builtin_schemes()["ds3030"]
    mark = {"finding": "unknown", "shape": "point", "geometry": {"x": 1, "y": 1}}
    with (app.test_request_context("/"), force_locale("es"),
          pytest.raises(SchemeError) as refused):
        validate_marks(scheme, [mark], columns=10, rows=10)
    assert str(refused.value) == "mark 1: 'unknown' is not a finding of this scheme"
    with app.test_request_context("/"), force_locale("es"):
        assert refused.value.text() == "marca 1: 'unknown' no es un hallazgo de este esquema"


def test_a_quiz_passes_a_scheme_refusal_on_in_english_and_the_readers_language(
        app, cases):  # noqa: F811 (the fixture)
    with (app.test_request_context("/"), force_locale("fr"),
          pytest.raises(AttemptError) as refused):
        create_exercise(title="T", kind="practice", scheme_key="nope",
                        case_ids=[cases[0].id], actor=None)
    assert str(refused.value) == "no reporting scheme 'nope'"
    with app.test_request_context("/"), force_locale("fr"):
        assert refused.value.sentence == "Aucun schéma de compte rendu 'nope'."


def test_the_command_line_refuses_a_scheme_in_its_environments_language(app, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(_bad_option_language(), encoding="utf-8")
    english = run(app, "cases", "add-scheme", str(bad))
    assert english.exit_code == 1
    assert english.output == (
        "Error: item 'seen', option 'a': 'de' is not a language of the portal (fr, es)\n")
    french = run(app, "cases", "add-scheme", str(bad), LANG="fr_FR.UTF-8")
    assert french.exit_code == 1
    assert french.output == (
        f"Error: item 'seen', option 'a'{NBSP}: 'de' n'est pas une langue du portail (fr, es)\n")
    spanish = run(app, "cases", "add-scheme", str(bad), LANGUAGE="es")
    assert spanish.output == (
        "Error: ítem 'seen', opción 'a': 'de' no es un idioma del portal (fr, es)\n")
    assert db.session.scalar(select(func.count()).select_from(ReportingScheme)) == 0


# ---- every refusal is a message of the catalogue ----------------------------------------------

REFUSALS = {"SchemeError", "TranslationError"}
MARKERS = {"N_", "gettext"}


def _literal(node: ast.AST) -> str | None:
    """The message of ``N_("...")`` / ``gettext("...", ...)``, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in MARKERS and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def _unmarked_and_marked(source: str) -> tuple[list[int], list[str]]:
    """Lines raising a refusal whose message is not a marked literal, and the marked ones
    (the refusals' messages and the named parts, ``phrase(N_(...))``, filled into them)."""
    unmarked, marked = [], []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id in REFUSALS:
            message = _literal(node.args[0]) if node.args else None
            if message is None:
                unmarked.append(node.lineno)
            else:
                marked.append(message)
        elif node.func.id == "phrase" and node.args:
            message = _literal(node.args[0])
            # A reason another refusal gives (JSONRefused) is passed on with its own message.
            if message is None and not (isinstance(node.args[0], ast.Attribute)
                                        and node.args[0].attr == "message"):
                unmarked.append(node.lineno)
            elif message is not None:
                marked.append(message)
    return unmarked, marked


def _sources() -> list[Path]:
    return [*sorted(SCHEMES.glob("*.py")), *ALSO_RAISING]


@cache
def _catalogue(language: str) -> Catalog:
    path = ROOT / "app" / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


def test_every_refusal_of_the_schemes_package_is_a_marked_message():
    unmarked = {path.name: lines for path in _sources()
                if (lines := _unmarked_and_marked(path.read_text(encoding="utf-8"))[0])}
    assert unmarked == {}, "raise SchemeError(N_('...'), name=value) with named placeholders"


def test_the_check_finds_an_english_only_refusal():
    source = ('raise SchemeError(f"item {n} is odd")\n'
              'raise TranslationError("plain")\n'
              'raise SchemeError(N_("item %(n)s is odd"), n=1)\n'
              'raise SchemeError(gettext("%(x)s", x=1))\n'
              'where = phrase(f"item {key}")\n')
    assert _unmarked_and_marked(source) == ([1, 2, 5], ["item %(n)s is odd", "%(x)s"])


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


@pytest.mark.parametrize("language", ["fr", "es"])
def test_every_refusal_is_translated_with_the_english_placeholders(language):
    messages = {m for path in _sources()
                for m in _unmarked_and_marked(path.read_text(encoding="utf-8"))[1]}
    assert len(messages) > 60
    catalogue = _catalogue(language)
    wrong = []
    for message in sorted(messages):
        entry = catalogue.get(message)
        if entry is None or not entry.string or entry.fuzzy:
            wrong.append((message, "untranslated"))
        elif Counter(PLACEHOLDER.findall(entry.string)) != Counter(PLACEHOLDER.findall(message)):
            wrong.append((message, "placeholders"))
        elif language == "fr" and re.search(r" [:;?!]", entry.string):
            wrong.append((message, "a plain space before : ; ? !"))
    assert wrong == []


# ---- the split -------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["definitions", "parts", "translations", "errors"])
def test_parsing_a_definition_needs_no_flask(module):
    """The definition's modules are pure: Flask-Babel only when a refusal is translated."""
    tree = ast.parse((SCHEMES / f"{module}.py").read_text(encoding="utf-8"))
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in top if isinstance(node, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] in ("flask", "flask_babel", "sqlalchemy")}
    assert len((SCHEMES / f"{module}.py").read_text(encoding="utf-8").splitlines()) < 500
