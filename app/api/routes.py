"""The API's operations: thin, like the pages' routes, calling the same services with the
same access rules (roles_required, the quizzes' attempt and exercise look-ups, the answer
key's disclosure rules)."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, make_response
from flask_login import current_user  # type: ignore[import-untyped]
from sqlalchemy import select

from app.api import bp
from app.api.schemas import (
    AttemptOut,
    CaseDetailOut,
    CaseListArgs,
    CasePage,
    CertificateOut,
    ClinicOut,
    ExerciseOut,
    NotSavedError,
    ResultOut,
    UserOut,
)
from app.auth.decorators import roles_required
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.cases.access import can_view_case
from app.cases.models import Case
from app.cases.services import LIBRARY_ROLES, LibraryFilter, library_query
from app.certification.verify import GUESS_LIMIT, public_record
from app.db_types import utcnow
from app.extensions import db, limiter
from app.quizzes import disclosure, navigation
from app.quizzes.answers import StaleAnswer, save_answer
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.results import score
from app.quizzes.routes import TRAINING_ROLES, _attempt_or_404, _exercise_or_404
from app.quizzes.schemas import AnswerIn, SavedOut
from app.quizzes.services import (
    AttemptError,
    open_attempt,
    open_exercises,
    start_attempt,
    start_refusals,
    submit_attempt,
)

PUBLIC: list[dict[str, list[str]]] = []  # an operation anyone may call (no token)


def _refuse(exc: AttemptError) -> Any:
    db.session.rollback()
    abort(exc.status, description=exc.sentence)


# ---- cases (the library: trainers and administrators) -------------------------------------


def _case_json(case: Case, *, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": case.id, "status": case.status, "exam_bank": case.exam_bank,
        "source": case.source, "difficulty": case.difficulty, "age_band": case.age_band,
        "sex": case.sex, "reference_classification": case.reference_classification,
        "reference_tb_positive": case.reference_tb_positive,
        "tags": sorted(link.tag for link in case.tag_links),
        "images": [{"id": i.id, "view": i.view, "is_prior": i.is_prior,
                    "modality": i.modality, "rows": i.rows, "columns": i.columns}
                   for i in case.images],
        "created_at": case.created_at,
    }
    if detail:
        data.update(teaching_notes=case.teaching_notes,
                    teaching_notes_by_language=case.notes_by_language, licence=case.licence,
                    findings=sorted(link.finding for link in case.finding_links))
    return data


@bp.route("/cases")
@bp.arguments(CaseListArgs, location="query")
@bp.response(200, CasePage)
@roles_required(*LIBRARY_ROLES)
def list_cases(args: dict[str, Any]) -> dict[str, Any]:
    """The case library, newest first (the library page's filters)."""
    flt = LibraryFilter(status=args.get("status"), tb=args.get("tb"), tag=args.get("tag"))
    page = db.paginate(library_query(flt), page=args["page"], per_page=args["per_page"],
                       error_out=False)
    return {"items": [_case_json(c) for c in page.items], "page": args["page"],
            "per_page": args["per_page"], "total": page.total or 0}


@bp.route("/cases/<int:case_id>")
@bp.response(200, CaseDetailOut)
@roles_required(*LIBRARY_ROLES)
def get_case(case_id: int) -> dict[str, Any]:
    """One case of the library, with its images, tags and findings."""
    case = db.session.get(Case, case_id)
    if case is None or not can_view_case(current_user, case):
        abort(404, description=f"There is no case {case_id}.")
    return _case_json(case, detail=True)


# ---- exercises and attempts (trainees, and trainers trying them) ---------------------------


@bp.route("/exercises")
@bp.response(200, ExerciseOut(many=True))
@roles_required(*TRAINING_ROLES)
def list_exercises() -> list[dict[str, Any]]:
    """The exercises open to the caller, as on the training page."""
    exercises = open_exercises(current_user)
    refusals = start_refusals(exercises, current_user)
    rows = []
    for exercise in exercises:
        current = open_attempt(exercise, current_user)
        rows.append({
            "id": exercise.id, "title": exercise.title, "description": exercise.description,
            "kind": exercise.kind, "scheme_key": exercise.scheme_key,
            "cases": len(exercise.cases), "time_limit_minutes": exercise.time_limit_minutes,
            "closes_at": exercise.closes_at,
            "open_attempt": current.id if current is not None else None,
            "start_refused": refusals.get(exercise.id),
        })
    return rows


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    positions = {case_id: n for n, case_id in enumerate(attempt.case_order, 1)}
    saved = sorted((a for a in attempt.answers if a.case_id in positions),
                   key=lambda a: positions[a.case_id])
    answers = [{"position": positions[a.case_id], "case_id": a.case_id,
                "answers": a.answers or {}, "marks": a.marks or [],
                "revision": a.revision or 0, "flagged": bool(a.flagged)} for a in saved]
    return {"id": attempt.id, "exercise_id": attempt.exercise_id, "state": attempt.state,
            "number": attempt.number, "started_at": attempt.started_at,
            "deadline_at": attempt.deadline_at, "ended_at": attempt.ended_at,
            "case_ids": list(attempt.case_order), "answers": answers}


@bp.route("/exercises/<int:exercise_id>/attempts", methods=["POST"])
@bp.response(201, AttemptOut)
@roles_required(*TRAINING_ROLES)
def start(exercise_id: int) -> dict[str, Any]:
    """Start an attempt (or go on with the one in progress), as the Start button does."""
    try:
        attempt = start_attempt(_exercise_or_404(exercise_id), current_user)
    except AttemptError as exc:
        _refuse(exc)
    return _attempt_json(attempt)


@bp.route("/attempts/<int:attempt_id>")
@bp.response(200, AttemptOut)
@roles_required(*TRAINING_ROLES)
def get_attempt(attempt_id: int) -> dict[str, Any]:
    """One of the caller's attempts, with the answers saved so far."""
    return _attempt_json(_attempt_or_404(attempt_id))


@bp.route("/attempts/<int:attempt_id>/answers/<int:position>", methods=["PUT"])
@bp.arguments(AnswerIn)
@bp.response(200, SavedOut)
@bp.alt_response(409, schema=NotSavedError,
                 description='Not saved: another save came first (``reason`` "stale", with '
                             "the newer answer's ``revision``, ``answers`` and ``marks``), or "
                             "the answer is final.")
@roles_required(*TRAINING_ROLES)
def save(body: dict[str, Any], attempt_id: int, position: int) -> dict[str, Any]:
    """Save the answer to the case at ``position`` (1-based), as the page's autosave does."""
    attempt = _attempt_or_404(attempt_id)
    try:
        case_id = navigation.case_id_at(attempt, position)
        answer = save_answer(attempt, current_user, case_id, body["answers"], body["marks"],
                             expected_revision=body["revision"])
    except StaleAnswer as exc:
        db.session.rollback()
        # As the page's autosave: the newer answer comes back, to be checked and sent again.
        current = exc.current
        abort(make_response(jsonify(
            error="Conflict", reason="stale", message=exc.sentence, status=409,
            revision=current.revision, answers=current.answers, marks=current.marks), 409))
    except AttemptError as exc:
        _refuse(exc)
    saved_at = answer.saved_at or utcnow()
    seconds_left = None
    if attempt.deadline_at is not None:
        seconds_left = max(0, int((attempt.deadline_at - saved_at).total_seconds()))
    return {"saved": True, "revision": answer.revision, "saved_at": saved_at,
            "seconds_left": seconds_left}


@bp.route("/attempts/<int:attempt_id>/submit", methods=["POST"])
@bp.response(200, AttemptOut)
@roles_required(*TRAINING_ROLES)
def submit(attempt_id: int) -> dict[str, Any]:
    """Submit the attempt; submitting one that has ended returns it unchanged."""
    attempt = _attempt_or_404(attempt_id)
    try:
        submit_attempt(attempt, current_user)
    except AttemptError as exc:
        _refuse(exc)
    return _attempt_json(attempt)


@bp.route("/attempts/<int:attempt_id>/result")
@bp.response(200, ResultOut)
@roles_required(*TRAINING_ROLES)
def result(attempt_id: int) -> dict[str, Any]:
    """The result, showing of the score and of each case's key what the result page shows."""
    attempt = _attempt_or_404(attempt_id)
    if attempt.state == AttemptState.IN_PROGRESS.value:
        abort(409, description="The attempt is still in progress: submit it first.")
    shown = disclosure.of_attempt(attempt)
    cases: list[dict[str, Any]] = [{"position": n, "case_id": case_id, "tb_correct": None,
              "classification_correct": None, "grade": None, "reference_tb_positive": None,
              "reference_answers": None, "teaching_notes": None,
              "teaching_notes_by_language": None}
             for n, case_id in enumerate(attempt.case_order, 1)]
    metrics = None
    if shown.score or any(c.anything for c in shown.cases):
        scored, feedback = score(attempt)
        if shown.score:
            metrics = {k: (None if v is None else float(v)) for k, v in scored.metrics.items()}
        for row, item in zip(cases, feedback, strict=True):
            case_shown = shown.at(item.position)
            if case_shown.correctness:
                row.update(tb_correct=item.score.tb_correct, grade=item.score.grade,
                           classification_correct=item.score.classification_correct)
            if case_shown.reference:
                row.update(reference_tb_positive=item.reference.tb_positive,
                           reference_answers=item.reference.answers)
            if case_shown.teaching_notes:
                row["teaching_notes"] = item.case.teaching_notes
                row["teaching_notes_by_language"] = item.case.notes_by_language
    return {"attempt_id": attempt.id, "state": attempt.state, "score_shown": shown.score,
            "passed": attempt.passed if shown.score else None, "metrics": metrics,
            "cases": cases}


# ---- certificates (public) ----------------------------------------------------------------


@bp.route("/certificates/<code>")
@bp.response(200, CertificateOut)
@bp.doc(security=PUBLIC)
@limiter.limit(GUESS_LIMIT)
def verify_certificate(code: str) -> dict[str, Any]:
    """Verify a certificate from its code (anyone; as the public verification page)."""
    found = public_record(code)
    if found is None:
        abort(404, description="No certificate has this code.")
    return found


# ---- users and clinics (administrators) ---------------------------------------------------


@bp.route("/users")
@bp.response(200, UserOut(many=True))
@roles_required(Role.ADMIN)
def list_users() -> list[dict[str, Any]]:
    """Every account, as on the administrators' users page."""
    return [{"id": u.id, "username": u.username, "full_name": u.full_name, "email": u.email,
             "active": u.active, "roles": sorted(r.value for r in u.roles),
             "clinic_id": u.clinic_id}
            for u in db.session.scalars(select(User).order_by(User.full_name))]


@bp.route("/clinics")
@bp.response(200, ClinicOut(many=True))
@roles_required(Role.ADMIN)
def list_clinics() -> list[dict[str, Any]]:
    """Every clinic, as on the administrators' clinics page."""
    rows = db.session.scalars(select(Clinic).order_by(Clinic.country_code, Clinic.name))
    return [{"id": c.id, "name": c.name, "city": c.city, "country_code": c.country_code}
            for c in rows]


