"""QC flags on both databases: readers outside a programme's ongoing criterion are flagged
after each import (once while open), the programme editor's QC settings, the leads' page
(country scoping, the decision forms, refusals) and the audit of every decision."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.admin.audit_sentences import Names, describe
from app.audit.models import AuditEvent
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.certification.models import (
    Certificate,
    CertificationNotice,
    Programme,
    Requirement,
)
from app.db_types import utcnow
from app.extensions import db
from app.qc import flags as flag_service
from app.qc.importing import import_rows
from app.qc.models import QcFlag
from app.quizzes.exercises import edit_exercise
from app.quizzes.models import Exercise
from app.quizzes.services import open_exercises
from app.schemes.registry import get_scheme
from tests.conftest import post_hand_built
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import find_form, submit_form, submit_html

FLAGS = "/qc/flags"


def library_case(trainer: User, seed: int, findings: list[str]) -> Case:
    """A published case whose reference read has ``findings`` (none: a normal case)."""
    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    [result] = import_files([Source("x.dcm", lambda d=data: d)], actor=trainer,
                            options=ImportOptions()).results
    case = db.session.get(Case, result.case_id)
    answers = ({"overall": "abnormal", "findings": findings} if findings
               else {"overall": "normal"})
    marks = [{"image_id": case.images[0].id, "finding": f, "shape": "ellipse",
              "geometry": {"cx": 20.0 + 5 * n, "cy": 17.0, "rx": 4.0, "ry": 3.0}}
             for n, f in enumerate(findings)]
    save_read(case, author=trainer, scheme=get_scheme("ds3030"), answers=answers, marks=marks)
    case.status = CaseStatus.PUBLISHED.value
    db.session.commit()
    return case


def qc_rows(reader: str, *, majors: int, total: int = 20, over_called: int = 0,
            prefix: str = "") -> list[tuple[int, dict[str, Any]]]:
    """``total`` QC records of ``reader``: ``majors`` of them a missed TB read with an
    infiltrate (3b), ``over_called`` a nodule the QC read does not see (1), the rest
    concordant normal reads."""
    rows = []
    for i in range(total):
        row = {"study_reference": f"{prefix}{reader}-{i}", "reader": reader,
               "read_date": f"2026-03-{1 + i % 28:02d}", "qc_radiologist": "dr.qc",
               "grade": "1", "primary_classification": "normal", "qc_classification": "normal"}
        if i < majors:
            row.update(grade="3b", qc_classification="abnormal_tb", qc_findings="infiltrate")
        elif i < majors + over_called:
            row.update(primary_classification="abnormal_not_tb", primary_findings="nodule",
                       qc_classification="abnormal_not_tb")
        rows.append((i + 1, row))
    return rows


def imported(rows: list[tuple[int, dict[str, Any]]]) -> None:
    report = import_rows(rows, source="csv")
    assert not report.refused, [p.text() for p in report.problems]


def flags() -> list[QcFlag]:
    db.session.expire_all()
    return list(db.session.scalars(select(QcFlag).order_by(QcFlag.id)))


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.fixture
def world(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    kenya = make_clinic("Mathare Clinic", country="KE")
    manila = make_clinic("Quezon Clinic", city="Manila", country="PH")
    exam = Exercise(title="Exam", kind="exam", scheme_key="ds3030", scheme_version=1)
    programme = Programme(title="TB CXR reader", eligible_roles=["trainee_radiologist"],
                          qc_max_rate=0.05, qc_last_n=20, qc_min_reads=10,
                          requirements=[Requirement(exercise=exam, kind="exam")])
    db.session.add(programme)
    db.session.commit()
    return {
        "programme": programme,
        "amina": make_user(Role.TRAINEE_RADIOLOGIST, username="amina", clinic=kenya,
                           full_name="Amina Otieno"),
        "jose": make_user(Role.TRAINEE_RADIOLOGIST, username="jose", clinic=manila,
                          full_name="Jose Cruz"),
        "qc": make_user(Role.TRAINER, username="dr.qc"),
    }


@pytest.fixture
def library(world: dict[str, Any], make_user: Callable[..., User]) -> dict[str, list[Case]]:
    trainer = make_user(Role.TRAINER, username="expert")
    return {"infiltrate": [library_case(trainer, 500 + i, ["infiltrate"]) for i in range(3)],
            "normal": [library_case(trainer, 520 + i, []) for i in range(2)]}


def test_an_import_flags_readers_outside_the_criterion_once(world: dict[str, Any]) -> None:
    imported(qc_rows("amina", majors=5, over_called=2))
    [flag] = flags()
    assert (flag.reader_id, flag.programme_id, flag.state) == (
        world["amina"].id, world["programme"].id, "open")
    assert (flag.figures["n"], flag.figures["major"], flag.figures["outcome"]) == (20, 5,
                                                                                  "outside")
    assert flag.figures["rate"] == pytest.approx(0.25)
    assert [(r["finding"], r["missed"], r["over_called"]) for r in flag.error_profile] == [
        ("infiltrate", 5, 0), ("nodule", 0, 2)]
    assert flag.error_profile[0]["label"] == "Infiltrate or consolidation"
    # The same file again, and an evaluation by hand: still one flag.
    imported(qc_rows("amina", majors=5, over_called=2))
    result = flag_service.evaluate()
    assert (result.opened, result.already_open) == (0, 1)
    assert len(flags()) == 1
    [opened] = events("qc.flag.open")
    assert opened.object_id == str(flag.id)
    assert "Flagged user" in describe(opened, Names())


def test_within_the_criterion_too_few_reads_or_no_criterion_means_no_flag(
        world: dict[str, Any], make_user: Callable[..., User]) -> None:
    make_user(Role.TRAINEE_RADIOLOGIST, username="few", clinic=world["amina"].clinic)
    make_user(Role.TRAINER, username="other_role", clinic=world["amina"].clinic)
    imported(qc_rows("amina", majors=1))  # 1 in 20 = 5 %: within
    imported(qc_rows("few", majors=5, total=9))  # 9 reads, at least 10 needed
    imported(qc_rows("other_role", majors=10))  # not an eligible role
    assert flags() == []
    world["programme"].qc_last_n = None  # no criterion any more
    db.session.commit()
    imported(qc_rows("jose", majors=10))
    assert flags() == []
    assert flag_service.evaluate().checked == 0


def test_a_decided_flag_does_not_stop_a_new_one_and_the_command_line_counts(
        app, world: dict[str, Any]) -> None:
    imported(qc_rows("amina", majors=5))
    imported(qc_rows("jose", majors=6))
    first = flags()
    assert len(first) == 2
    flag_service.decide(first[0].id, decision="dismiss", reason="Known backlog week",
                        actor=world["qc"], countries=None)
    done = app.test_cli_runner().invoke(args=["qc", "flags"])
    assert done.exit_code == 0, done.output
    assert "2 readers judged, 1 flags opened, 1 already open" in done.output
    assert [f.state for f in flags()] == ["decided", "open", "open"]


# ---- the programme editor ------------------------------------------------------------------


def _edit(client, programme: Programme, values: dict[str, Any]):
    return submit_form(client, f"/certification/programmes/{programme.id}/edit",
                       button="Save programme", fields=values)


def test_the_editor_sets_the_criterion_and_judges_the_readers_at_once(
        client, world: dict[str, Any], login_as: Callable[..., User]) -> None:
    programme = world["programme"]
    programme.qc_max_rate = programme.qc_last_n = programme.qc_min_reads = None
    db.session.commit()
    imported(qc_rows("amina", majors=2))  # 10 %: no criterion yet
    assert flags() == []
    admin = login_as(Role.ADMIN)
    page = client.get(f"/certification/programmes/{programme.id}/edit").get_data(as_text=True)
    assert 'name="qc_max_rate"' in page
    assert "at most x % over the last n QC reads" in page
    response = _edit(client, programme, {"qc_target_rate": "4", "qc_max_rate": "7.5",
                                         "qc_last_n": "20", "qc_min_reads": "10",
                                         "active": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    saved = db.session.get(Programme, programme.id)
    assert (saved.qc_target_rate, saved.qc_max_rate, saved.qc_last_n, saved.qc_min_reads) == (
        pytest.approx(0.04), pytest.approx(0.075), 20, 10)
    [flag] = flags()
    assert flag.reader_id == world["amina"].id
    [event] = [e for e in events("programme.update") if "qc_max_rate" in e.detail["changed"]]
    assert event.actor_id == admin.id and event.detail["after"]["qc_last_n"] == 20
    # The form shows the settings back in %.
    page = client.get(f"/certification/programmes/{programme.id}/edit").get_data(as_text=True)
    assert 'value="7.5"' in page and 'value="4.0"' in page


@pytest.mark.parametrize(("values", "reason"), [
    ({"qc_max_rate": "5"}, "needs all three numbers or none"),
    ({"qc_max_rate": "0", "qc_last_n": "20", "qc_min_reads": "5"}, "more than 0 and less than 100"),
    ({"qc_max_rate": "100", "qc_last_n": "20", "qc_min_reads": "5"}, "less than 100"),
    ({"qc_target_rate": "120"}, "less than 100"),
    ({"qc_max_rate": "5", "qc_last_n": "20", "qc_min_reads": "21"},
     "at most the number of last QC reads (20)"),
    ({"qc_max_rate": "5", "qc_last_n": "10001", "qc_min_reads": "5"}, "from 1 to 10000"),
    ({"qc_max_rate": "5", "qc_last_n": "0", "qc_min_reads": "1"}, "from 1 to 10000"),
], ids=["partial", "zero-rate", "whole-rate", "target", "m>n", "n-too-big", "n-zero"])
def test_a_bad_criterion_is_refused_with_the_reason_and_nothing_is_saved(
        client, world: dict[str, Any], login_as: Callable[..., User], values: dict[str, Any],
        reason: str) -> None:
    programme = world["programme"]
    login_as(Role.ADMIN)
    blank = {"qc_target_rate": "", "qc_max_rate": "", "qc_last_n": "", "qc_min_reads": ""}
    response = _edit(client, programme, {**blank, **values, "title": "Renamed"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert reason in page.replace("\u202f", " ").replace(",", "")
    db.session.expire_all()
    kept = db.session.get(Programme, programme.id)
    assert (kept.title, kept.qc_max_rate, kept.qc_last_n, kept.qc_min_reads) == (
        "TB CXR reader", 0.05, 20, 10)


# ---- the leads' page -----------------------------------------------------------------------


def _decide(client, html: str, flag: QcFlag, decision: str, reason: str):
    return submit_html(client, html, FLAGS, selector=f'form[data-flag="{flag.id}"]',
                       fields={"decision": decision, "reason": reason})


def test_a_lead_sees_only_their_countries_flags_and_the_count_on_the_index(
        client, world: dict[str, Any], library: dict[str, list[Case]],
        login_as: Callable[..., User]) -> None:
    imported(qc_rows("amina", majors=5))
    imported(qc_rows("jose", majors=5))
    amina_flag, jose_flag = flags()
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    page = client.get(FLAGS).get_data(as_text=True)
    assert "Amina Otieno" in page and "Jose Cruz" not in page
    assert "(5 of the last 20 QC reads; 95 % CI" in page
    assert f'data-flag="{jose_flag.id}"' not in page
    suggested = find_form(page, selector=f'form[data-flag="{amina_flag.id}"]')[0]
    assert suggested is not None
    for case in library["infiltrate"]:
        assert f"Case {case.id}" in page
    index = client.get("/certification/").get_data(as_text=True)
    assert "1 reader flagged by quality control" in index and 'href="/qc/flags"' in index
    # Another country's flag is not there for this lead: 404, nothing decided.
    response = post_hand_built(client, f"/qc/flags/{jose_flag.id}",
                               {"decision": "dismiss", "reason": "no"}, page=FLAGS)
    assert response.status_code == 404
    assert "no such flag in your countries" in response.get_data(as_text=True)
    assert [f.state for f in flags()] == ["open", "open"]
    assert events("qc.flag.decide") == []


def test_trainees_may_not_see_the_flags(client, world: dict[str, Any],
                                        login_as: Callable[..., User]) -> None:
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get(FLAGS).status_code == 403


def test_assigning_the_suggested_practice_set_reaches_the_reader_alone(
        client, world: dict[str, Any], library: dict[str, list[Case]],
        login_as: Callable[..., User]) -> None:
    imported(qc_rows("amina", majors=5, over_called=2))
    [flag] = flags()
    lead = login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    page = client.get(FLAGS).get_data(as_text=True)
    response = _decide(client, page, flag, "assign_practice", "Misses infiltrates: practise")
    assert response.status_code == 302, response.get_data(as_text=True)
    [decided] = flags()
    assert (decided.state, decided.decision, decided.decided_by_id) == (
        "decided", "assign_practice", lead.id)
    exercise = db.session.get(Exercise, decided.exercise_id)
    assert exercise.published and exercise.kind == "practice"
    assert exercise.audience["user_ids"] == [world["amina"].id]
    chosen = {link.case_id for link in exercise.cases}
    # The infiltrate cases she misses, and normal cases since she over-calls.
    assert chosen == {c.id for c in library["infiltrate"] + library["normal"]}
    assert exercise in open_exercises(world["amina"])
    assert exercise not in open_exercises(world["jose"])
    [event] = events("qc.flag.decide")
    assert (event.actor_id, event.detail["decision"], event.detail["exercise"]) == (
        lead.id, "assign_practice", exercise.id)
    assert "Assigned the suggested practice set" in describe(event, Names())
    decided_page = client.get(FLAGS).get_data(as_text=True)
    assert "Misses infiltrates: practise" in decided_page
    # The same form again (another tab): already decided, nothing more written.
    again = _decide(client, page, flag, "dismiss", "Second thoughts")
    assert again.status_code == 409
    assert "already been decided" in again.get_data(as_text=True)
    assert len(events("qc.flag.decide")) == 1
    assert db.session.scalar(select(func.count()).select_from(Exercise)) == 2  # and the exam


def test_a_decision_needs_a_reason_and_a_choice(
        client, world: dict[str, Any], login_as: Callable[..., User]) -> None:
    imported(qc_rows("amina", majors=5))
    [flag] = flags()
    login_as(Role.ADMIN)
    page = client.get(FLAGS).get_data(as_text=True)
    no_reason = _decide(client, page, flag, "keep_watching", "   ")
    assert no_reason.status_code == 400
    assert "give the reason for your decision" in no_reason.get_data(as_text=True)
    no_choice = submit_html(client, page, FLAGS, selector=f'form[data-flag="{flag.id}"]',
                            fields={"reason": "Looks fine"})
    assert no_choice.status_code == 400
    assert "choose a decision" in no_choice.get_data(as_text=True)
    # No published case in the library: the practice set is not offered.
    assert 'value="assign_practice"' not in page and 'data-testid="no-suggestion"' in page
    refused = post_hand_built(client, f"/qc/flags/{flag.id}",
                              {"decision": "assign_practice", "reason": "Practise"}, page=FLAGS)
    assert refused.status_code == 409
    assert "no published case" in refused.get_data(as_text=True)
    assert [f.state for f in flags()] == ["open"]
    assert events("qc.flag.decide") == []
    kept = _decide(client, page, flag, "keep_watching", "New reader, re-check next month")
    assert kept.status_code == 302
    [decided] = flags()
    assert (decided.decision, decided.exercise_id) == ("keep_watching", None)


def test_a_flag_revokes_nothing_and_tells_no_one(world: dict[str, Any]) -> None:
    held = Certificate(code="QC-TEST-1", programme=world["programme"], user=world["amina"],
                       holder_name="Amina Otieno", expires_at=utcnow() + timedelta(days=300))
    db.session.add(held)
    db.session.commit()
    imported(qc_rows("amina", majors=10))
    assert len(flags()) == 1
    kept = db.session.get(Certificate, held.id)
    assert (kept.revoked_at, kept.revoke_reason) == (None, None)
    assert db.session.scalar(select(func.count()).select_from(CertificationNotice)) == 0


def test_a_decision_taken_meanwhile_by_another_lead_undoes_the_practice_set(
        world: dict[str, Any], library: dict[str, list[Case]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    imported(qc_rows("amina", majors=5))
    [flag] = flags()
    real = flag_service.create_exercise

    def and_another_lead_decides(**kwargs: Any) -> Exercise:
        made = real(**kwargs)
        db.session.execute(QcFlag.__table__.update().where(QcFlag.id == flag.id).values(
            state="decided", decision="dismiss", decision_reason="Other lead"))
        db.session.commit()
        return made

    monkeypatch.setattr(flag_service, "create_exercise", and_another_lead_decides)
    with pytest.raises(flag_service.FlagError) as refused:
        flag_service.decide(flag.id, decision="assign_practice", reason="Practise",
                            actor=world["qc"], countries=None)
    assert refused.value.status == 409
    assert db.session.scalars(select(Exercise).where(Exercise.kind == "practice")).all() == []
    [kept] = flags()
    assert (kept.decision_reason, kept.exercise_id) == ("Other lead", None)
    assert events("qc.flag.decide") == []


def test_a_trainer_editing_the_assigned_set_keeps_it_for_that_reader(
        world: dict[str, Any], library: dict[str, list[Case]]) -> None:
    imported(qc_rows("amina", majors=5))
    [flag] = flags()
    decided = flag_service.decide(flag.id, decision="assign_practice", reason="Practise",
                                  actor=world["qc"], countries=None)
    exercise = decided.exercise
    # The trainers' form sends roles, clinics and countries only.
    edit_exercise(exercise, title="Infiltrates", kind="practice",
                  scheme_key=exercise.scheme_key, case_ids=[c.case_id for c in exercise.cases],
                  actor=world["qc"], audience={"roles": [], "clinic_ids": [], "countries": []})
    db.session.expire_all()
    kept = db.session.get(Exercise, exercise.id)
    assert (kept.title, kept.audience["user_ids"]) == ("Infiltrates", [world["amina"].id])
    assert kept in open_exercises(world["amina"]) and kept not in open_exercises(world["jose"])
