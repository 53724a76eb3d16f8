"""The trainers' exercise pages: build exercises from published library cases (by hand or
by rule), edit them until their first attempt, clone, publish, close and delete them, and
see their statistics. The work is app/quizzes/exercises.py's."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from app.admin.forms import country_choices
from app.auth.decorators import roles_required
from app.auth.models import Clinic
from app.auth.roles import Role
from app.cases.forms import DIFFICULTIES, ActionForm
from app.cases.models import Case, CaseStatus
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_, current_language
from app.quizzes import access, bp, review_rules
from app.quizzes.exercises import (
    attempt_count,
    attempt_counts,
    clone_exercise,
    close_exercise,
    create_exercise,
    delete_exercise,
    delete_refusal,
    edit_exercise,
    edit_refusal,
    publish_exercise,
)
from app.quizzes.forms import ExerciseForm, exercise_form_data
from app.quizzes.models import Exercise, ExerciseKind
from app.quizzes.rescoring_job import start_rescoring
from app.quizzes.results import Population, exercise_statistics
from app.quizzes.selection import (
    CaseRule,
    SelectionError,
    findings_by_label,
    parse_pairs,
    select_cases,
)
from app.quizzes.services import CRITERIA_METRICS, AttemptError
from app.schemes.errors import SchemeError
from app.schemes.parts import Scheme
from app.schemes.registry import (
    all_schemes,
    classification_item,
    get_scheme,
    is_image_quality,
)


def _refuse(exc: AttemptError) -> None:
    abort(exc.status, description=exc.sentence)


def _exercise_form(exercise: Exercise | None = None) -> ExerciseForm:
    """The exercise form with its choices; on a GET for ``exercise``, filled from it (the
    thresholds in %, as the form takes them)."""
    data = None
    if exercise is not None and request.method == "GET":
        data = exercise_form_data(exercise)
    form = ExerciseForm(data=data)
    form.scheme.choices = [(k, s.name_in(current_language())) for k, s in all_schemes().items()]
    published = db.session.scalars(select(Case).where(
        Case.status == CaseStatus.PUBLISHED.value).options(selectinload(Case.reads))
        .order_by(Case.id)).all()
    kinds = access.kinds_by_case()
    labels = _classification_labels()
    form.cases.choices = [(c.id, _case_label(c, kinds.get(c.id, set()), labels))
                          for c in published]
    form.audience_roles.choices = [(r.value, r.label) for r in
                                   (Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER)]
    clinics = db.session.scalars(select(Clinic).order_by(Clinic.name)).all()
    form.audience_clinics.choices = [(c.id, f"{c.name} ({c.country_code})")
                                     for c in clinics]
    form.audience_countries.choices = country_choices()
    return form


def _settings(form: ExerciseForm) -> dict[str, Any]:
    """The service's keyword arguments from a validated form: thresholds from % to the
    stored fractions, cases ticked or drawn by the rule."""
    criteria = [(metric, float(value) / scale) for metric, value, scale in (
        ("sensitivity", form.min_sensitivity.data, 100),
        ("specificity", form.min_specificity.data, 100),
        ("kappa", form.min_kappa.data, 1),
        ("lesion_localisation_sensitivity", form.min_localisation.data, 100),
    ) if value is not None]
    return {
        "title": form.title.data or "", "kind": form.kind.data or "",
        "scheme_key": form.scheme.data or "", "case_ids": _chosen_cases(form),
        "time_limit_minutes": form.time_limit.data, "max_attempts": form.max_attempts.data,
        "cooldown_hours": form.cooldown_hours.data or 0,
        "opens_at": _utc(form.opens_at.data), "closes_at": _utc(form.closes_at.data),
        "shuffle": bool(form.shuffle.data), "criteria": criteria,
        "review": {item: getattr(form, f"review_{item}").data
                   for item in review_rules.ITEMS if getattr(form, f"review_{item}").data},
        "audience": {"roles": form.audience_roles.data or [],
                     "clinic_ids": form.audience_clinics.data or [],
                     "countries": form.audience_countries.data or []},
    }


def _manage_page(form: ExerciseForm, status: int) -> tuple[str, int]:
    exercises = db.session.scalars(select(Exercise).order_by(Exercise.id.desc())).all()
    attempts = attempt_counts()
    return render_template(
        "quizzes/manage.html", form=form, exercises=exercises, metrics=CRITERIA_METRICS,
        attempts=attempts, action_form=ActionForm(), now=utcnow(),
        edit_refusals={e.id: edit_refusal(attempts.get(e.id, 0)) for e in exercises},
        delete_refusals={e.id: delete_refusal(attempts.get(e.id, 0)) for e in exercises},
    ), status


@bp.route("/manage", methods=["GET", "POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def manage() -> Response | tuple[str, int]:
    """Trainers build exercises from published library cases and manage them."""
    form = _exercise_form()
    status = 200
    if form.validate_on_submit():
        try:
            exercise = create_exercise(actor=current_user, **_settings(form))
        except (AttemptError, SelectionError) as exc:
            db.session.rollback()
            form.form_errors.append(exc.sentence)
            status = exc.status
        else:
            flash(gettext("Exercise %(title)s created with %(count)s cases.",
                          title=exercise.title, count=len(exercise.cases)), "success")
            return redirect(url_for("quizzes.manage"))
    elif request.method == "POST":
        status = 400
    return _manage_page(form, status)


def _managed_or_404(exercise_id: int) -> Exercise:
    exercise = db.session.get(Exercise, exercise_id)
    if exercise is None:
        abort(404, description=gettext("There is no exercise %(id)s.", id=exercise_id))
    return exercise


@bp.route("/manage/<int:exercise_id>/edit", methods=["GET", "POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def edit(exercise_id: int) -> Response | tuple[str, int]:
    exercise = _managed_or_404(exercise_id)
    refusal = edit_refusal(attempt_count(exercise))
    form = _exercise_form(exercise)
    status = 200
    if refusal:
        # The page says why instead of offering a form that would be refused.
        status = 409 if request.method == "POST" else 200
    elif form.validate_on_submit():
        try:
            edit_exercise(exercise, actor=current_user, **_settings(form))
        except (AttemptError, SelectionError) as exc:
            db.session.rollback()
            form.form_errors.append(exc.sentence)
            status = exc.status
        else:
            flash(gettext("Exercise %(title)s saved.", title=exercise.title), "success")
            return redirect(url_for("quizzes.manage"))
    elif request.method == "POST":
        status = 400
    return render_template("quizzes/edit.html", form=form, exercise=exercise,
                           refusal=refusal), status


def _action(exercise_id: int, act: Callable[[Exercise], str]) -> Response:
    """A button of the exercises list (CSRF-checked): do it, or refuse with the reason."""
    exercise = _managed_or_404(exercise_id)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("The form's security token is missing or has expired: "
                                       "reload the page and try again."))
    try:
        message = act(exercise)
    except AttemptError as exc:
        db.session.rollback()
        _refuse(exc)
    flash(message, "success")
    return redirect(url_for("quizzes.manage"))


@bp.route("/manage/<int:exercise_id>/clone", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def clone(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        copy = clone_exercise(exercise, actor=current_user)
        return gettext("%(title)s created: edit it, then publish it.", title=copy.title)
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/publish", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def publish(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        publish_exercise(exercise, actor=current_user)
        return gettext("%(title)s is published.", title=exercise.title)
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/close", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def close(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        close_exercise(exercise, actor=current_user)
        return gettext("%(title)s is closed: no new attempts; attempts in progress may "
                       "still be finished.", title=exercise.title)
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/delete", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def delete(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        title = exercise.title
        delete_exercise(exercise, actor=current_user)
        return gettext("%(title)s is deleted.", title=title)
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/statistics")
@roles_required(Role.TRAINER, Role.ADMIN)
def statistics(exercise_id: int) -> str:
    exercise = db.session.get(Exercise, exercise_id)
    if exercise is None:
        abort(404, description=gettext("There is no such exercise."))
    try:
        population = Population(request.args.get("attempts", Population.FIRST.value))
    except ValueError:
        abort(400, description=gettext("Compute the statistics from first or all attempts "
                                       "(attempts=first or attempts=all)."))
    stats = exercise_statistics(exercise_id, population)
    return render_template("quizzes/statistics.html", exercise=exercise, stats=stats,
                           action_form=ActionForm())


@bp.route("/manage/<int:exercise_id>/rescore", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def rescore(exercise_id: int) -> Response:
    """Re-score the exercise's ended attempts (after its cases' reference reads were
    corrected) as a background job; its page shows the progress and the outcome."""
    exercise = _managed_or_404(exercise_id)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("The form's security token is missing or has expired: "
                                       "reload the page and try again."))
    job = start_rescoring(exercise.id, actor=current_user)
    return redirect(url_for("jobs.detail", job_id=job.id), 303)


def _chosen_cases(form: ExerciseForm) -> list[int]:
    """The ticked cases, or cases drawn by the rule when a number of cases is given."""
    if not form.rule_total.data:
        if not form.cases.data:
            raise AttemptError(N_("choose at least one case, or give a rule"))
        return list(form.cases.data)
    tb = form.rule_tb_percent.data
    difficulty = parse_pairs(form.rule_difficulty.data or "", integer=False)
    scheme = _form_scheme(form)
    rule = CaseRule(
        total=form.rule_total.data,
        tb_share=tb / 100 if tb is not None else None,
        min_per_finding=findings_by_label(scheme, form.rule_findings.data or ""),
        difficulty_mix={k: v / 100 for k, v in difficulty.items()},
        kind=ExerciseKind.EXAM if form.kind.data == "exam" else ExerciseKind.PRACTICE,
        seed=secrets.randbelow(2**31),
        image_quality=is_image_quality(scheme.key),
    )
    return select_cases(rule)


def _form_scheme(form: ExerciseForm) -> Scheme:
    try:
        return get_scheme(form.scheme.data or "")
    except SchemeError as exc:
        raise SelectionError(exc.message, **exc.params) from None


def _classification_labels() -> dict[str, str]:
    """The schemes' words for the classifications the library keeps as keys."""
    labels: dict[str, str] = {}
    for scheme in all_schemes().values():
        key = classification_item(scheme)
        if key:
            for option in scheme.item(key).options or ():
                labels.setdefault(option.value, option.label_in(current_language()))
    return labels


def _case_label(case: Case, kinds: set[str], labels: dict[str, str]) -> str:
    classification = case.reference_classification
    parts = [labels.get(classification, classification) if classification
             else gettext("no reference")]
    if case.reference_tb_positive:
        parts.append(gettext("TB-suggestive"))
    if case.exam_bank:
        parts.append(gettext("exam bank"))
    if any(r.current and is_image_quality(r.scheme_key) for r in case.reads):
        parts.append(gettext("image-quality read"))
    # Practice sets and exams never share a case: say where each one already is.
    parts.extend(gettext("in an exam") if kind == "exam" else gettext("in a practice set")
                 for kind in sorted(kinds))
    parts.append(str(DIFFICULTIES[case.difficulty]) if case.difficulty in DIFFICULTIES
                 else case.difficulty or gettext("difficulty not set"))
    return f"{case.title}: {' · '.join(parts)}"


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None
