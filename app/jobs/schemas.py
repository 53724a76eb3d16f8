"""A job as its status reads: one definition for the job page's script
(GET /jobs/<id>/status) and the API (GET /api/v1/jobs, GET /api/v1/jobs/<id>)."""

from __future__ import annotations

from typing import get_args

from marshmallow import Schema, fields, validate

from app.cases.ingest import Status as FileStatus
from app.jobs.models import JobKind, JobStatus
from app.validation import MAX_DB_INTEGER, StrictSchema

AFTER_REASON = "must be a whole number of results already shown (0 or more)"


class JobStatusArgs(StrictSchema):
    after = fields.Integer(
        load_default=0, validate=validate.Range(0, MAX_DB_INTEGER, error=AFTER_REASON),
        error_messages={"invalid": AFTER_REASON},
        metadata={"description": "Only the per-file results from this position on (the "
                                 "number of results already read)."})


_STATUSES = validate.OneOf([s.value for s in JobStatus])
_KINDS = validate.OneOf([k.value for k in JobKind])


class JobItemOut(Schema):
    """One file's result."""

    position = fields.Integer(required=True, metadata={"description": "0 for the first."})
    name = fields.String(required=True, metadata={"description": "The file's name."})
    status = fields.String(required=True, validate=validate.OneOf(get_args(FileStatus)))
    case_id = fields.Integer(allow_none=True, required=True,
                             metadata={"description": "The case it joined (imported, or "
                                                      "already in the library)."})
    reason = fields.String(allow_none=True, required=True,
                           metadata={"description": "Why it was refused or what was done."})
    pixel_review_needed = fields.Boolean(required=True)


class JobProgress(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=_KINDS)
    status = fields.String(required=True, validate=_STATUSES)
    done = fields.Integer(required=True, metadata={
        "description": "Units done: files (imports), attempts (re-scoring), cases (library "
                       "export), reminders."})
    total = fields.Integer(allow_none=True, required=True,
                           metadata={"description": "Units in all (null while counted)."})
    error = fields.String(allow_none=True, required=True,
                          metadata={"description": "Why the job failed or was cancelled."})
    finished = fields.Boolean(required=True)
    summary = fields.Dict(keys=fields.String(), allow_none=True, required=True, metadata={
        "description": "What a job without per-file results produced (re-scoring: attempts "
                       "and changed verdicts; reminders: sent and failed; library export: "
                       "its cases), as its kind reports it; null for imports."})


class JobStatusOut(JobProgress):
    """As the job page's script reads it: the state and the per-file results."""

    items = fields.List(fields.Nested(JobItemOut), required=True)


class JobOut(JobProgress):
    """A job in the list."""

    created_by = fields.Integer(allow_none=True, required=True,
                                metadata={"description": "The id of the user who started "
                                                         "it (null: the command line)."})
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
