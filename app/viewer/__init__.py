"""Browser viewer for chest radiographs."""

from flask import Blueprint

bp = Blueprint("viewer", __name__, url_prefix="/viewer")
