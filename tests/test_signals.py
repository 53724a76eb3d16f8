"""Quizzes announce what happens to attempts; certification listens. app/quizzes imports
nothing from app/certification, so the two areas no longer import each other."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import select

from app.auth.roles import Role
from app.certification.models import Certificate
from app.extensions import db
from app.quizzes.signals import attempt_ended
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import TB, _exercise, _take, programme  # noqa: F401

QUIZZES = Path(__file__).resolve().parents[1] / "app" / "quizzes"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_quizzes_import_nothing_from_certification():
    found = {f"{path.relative_to(QUIZZES.parent)}: {name}"
             for path in QUIZZES.rglob("*.py") for name in _imports(path)
             if name == "app.certification" or name.startswith("app.certification.")}
    assert found == set()


def test_an_ended_attempt_is_announced_and_certification_issues_from_it(app, programme,  # noqa: F811
                                                                        make_user):
    heard = []

    def listener(sender, *, attempt, **_):
        heard.append((sender, attempt.id, attempt.state, attempt.passed))

    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    with attempt_ended.connected_to(listener, sender=app):
        practice = _take(_exercise(programme, "practice"), trainee, TB)
        exam = _take(_exercise(programme, "exam"), trainee, TB)
    assert heard == [(app, practice.id, "submitted", None), (app, exam.id, "submitted", True)]
    assert len(db.session.scalars(select(Certificate)).all()) == 1
