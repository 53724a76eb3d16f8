"""Case library: anonymized DICOM cases with reference reads."""

from flask import Blueprint

bp = Blueprint("cases", __name__, url_prefix="/cases")
