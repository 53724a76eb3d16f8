"""QC concordance pages: the blueprint the QC route modules attach their views to."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("qc", __name__, url_prefix="/qc")
