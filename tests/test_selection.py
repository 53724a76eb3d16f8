"""Drawing an exercise's cases by rule from the published library."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.quizzes.selection import CaseRule, SelectionError, parse_pairs, select_cases
from tests.forms import submit_form


@pytest.fixture
def library(app):
    """Sixteen published cases: only their reference summaries matter to the selection."""
    from app.cases.models import CaseFinding

    specs = [(False, [], "easy")] * 8 + [
        (True, ["cavitary_lesion"], "easy"), (True, ["cavitary_lesion"], "moderate"),
        (True, ["cavitary_lesion", "infiltrate"], "easy"), (True, ["pleural_effusion"], "easy"),
        (True, ["pleural_effusion"], "moderate"), (True, ["infiltrate"], "moderate"),
        (True, ["nodule"], "moderate"), (False, ["calcified_nodule"], "moderate")]
    for tb, findings, difficulty in specs:
        db.session.add(Case(status="published", reference_tb_positive=tb,
                            reference_classification="abnormal" if findings else "normal",
                            difficulty=difficulty,
                            finding_links=[CaseFinding(finding=f) for f in findings]))
    db.session.commit()
    return db.session.scalars(select(Case)).all()


def _tb(ids):
    return sum(1 for i in ids if db.session.get(Case, i).reference_tb_positive)


def test_rule_with_share_finding_minimums_and_difficulty(library):
    cavities = [c for c in library if "cavitary_lesion" in {f.finding for f in c.finding_links}]
    rule = CaseRule(total=8, tb_share=0.5, min_per_finding={"cavitary_lesion": len(cavities)},
                    difficulty_mix={"easy": 0.5}, seed=3)
    ids = select_cases(rule)
    assert len(ids) == len(set(ids)) == 8
    assert _tb(ids) == 4
    assert {c.id for c in cavities} <= set(ids)
    assert select_cases(rule) == ids  # the same seed draws the same cases
    assert select_cases(CaseRule(total=8, tb_share=0.5, seed=4)) != ids


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (CaseRule(total=500), "published case(s) left (500 needed)"),
        (CaseRule(total=5, min_per_finding={"miliary": 50}), "with 'miliary' (50 needed)"),
        (CaseRule(total=0), "at least one case"),
        (CaseRule(total=5, tb_share=2), "between 0 and 1"),
        (CaseRule(total=4, tb_share=1.0), "TB-suggestive published case(s) left"),
    ],
)
def test_rules_the_library_cannot_satisfy_say_what_is_short(library, rule, message):
    if rule.tb_share == 1.0:
        rule = CaseRule(total=len(library), tb_share=1.0)
    with pytest.raises(SelectionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_cases(rule)


def test_parse_pairs():
    assert parse_pairs("cavitary_lesion:5, pleural_effusion: 3", integer=True) == {
        "cavitary_lesion": 5, "pleural_effusion": 3}
    with pytest.raises(SelectionError, match="as name:number"):
        parse_pairs("cavity=5", integer=True)


def test_trainer_builds_an_exercise_by_rule(client, library, login_as):
    login_as(Role.TRAINER)
    response = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Drawn", "kind": "practice", "scheme": "ds3030", "rule_total": "6",
        "rule_tb_percent": "50", "rule_findings": "Pleural effusion: 2",
        "rule_difficulty": "moderate:50"})
    assert response.status_code == 302
    from app.quizzes.models import Exercise

    exercise = db.session.scalars(select(Exercise)).one()
    ids = [link.case_id for link in exercise.cases]
    assert len(ids) == 6 and _tb(ids) == 3
    short = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Too many", "kind": "practice", "scheme": "ds3030", "rule_total": "400"})
    assert short.status_code == 400 and "needed" in short.get_data(as_text=True)
