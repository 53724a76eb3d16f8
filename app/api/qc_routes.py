"""QC records in the API: a batch of the QC centre's re-reads, all or none, with the same
checks as a file import (app.qc.importing; the fields are the template's columns,
docs/qc-import.md). A read and write token of a trainer or an administrator."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, make_response
from flask_login import current_user  # type: ignore[import-untyped]
from marshmallow import Schema, fields, validate

from app.api import bp
from app.api.schemas import ApiError
from app.auth.decorators import roles_required
from app.qc.entry import ENTRY_ROLES, MAX_BATCH, import_batch
from app.qc.importing import ImportReport
from app.qc.models import DEFAULT_SCHEME
from app.validation import StrictSchema


class QcBatchIn(StrictSchema):
    scheme = fields.String(load_default=DEFAULT_SCHEME, validate=validate.Length(1, 64),
                           metadata={"description": "The reporting scheme of records that "
                                                    "name none (default tb_screening)."})
    records = fields.List(
        fields.Dict(keys=fields.String()), required=True,
        metadata={"description": f"At most {MAX_BATCH} records, each an object keyed by the "
                                 "import template's columns: study_reference, reader, clinic, "
                                 "read_date, qc_date, qc_radiologist, grade, scheme, "
                                 "primary_<item> and qc_<item> (a multiple choice as a list "
                                 "or ';'-separated), comment (never stored)."})


#: The document's example: the template's first example row (user names to replace).
EXAMPLE = {"scheme": DEFAULT_SCHEME, "records": [{
    "study_reference": "ACC-2026-000123", "reader": "reader.username",
    "read_date": "2026-03-02", "qc_date": "2026-03-09", "qc_radiologist": "qc.radiologist",
    "grade": "3b", "primary_classification": "normal", "qc_classification": "abnormal_tb",
    "qc_findings": ["infiltrate", "cavitary_lesion"], "qc_tb_likelihood": 5}]}


class QcRecordOutcome(Schema):
    index = fields.Integer(required=True, metadata={"description": "The record's position "
                                                                   "in ``records`` (from 0)."})
    status = fields.String(required=True, validate=validate.OneOf(
        ["created", "updated", "unchanged", "duplicate"]))
    record_id = fields.Integer(allow_none=True, required=True)
    same_as_index = fields.Integer(allow_none=True, required=True, metadata={
        "description": "For a duplicate: the earlier record of the batch it repeats."})


class QcBatchOut(Schema):
    batch_id = fields.Integer(required=True)
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    records = fields.List(fields.Nested(QcRecordOutcome), required=True)


class QcProblem(Schema):
    index = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The refused record's position (from 0); null: the whole batch."})
    field = fields.String(required=True)
    reason = fields.String(required=True)


class QcBatchRefused(ApiError):
    """Records refused (``problems``), or a body its schema refuses (``errors``)."""

    problems = fields.List(fields.Nested(QcProblem), metadata={
        "description": "Each problem of the records: nothing was imported."})


def _index(row: int | None) -> int | None:
    return row - 1 if row else None


def _refused(report: ImportReport) -> Any:
    problems = [{"index": _index(p.row), "field": p.field, "reason": p.english()}
                for p in report.problems]
    count = len(problems)
    return make_response(jsonify(
        error="Unprocessable Entity", status=422, reason="records_refused",
        message=f"{count} problem{'s' if count != 1 else ''}; nothing was imported.",
        problems=problems), 422)


@bp.route("/qc/records", methods=["POST"])
@bp.arguments(QcBatchIn, example=EXAMPLE)
@bp.response(201, QcBatchOut, description="Imported; 201 when a record was created, 200 "
                                         "when every record was already there (updated or "
                                         "unchanged).")
@bp.alt_response(200, schema=QcBatchOut, description="Imported; no record was new.")
@bp.alt_response(422, schema=QcBatchRefused,
                 description="Refused, nothing imported: each problem with the record's "
                             "index, the field and the reason.")
@bp.alt_response(413, schema=ApiError, description=f"More than {MAX_BATCH} records.")
@roles_required(*ENTRY_ROLES)
def import_qc_records(body: dict[str, Any]) -> Any:
    """Import QC re-read results, all or none.

    Every record is checked first, as a row of an import file (docs/qc-import.md): if any
    is refused, nothing is imported and the answer lists each problem (the record's index,
    the field, the reason). Importing the same study and reader again updates that record,
    or leaves it unchanged; the same record twice in one batch is imported once. Study
    references are pseudonymised on entry and never stored; ``comment`` is never stored."""
    records = body["records"]
    if len(records) > MAX_BATCH:
        abort(413, description=f"A batch holds at most {MAX_BATCH} records; this one has "
                               f"{len(records)}: send it in several calls.")
    report = import_batch(records, actor=current_user, scheme=body["scheme"])
    if report.refused:
        abort(_refused(report))
    outcomes = [{"index": _index(o.row), "status": o.status, "record_id": o.record_id,
                 "same_as_index": _index(o.same_as_row)} for o in report.outcomes]
    result = {"batch_id": report.batch_id, "records": outcomes,
              **{s: report.count(s) for s in ("created", "updated", "unchanged", "duplicate")}}
    return result, (201 if result["created"] else 200)
