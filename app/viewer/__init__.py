"""Browser viewer for chest radiographs: ES modules under static/viewer/ (no build step)."""

from flask import Blueprint

bp = Blueprint(
    "viewer", __name__, url_prefix="/viewer", static_folder="static", static_url_path="/static"
)
