from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import (
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.admin.forms import country_choices
from app.auth.decorators import roles_required
from app.auth.models import Clinic
from app.auth.roles import Role
from app.cases.forms import ActionForm
from app.cases.models import Case, CaseStatus
from app.db_types import utcnow
from app.extensions import db
from app.quizzes import (
    access,
    bp,
    disclosure,
    navigation,
    result_page,
    review_rules,
)
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
from app.quizzes.figures import learning_figure, roc_figure
from app.quizzes.forms import ConfirmForm, ExerciseForm, FlagForm, exercise_form_data
from app.quizzes.models import Attempt, AttemptState, Exercise, ExerciseKind
from app.quizzes.results import (
    Population,
    answered_cases,
    case_feedback,
    exercise_statistics,
    learning_curve,
    peer_percentile,
    score,
)
from app.quizzes.selection import (
    CaseRule,
    SelectionError,
    findings_by_label,
    parse_pairs,
    select_cases,
)
from app.quizzes.services import (
    CRITERIA_METRICS,
    AttemptError,
    abandon_attempt,
    attempts_of,
    check_case,
    expire_if_overdue,
    expire_overdue_attempts,
    open_attempt,
    open_case,
    open_exercises,
    save_answer,
    start_attempt,
    start_refusals,
    submit_attempt,
    view_case,
)
from app.schemes.definitions import Scheme, SchemeError
from app.schemes.registry import (
    all_schemes,
    classification_item,
    get_scheme,
    is_image_quality,
    scheme_of,
)
from app.viewer.services import attempt_payload

TRAINING_ROLES = (Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER, Role.TRAINER)

# The case library asks attempts who may see a case and which case may join the exam bank.
bp.record_once(access.connect)


def _refuse(exc: AttemptError) -> NoReturn:
    abort(exc.status, description=exc.sentence)


@bp.route("/")
@roles_required(*TRAINING_ROLES)
def index() -> str:
    expire_overdue_attempts(user=current_user)  # past their time: listed with a result
    exercises = open_exercises(current_user)
    return render_template(
        "quizzes/index.html", exercises=exercises, attempts=attempts_of(current_user),
        open_attempts={e.id: open_attempt(e, current_user) for e in exercises},
        # Instead of a Start button that would be refused, the reason.
        refusals=start_refusals(exercises, current_user),
        action_form=ActionForm(),
    )


def _exercise_or_404(exercise_id: int) -> Exercise:
    exercise = db.session.get(Exercise, exercise_id)
    if exercise is None or not exercise.published:
        abort(404, description="There is no such exercise.")
    return exercise


def _attempt_or_404(attempt_id: int) -> Attempt:
    attempt = db.session.get(Attempt, attempt_id)
    if attempt is None or attempt.user_id != current_user.id:
        abort(404, description="There is no such attempt.")
    expire_if_overdue(attempt)  # reading an attempt past its time ends it, with its result
    return attempt


@bp.route("/exercises/<int:exercise_id>/start", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def start(exercise_id: int) -> Response:
    try:
        attempt = start_attempt(_exercise_or_404(exercise_id), current_user)
    except AttemptError as exc:
        _refuse(exc)
    return redirect(url_for("quizzes.case", attempt_id=attempt.id, position=1))


@bp.route("/attempts/<int:attempt_id>/<int:position>")
@roles_required(*TRAINING_ROLES)
def case(attempt_id: int, position: int) -> Response | str:
    attempt = _attempt_or_404(attempt_id)
    if attempt.state != AttemptState.IN_PROGRESS.value:
        return redirect(url_for("quizzes.result", attempt_id=attempt.id))
    try:
        viewed, answer = view_case(attempt, current_user, position - 1)
    except AttemptError as exc:
        if attempt.state != AttemptState.IN_PROGRESS.value:  # it just timed out
            return redirect(url_for("quizzes.result", attempt_id=attempt.id))
        _refuse(exc)
    total = len(attempt.case_order)
    next_case = None
    if position < total:
        next_case = db.session.get(type(viewed), attempt.case_order[position])
    scheme = scheme_of(attempt.exercise)
    shown = navigation.tiles(attempt, position)
    flagged = shown[position - 1].flagged
    return render_template(
        "quizzes/case.html", attempt=attempt, case=viewed, answer=answer, position=position,
        total=total, scheme=scheme, action_form=ActionForm(), tiles=shown, flagged=flagged,
        answered=sum(tile.answered for tile in shown),
        flag_form=FlagForm(flagged="0" if flagged else "1"),
        confirm_form=ConfirmForm(confirm="yes"),
        classification=classification_item(scheme),
        immediate_feedback=review_rules.immediate_feedback(attempt.exercise),
        payload=attempt_payload(attempt, viewed, answer, next_case, position),
    )


def _case_id_or_404(attempt: Attempt, position: int) -> int:
    try:
        return navigation.case_id_at(attempt, position)
    except AttemptError as exc:
        _refuse(exc)


@bp.route("/attempts/<int:attempt_id>/<int:position>/answer", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def autosave(attempt_id: int, position: int) -> Response | tuple[Response, int]:
    attempt = _attempt_or_404(attempt_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='Send JSON: {"answers": {...}, "marks": [...]}.')
    try:
        case_id = navigation.case_id_at(attempt, position)
        answer = save_answer(attempt, current_user, case_id, body.get("answers"),
                             body.get("marks"))
    except AttemptError as exc:
        db.session.rollback()
        ended = attempt.state != AttemptState.IN_PROGRESS.value
        return jsonify(error="Not saved", message=exc.sentence, status=exc.status,
                       ended=ended), exc.status
    saved_at = answer.saved_at or utcnow()
    seconds_left = None
    if attempt.deadline_at is not None:
        seconds_left = max(0, int((attempt.deadline_at - saved_at).total_seconds()))
    return jsonify(saved=True, revision=answer.revision, saved_at=saved_at.isoformat(),
                   seconds_left=seconds_left, position=position,
                   answered=navigation.is_answered(attempt, position))


@bp.route("/attempts/<int:attempt_id>/<int:position>/opened", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def opened(attempt_id: int, position: int) -> Response | tuple[Response, int]:
    """The case page has loaded (posted by attempt.js): the reading clock is the server's."""
    attempt = _attempt_or_404(attempt_id)
    try:
        open_case(attempt, current_user, navigation.case_id_at(attempt, position))
    except AttemptError as exc:
        db.session.rollback()
        ended = attempt.state != AttemptState.IN_PROGRESS.value
        return jsonify(error="Not recorded", message=exc.sentence, status=exc.status,
                       ended=ended), exc.status
    return jsonify(opened=True)


@bp.route("/attempts/<int:attempt_id>/<int:position>/flag", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def flag(attempt_id: int, position: int) -> Response | tuple[Response, int]:
    """Flag a case for review, or clear its flag: the page's script asks for JSON, the
    button without script comes back to the case."""
    attempt = _attempt_or_404(attempt_id)
    _case_id_or_404(attempt, position)
    form = FlagForm()
    if not form.validate_on_submit():
        abort(400, description=" ".join(form.flagged.errors) or "Send flagged=1 or flagged=0.")
    try:
        answer = navigation.set_flag(attempt, current_user, position, form.flagged.data == "1")
    except AttemptError as exc:
        db.session.rollback()
        ended = attempt.state != AttemptState.IN_PROGRESS.value
        if _wants_json():
            return jsonify(error="Not flagged", message=exc.sentence, status=exc.status,
                           ended=ended), exc.status
        if ended:  # a page left open after the attempt ended: its result
            flash("This attempt has ended: nothing more can be changed.", "info")
            return redirect(url_for("quizzes.result", attempt_id=attempt.id))
        _refuse(exc)
    if _wants_json():
        return jsonify(position=position, flagged=answer.flagged)
    return redirect(url_for("quizzes.case", attempt_id=attempt.id, position=position))


def _wants_json() -> bool:
    """The page's script asks for JSON (Accept: application/json), a plain form for HTML."""
    return request.accept_mimetypes.best == "application/json"


@bp.route("/attempts/<int:attempt_id>/summary")
@roles_required(*TRAINING_ROLES)
def summary(attempt_id: int) -> Response | str:
    """Before submitting: what is answered, what is not or is flagged, and the rule for
    unanswered cases; the confirmation submits."""
    attempt = _attempt_or_404(attempt_id)
    if attempt.state != AttemptState.IN_PROGRESS.value:
        return redirect(url_for("quizzes.result", attempt_id=attempt.id))
    return render_template("quizzes/summary.html", attempt=attempt,
                           summary=navigation.summary(attempt),
                           confirm_form=ConfirmForm(confirm="yes"))


@bp.route("/attempts/<int:attempt_id>/submit", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def submit(attempt_id: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if attempt.state != AttemptState.IN_PROGRESS.value:
        # Submitted already (a second tab, a double click), or its time ran out.
        flash("This attempt has already ended.", "info")
        return redirect(url_for("quizzes.result", attempt_id=attempt.id))
    if not ConfirmForm().validate_on_submit():
        abort(400, description="Submit from the summary of the attempt (its \"Submit and "
                               "finish\" button).")
    try:
        submit_attempt(attempt, current_user)
    except AttemptError as exc:
        _refuse(exc)
    flash("Your answers are submitted.", "success")
    return redirect(url_for("quizzes.result", attempt_id=attempt.id))


@bp.route("/attempts/<int:attempt_id>/review/<int:position>")
@roles_required(*TRAINING_ROLES)
def review(attempt_id: int, position: int) -> str:
    """One case in the viewer with what the review settings show of it: the trainee's marks
    (hit or false when correctness is shown), the reference read and lesions (found or
    missed), the teaching notes. After the attempt, or for a case whose practice feedback
    the trainee asked for during one."""
    attempt = _attempt_or_404(attempt_id)
    if not 1 <= position <= len(attempt.case_order):
        abort(404, description="There is no such case in this attempt.")
    every = disclosure.of_attempt(attempt)
    shown = every.at(position)
    if not shown.anything:
        abort(403, description="The reference read of this case is not shown yet.")
    item = case_feedback(attempt, position)
    scheme = scheme_of(attempt.exercise)
    previous_url, next_url = result_page.review_neighbours(attempt, every, position)
    return render_template(
        "quizzes/review.html", attempt=attempt, item=item, case=item.case, position=position,
        shown=shown, total=len(attempt.case_order), scheme=scheme,
        finding_labels=result_page.finding_labels(scheme),
        payload=disclosure.review_payload(item, shown),
        previous_url=previous_url, next_url=next_url)


def _figure(png: bytes) -> Response:
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.route("/attempts/<int:attempt_id>/roc.png")
@roles_required(*TRAINING_ROLES)
def roc_png(attempt_id: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if attempt.state == AttemptState.IN_PROGRESS.value:
        abort(409, description="The attempt is still in progress.")
    shown = disclosure.of_attempt(attempt)
    # Each step of the curve tells which ratings were given to TB cases: it shows what was
    # right, case by case, not just a score (roc_refusal: 403 unless every case's
    # correctness is shown; 404 when there is no curve to draw).
    result, _ = score(attempt)
    refusal = result_page.roc_refusal(result, scheme_of(attempt.exercise), shown)
    if refusal is not None:
        abort(refusal[0], description=refusal[1])
    # The cases of the AUC, a missing likelihood at its worst rating (as the AUC counts it).
    truth, ratings = [tb for tb, _ in result.roc], [rating for _, rating in result.roc]
    sens, spec = result.metrics.get("sensitivity"), result.metrics.get("specificity")
    point = (1 - spec, sens) if sens is not None and spec is not None else None
    return _figure(roc_figure(truth, ratings, result.metrics.get("auc"), point))


@bp.route("/attempts/<int:attempt_id>/learning.png")
@roles_required(*TRAINING_ROLES)
def learning_png(attempt_id: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if attempt.state == AttemptState.IN_PROGRESS.value:
        abort(409, description="The attempt is still in progress.")
    # Every ended attempt at the exercise shares this one's score setting and closing date.
    if not review_rules.visible(attempt, "score"):
        abort(403, description="Scores of this exercise are not shown yet.")
    return _figure(learning_figure(learning_curve(attempt), "accuracy of the sputum decision"))


def _exercise_form(exercise: Exercise | None = None) -> ExerciseForm:
    """The exercise form with its choices; on a GET for ``exercise``, filled from it (the
    thresholds in %, as the form takes them)."""
    data = None
    if exercise is not None and request.method == "GET":
        data = exercise_form_data(exercise)
    form = ExerciseForm(data=data)
    form.scheme.choices = [SelectChoice(k, s.name) for k, s in all_schemes().items()]
    published = db.session.scalars(select(Case).where(
        Case.status == CaseStatus.PUBLISHED.value).options(selectinload(Case.reads))
        .order_by(Case.id)).all()
    kinds = access.kinds_by_case()
    labels = _classification_labels()
    form.cases.choices = [SelectChoice(c.id, _case_label(c, kinds.get(c.id, set()), labels))
                          for c in published]
    form.audience_roles.choices = [SelectChoice(r.value, r.label) for r in
                                   (Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER)]
    clinics = db.session.scalars(select(Clinic).order_by(Clinic.name)).all()
    form.audience_clinics.choices = [SelectChoice(c.id, f"{c.name} ({c.country_code})")
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
            flash(f"Exercise {exercise.title} created with {len(exercise.cases)} cases.",
                  "success")
            return redirect(url_for("quizzes.manage"))
    elif request.method == "POST":
        status = 400
    return _manage_page(form, status)


def _managed_or_404(exercise_id: int) -> Exercise:
    exercise = db.session.get(Exercise, exercise_id)
    if exercise is None:
        abort(404, description=f"There is no exercise {exercise_id}.")
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
            flash(f"Exercise {exercise.title} saved.", "success")
            return redirect(url_for("quizzes.manage"))
    elif request.method == "POST":
        status = 400
    return render_template("quizzes/edit.html", form=form, exercise=exercise,
                           refusal=refusal), status


def _action(exercise_id: int, act: Callable[[Exercise], str]) -> Response:
    """A button of the exercises list (CSRF-checked): do it, or refuse with the reason."""
    exercise = _managed_or_404(exercise_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form's security token is missing or has expired: reload "
                               "the page and try again.")
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
        return f"{copy.title} created: edit it, then publish it."
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/publish", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def publish(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        publish_exercise(exercise, actor=current_user)
        return f"{exercise.title} is published."
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/close", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def close(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        close_exercise(exercise, actor=current_user)
        return (f"{exercise.title} is closed: no new attempts; attempts in progress may "
                "still be finished.")
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/delete", methods=["POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def delete(exercise_id: int) -> Response:
    def act(exercise: Exercise) -> str:
        title = exercise.title
        delete_exercise(exercise, actor=current_user)
        return f"{title} is deleted."
    return _action(exercise_id, act)


@bp.route("/manage/<int:exercise_id>/statistics")
@roles_required(Role.TRAINER, Role.ADMIN)
def statistics(exercise_id: int) -> str:
    exercise = db.session.get(Exercise, exercise_id)
    if exercise is None:
        abort(404, description="There is no such exercise.")
    try:
        population = Population(request.args.get("attempts", Population.FIRST.value))
    except ValueError:
        abort(400, description="Compute the statistics from first or all attempts "
                               "(attempts=first or attempts=all).")
    stats = exercise_statistics(exercise_id, population)
    return render_template("quizzes/statistics.html", exercise=exercise, stats=stats)


def _chosen_cases(form: ExerciseForm) -> list[int]:
    """The ticked cases, or cases drawn by the rule when a number of cases is given."""
    if not form.rule_total.data:
        if not form.cases.data:
            raise AttemptError("choose at least one case, or give a rule")
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
        raise SelectionError(str(exc)) from None


def _classification_labels() -> dict[str, str]:
    """The schemes' words for the classifications the library keeps as keys."""
    labels: dict[str, str] = {}
    for scheme in all_schemes().values():
        key = classification_item(scheme)
        if key:
            for option in scheme.item(key).options or ():
                labels.setdefault(option.value, option.label)
    return labels


def _case_label(case: Case, kinds: set[str], labels: dict[str, str]) -> str:
    classification = case.reference_classification
    reference = labels.get(classification, classification) if classification else \
        "no reference"
    tb = " · TB-suggestive" if case.reference_tb_positive else ""
    bank = " · exam bank" if case.exam_bank else ""
    if any(r.current and is_image_quality(r.scheme_key) for r in case.reads):
        bank += " · image-quality read"
    # Practice sets and exams never share a case: say where each one already is.
    used = "".join(f" · in {'an exam' if kind == 'exam' else 'a practice set'}"
                   for kind in sorted(kinds))
    return (f"{case.title}: {reference}{tb}{bank}{used} · "
            f"{case.difficulty or 'difficulty not set'}")


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


@bp.route("/attempts/<int:attempt_id>/check/<int:position>", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def check(attempt_id: int, position: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if not 1 <= position <= len(attempt.case_order):
        abort(404, description="There is no such case in this attempt.")
    case_id = attempt.case_order[position - 1]
    if case_id in disclosure.withheld_cases(attempt):
        abort(403, description="This case is also in an exam: practice shows no feedback "
                               "for it.")
    try:
        check_case(attempt, current_user, case_id)
    except AttemptError as exc:
        _refuse(exc)
    return redirect(url_for("quizzes.review", attempt_id=attempt.id, position=position))


@bp.route("/attempts/<int:attempt_id>/abandon", methods=["GET", "POST"])
@roles_required(*TRAINING_ROLES)
def abandon(attempt_id: int) -> Response | str:
    """A practice attempt is abandoned from its confirmation page alone."""
    attempt = _attempt_or_404(attempt_id)
    if attempt.exercise.kind == ExerciseKind.EXAM.value:
        abort(409, description="An exam cannot be abandoned: submit it.")
    if attempt.state != AttemptState.IN_PROGRESS.value:
        flash("This attempt has already ended.", "info")
        return redirect(url_for("quizzes.index"))
    if request.method == "GET":
        return render_template("quizzes/abandon.html", attempt=attempt,
                               confirm_form=ConfirmForm(confirm="yes"),
                               back=_back_position(attempt))
    if not ConfirmForm().validate_on_submit():
        abort(400, description="Abandon from the confirmation page (its \"Abandon this "
                               "attempt\" button).")
    try:
        abandon_attempt(attempt, current_user)
    except AttemptError as exc:
        _refuse(exc)
    flash("The attempt is abandoned.", "info")
    return redirect(url_for("quizzes.index"))


def _back_position(attempt: Attempt) -> int:
    """The case the confirmation page goes back to (?from=<position>), the first if none."""
    position = request.args.get("from", 1, type=int) or 1
    return position if 1 <= position <= len(attempt.case_order) else 1


@bp.route("/attempts/<int:attempt_id>/result")
@roles_required(*TRAINING_ROLES)
def result(attempt_id: int) -> str:
    attempt = _attempt_or_404(attempt_id)
    shown = disclosure.of_attempt(attempt)
    if attempt.state == AttemptState.IN_PROGRESS.value or not (
            shown.score or any(c.anything for c in shown.cases)):
        return render_template("quizzes/result.html", attempt=attempt,
                               answered=answered_cases(attempt), result=None, feedback=[],
                               scheme=None, shown=shown, notes=[])
    result, feedback = score(attempt)
    answered = answered_cases(attempt, result)  # as the scoring counts them (blank_cases)
    scheme = scheme_of(attempt.exercise)
    return render_template("quizzes/result.html", attempt=attempt, answered=answered,
                           result=result, feedback=feedback, scheme=scheme, shown=shown,
                           percentile=peer_percentile(attempt),
                           attempts_made=len(learning_curve(attempt)),
                           **result_page.context(attempt, result, feedback, shown, scheme,
                                                 current_user))
