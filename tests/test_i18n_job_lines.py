"""Every sentence a job, the import or a PACS client writes is a message id of the catalogue,
translated in French and Spanish, and a stored one is shown in the reader's language: the
code is scanned (AST) for each call that writes such a sentence, and each template is read
back from its English text (app.cases.reasons) in both languages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from bs4 import BeautifulSoup
from flask_babel import force_locale
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.reasons import WRITERS, templates, translate_reason
from app.extensions import db
from app.jobs.models import Job
from app.jobs.services import run_job
from app.quizzes.rescoring_job import start_rescoring
from app.sentences import message, say
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_i18n_library import speaks
from tests.test_rescore_certificates import programme  # noqa: F401 (fixture)
from tests.test_rescoring_job import _by_title, three_certified  # noqa: F401 (fixture)

APP = Path(__file__).resolve().parent.parent / "app"
TRANSLATIONS = APP / "translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")

# The calls that write a stored or passed-on sentence, and the argument holding it: an
# exception's message, a job's error, a refused file's reason, a job's after-failure words.
WRITER_CALLS = {"Rejected": 0, "LimitExceeded": 0, "InvalidValue": 0,
                "DeidentificationError": 0, "CodestreamError": 0, "UnsupportedImage": 0,
                "PacsError": 0, "StudyRefused": 0, "BrokenAnswer": 0, "finish": 2,
                "register_kind": 2, "Kind": 1}
WRITER_KEYWORDS = {("FileResult", "reason"), ("_Study", "refusal")}
# What may be passed: a marked message, one filled in, a stored message, or a value that
# is one already (a constant, a parameter, another refusal's text, a helper's sentence).
MARKERS = {"N_", "say", "message"}


def _written(tree: ast.AST) -> list[ast.expr]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = (node.func.id if isinstance(node.func, ast.Name)
                else node.func.attr if isinstance(node.func, ast.Attribute) else "")
        position = WRITER_CALLS.get(name)
        if position is not None and len(node.args) > position:
            found.append(node.args[position])
        found += [k.value for k in node.keywords if (name, k.arg) in WRITER_KEYWORDS]
    return found


def _english_literal(node: ast.expr) -> bool:
    """A sentence typed in English where it is written (a literal, an f-string, text glued
    or formatted together) rather than a marked message."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(node.value)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _english_literal(node.left) or _english_literal(node.right)
    if isinstance(node, ast.IfExp):
        return _english_literal(node.body) or _english_literal(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_english_literal(v) for v in node.values)
    return False


def test_every_sentence_the_code_writes_is_a_marked_message_of_a_writer_module():
    unmarked, outside = [], []
    for path in sorted(APP.rglob("*.py")):
        module = path.relative_to(APP).as_posix()
        written = _written(ast.parse(path.read_text(encoding="utf-8")))
        for node in written:
            if _english_literal(node):
                unmarked.append(f"{module}:{node.lineno}")
        marked = [n for n in written if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Name) and n.func.id in MARKERS]
        if marked and module not in WRITERS:
            outside.append(module)
    assert unmarked == [], "sentences written in English, not as marked messages"
    assert outside == [], "modules writing sentences missing from reasons.WRITERS"


def _catalogue(language: str) -> dict[str, str]:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalogue = read_po(fh)
    return {m.id: m.string for m in catalogue if m.id and not m.fuzzy
            and isinstance(m.id, str)}


@pytest.mark.parametrize("language", ["fr", "es"])
def test_every_template_is_translated_and_read_back_from_its_english(app, language):
    catalogue = _catalogue(language)
    every = templates()
    assert len(every) > 100  # the writer modules were read
    untranslated = [t for t in every if not catalogue.get(t)]
    assert untranslated == []
    wrong = [t for t in every
             if sorted(PLACEHOLDER.findall(catalogue[t])) != sorted(PLACEHOLDER.findall(t))]
    assert wrong == []
    misread = []
    with app.test_request_context(), force_locale(language):
        for template in every:
            # Each parameter a distinct value of no template's words.
            params = {name: f"Q{n}Z" for n, name in enumerate(PLACEHOLDER.findall(template))}
            expected = catalogue[template] % params if params else catalogue[template]
            if translate_reason(say(template, **params)) != expected:
                misread.append(template)
    assert misread == []


def test_a_stored_message_and_an_old_english_line_are_both_shown_translated(app):
    stored = message("%(reason)s; nothing of this study was imported",
                     reason="the PACS does not hold this study")
    with app.test_request_context(), force_locale("es"):
        assert translate_reason(stored) == (
            "el PACS no tiene este estudio; no se importó nada de este estudio")
        assert translate_reason("the PACS does not hold this study; nothing of this study "
                                "was imported") == translate_reason(stored)


def test_the_names_the_portal_gives_results_and_job_errors_are_translated(app):
    with app.test_request_context(), force_locale("fr"):
        assert translate_reason("PACS study 2 of 3, image 1 of 4") == (
            "Étude PACS 2 sur 3, image 1 sur 4")
        # A nested after-failure sentence is translated too; a library's words stay.
        assert translate_reason(
            "The job stopped on an unexpected error (KeyError); nothing was exported; start "
            "the export again.") == (
            "La tâche s'est arrêtée sur une erreur inattendue (KeyError)\u00a0; rien n'a été "
            "exporté\u00a0; relancez l'export.")


def test_a_rescoring_jobs_lines_are_in_french_on_its_page(
        app, client, login_as, three_certified):  # noqa: F811
    trainer = speaks(login_as(Role.TRAINER), "fr")
    job = start_rescoring(_by_title("Exam").id, actor=trainer)
    job_id = job.id
    run_job(job_id)
    db.session.expire_all()
    stored = db.session.scalars(select(Job).where(Job.id == job_id)).one()
    # The API and the command line keep the English lines.
    assert len([line for line in stored.summary["consequences"]
                if "listed for the programme lead's review" in line]) == 3
    page = client.get(f"/jobs/{job_id}")
    soup = BeautifulSoup(page.get_data(as_text=True), "html.parser")
    lines = soup.select('[data-testid="rescoring-consequences"] li')
    assert len(lines) == 4  # three certificates listed, and who was told
    texts = [" ".join(line.get_text().split()) for line in lines]
    listed = [t for t in texts if re.match(r"certificat \S+ \(.+, .+\) : soumis au réexamen", t)]
    assert len(listed) == 3, texts
    assert all("n'est plus réussie après le recalcul des scores" in t for t in listed), texts
    assert "3 apprenants informés sur leur page de certification" in texts, texts
    english = ("certificate", "listed for", "review", "trainees told", "no longer passes")
    assert not [t for t in texts if any(word in t for word in english)], texts
