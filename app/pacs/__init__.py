"""Import from a PACS: admin-configured endpoints (DICOMweb or DIMSE), a search for studies,
and their import through the same de-identifying ingest as uploads."""

from flask import Blueprint

bp = Blueprint("pacs", __name__, url_prefix="/pacs")
