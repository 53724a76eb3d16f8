"""Reading exercises and exams, scored against reference reads."""

from flask import Blueprint

bp = Blueprint("quizzes", __name__, url_prefix="/training")
