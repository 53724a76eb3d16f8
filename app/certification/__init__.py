"""Certification programmes, certificates, verification and dashboards."""

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("certification", __name__, url_prefix="/certification")


@bp.record_once
def _subscribe(state: BlueprintSetupState) -> None:
    """Certificates follow from attempts: listen to what quizzes announces, for this
    application only (app.quizzes imports nothing from here)."""
    from app.certification.reviews import after_rescore
    from app.certification.services import on_attempt_ended, programme_requiring
    from app.quizzes.signals import attempt_ended, attempts_rescored, exercise_deleting

    attempt_ended.connect(on_attempt_ended, sender=state.app)
    attempts_rescored.connect(after_rescore, sender=state.app)
    exercise_deleting.connect(programme_requiring, sender=state.app)
