"""Background jobs: long work (case imports, re-scoring, library exports, reminders) run by
a queue consumer, not inside a request."""

from flask import Blueprint

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
