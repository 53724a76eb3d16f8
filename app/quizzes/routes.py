from __future__ import annotations

from typing import NoReturn

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.cases.forms import ActionForm
from app.cases.models import Case
from app.extensions import db, keeping_loaded
from app.quizzes import (
    access,
    answers,
    bp,
    disclosure,
    navigation,
    result_page,
    review_rules,
)
from app.quizzes.answers import StaleAnswer
from app.quizzes.forms import ConfirmForm, FlagForm
from app.quizzes.models import Attempt, AttemptState, Exercise, ExerciseKind
from app.quizzes.results import (
    answered_cases,
    case_feedback,
    learning_curve,
    peer_percentile,
    score,
)
from app.quizzes.schemas import AnswerIn
from app.quizzes.services import (
    AttemptError,
    abandon_attempt,
    attempts_of,
    check_case,
    expire_if_overdue,
    expire_overdue_attempts,
    open_attempt,
    open_case,
    open_exercises,
    start_attempt,
    start_refusals,
    submit_attempt,
    view_case,
)
from app.schemes.registry import classification_item, scheme_of
from app.validation import load_json_body
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
        abort(404, description=gettext("There is no such exercise."))
    return exercise


def _attempt_or_404(attempt_id: int) -> Attempt:
    # With its exercise in the same statement: every page of an attempt reads its rules.
    attempt = db.session.get(Attempt, attempt_id, options=[joinedload(Attempt.exercise)])
    if attempt is None or attempt.user_id != current_user.id:
        abort(404, description=gettext("There is no such attempt."))
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
    # The navigator's tiles first: telling answered cases as the scoring does loads every
    # case of the attempt with its images, so the viewed case and the next one (and their
    # images, for the viewer and the prefetch) come from the session below, not again
    # from the database: the page costs the same few statements whatever the cases.
    with keeping_loaded(Case) as _cases:
        shown = navigation.tiles(attempt, position)
    try:
        viewed, answer = view_case(attempt, current_user, position - 1)
    except AttemptError as exc:
        if attempt.state != AttemptState.IN_PROGRESS.value:  # it just timed out
            return redirect(url_for("quizzes.result", attempt_id=attempt.id))
        _refuse(exc)
    total = len(attempt.case_order)
    next_case = None
    if position < total:
        next_case = db.session.get(Case, attempt.case_order[position])
    access.remember_attempt_images(attempt, (viewed, next_case),
                                   current_app.config["IMAGE_GRANT_SECONDS"])
    scheme = scheme_of(attempt.exercise)
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
    """The page's autosave (JSON). ``revision``, the revision the page last saw, makes a
    save based on an older answer a 409 (reason "stale") carrying the newer answer."""
    # Locked from the start: the save is a few statements, and one lookup does both.
    attempt = answers.locked_attempt(attempt_id)
    if attempt is None or attempt.user_id != current_user.id:
        abort(404, description=gettext("There is no such attempt."))
    expire_if_overdue(attempt)
    body = load_json_body(AnswerIn())
    try:
        saved = answers.autosave(attempt, current_user, navigation.case_id_at(attempt, position),
                                 body["answers"], body["marks"], body["revision"])
    except StaleAnswer as exc:
        db.session.rollback()
        return jsonify(error="Not saved", reason="stale", message=exc.sentence, status=409,
                       ended=False, revision=exc.current.revision,
                       answers=exc.current.answers, marks=exc.current.marks), 409
    except AttemptError as exc:
        db.session.rollback()
        ended = attempt.state != AttemptState.IN_PROGRESS.value
        return jsonify(error="Not saved", message=exc.sentence, status=exc.status,
                       reason="ended" if ended else "refused", ended=ended), exc.status
    return jsonify(saved=True, revision=saved.revision, saved_at=saved.saved_at.isoformat(),
                   seconds_left=saved.seconds_left, position=position, answered=saved.answered)


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
        abort(400, description=" ".join(map(str, form.flagged.errors))
              or gettext("Send flagged=1 or flagged=0."))
    try:
        answer = navigation.set_flag(attempt, current_user, position, form.flagged.data == "1")
    except AttemptError as exc:
        db.session.rollback()
        ended = attempt.state != AttemptState.IN_PROGRESS.value
        if _wants_json():
            return jsonify(error="Not flagged", message=exc.sentence, status=exc.status,
                           ended=ended), exc.status
        if ended:  # a page left open after the attempt ended: its result
            flash(gettext("This attempt has ended: nothing more can be changed."), "info")
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
        flash(gettext("This attempt has already ended."), "info")
        return redirect(url_for("quizzes.result", attempt_id=attempt.id))
    if not ConfirmForm().validate_on_submit():
        abort(400, description=gettext("Submit from the summary of the attempt (its \"Submit "
                                       "and finish\" button)."))
    try:
        submit_attempt(attempt, current_user)
    except AttemptError as exc:
        _refuse(exc)
    flash(gettext("Your answers are submitted."), "success")
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
        abort(404, description=gettext("There is no such case in this attempt."))
    every = disclosure.of_attempt(attempt)
    shown = every.at(position)
    if not shown.anything:
        abort(403, description=gettext("The reference read of this case is not shown yet."))
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
        abort(409, description=gettext("The attempt is still in progress."))
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
    from app.quizzes.figures import roc_figure  # matplotlib: only where a figure is drawn

    return _figure(roc_figure(truth, ratings, result.metrics.get("auc"), point))


@bp.route("/attempts/<int:attempt_id>/learning.png")
@roles_required(*TRAINING_ROLES)
def learning_png(attempt_id: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if attempt.state == AttemptState.IN_PROGRESS.value:
        abort(409, description=gettext("The attempt is still in progress."))
    # Every ended attempt at the exercise shares this one's score setting and closing date.
    if not review_rules.visible(attempt, "score"):
        abort(403, description=gettext("Scores of this exercise are not shown yet."))
    from app.quizzes.figures import learning_figure  # matplotlib: only for a figure

    return _figure(learning_figure(learning_curve(attempt),
                                   gettext("accuracy of the sputum decision")))


@bp.route("/attempts/<int:attempt_id>/check/<int:position>", methods=["POST"])
@roles_required(*TRAINING_ROLES)
def check(attempt_id: int, position: int) -> Response:
    attempt = _attempt_or_404(attempt_id)
    if not 1 <= position <= len(attempt.case_order):
        abort(404, description=gettext("There is no such case in this attempt."))
    case_id = attempt.case_order[position - 1]
    if case_id in disclosure.withheld_cases(attempt):
        abort(403, description=gettext("This case is also in an exam: practice shows no "
                                       "feedback for it."))
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
        abort(409, description=gettext("An exam cannot be abandoned: submit it."))
    if attempt.state != AttemptState.IN_PROGRESS.value:
        flash(gettext("This attempt has already ended."), "info")
        return redirect(url_for("quizzes.index"))
    if request.method == "GET":
        return render_template("quizzes/abandon.html", attempt=attempt,
                               confirm_form=ConfirmForm(confirm="yes"),
                               back=_back_position(attempt))
    if not ConfirmForm().validate_on_submit():
        abort(400, description=gettext("Abandon from the confirmation page (its \"Abandon "
                                       "this attempt\" button)."))
    try:
        abandon_attempt(attempt, current_user)
    except AttemptError as exc:
        _refuse(exc)
    flash(gettext("The attempt is abandoned."), "info")
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
