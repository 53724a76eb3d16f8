"""Request and response schemas of /api/v1 (marshmallow): they validate what comes in
(a 422 naming each bad field) and document what goes out in the OpenAPI document. The
bodies and query strings the pages' scripts send as well live beside their pages
(app.quizzes.schemas, app.jobs.schemas), loaded by both."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.validation import StrictSchema


class ApiError(Schema):
    """Every 4xx and 5xx of the API (the portal's JSON error body)."""

    error = fields.String(required=True, metadata={"description": "The HTTP status's name."})
    message = fields.String(required=True, metadata={"description": "Why, for people."})
    status = fields.Integer(required=True)
    reason = fields.String(metadata={"description": "Why, for programs (a stable word)."})
    errors = fields.Dict(metadata={"description": "Each refused field and what is wrong."})


class NotSavedError(ApiError):
    """A save refused: as stale (another save came first), with the newer answer."""

    revision = fields.Integer(metadata={"description": "The newer answer's revision."})
    answers = fields.Dict()
    marks = fields.List(fields.Dict())


class PageArgs(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(1, 100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(1, 100))


class CaseListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["draft", "in_review", "published",
                                                    "retired"]))
    tb = fields.Boolean()
    tag = fields.String(validate=validate.Length(1, 64))


class ImageOut(Schema):
    id = fields.Integer(required=True)
    view = fields.String(required=True)
    is_prior = fields.Boolean(required=True)
    modality = fields.String(required=True)
    rows = fields.Integer(required=True)
    columns = fields.Integer(required=True)


class CaseOut(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    exam_bank = fields.Boolean(required=True)
    source = fields.String(required=True)
    difficulty = fields.String(allow_none=True, required=True)
    age_band = fields.String(allow_none=True, required=True)
    sex = fields.String(allow_none=True, required=True)
    reference_classification = fields.String(allow_none=True, required=True)
    reference_tb_positive = fields.Boolean(allow_none=True, required=True)
    tags = fields.List(fields.String(), required=True)
    images = fields.List(fields.Nested(ImageOut), required=True)
    created_at = fields.DateTime(required=True)


class CaseDetailOut(CaseOut):
    # The English note (else any): the field as it was before notes had languages.
    teaching_notes = fields.String(required=True)
    teaching_notes_by_language = fields.Dict(keys=fields.String(), values=fields.String(),
                                             required=True)
    licence = fields.String(required=True)
    findings = fields.List(fields.String(), required=True)


class CasePage(Schema):
    items = fields.List(fields.Nested(CaseOut), required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class ExerciseOut(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["practice", "exam"]))
    scheme_key = fields.String(required=True)
    cases = fields.Integer(required=True)
    time_limit_minutes = fields.Integer(allow_none=True, required=True)
    closes_at = fields.DateTime(allow_none=True, required=True)
    open_attempt = fields.Integer(allow_none=True, required=True,
                                  metadata={"description": "The id of the attempt in "
                                                           "progress, if any."})
    start_refused = fields.String(allow_none=True, required=True,
                                  metadata={"description": "Why an attempt cannot be "
                                                           "started now (null: it can)."})


class AnswerOut(Schema):
    position = fields.Integer(required=True)
    case_id = fields.Integer(required=True)
    answers = fields.Dict(required=True)
    marks = fields.List(fields.Dict(), required=True)
    revision = fields.Integer(required=True)
    flagged = fields.Boolean(required=True)


class AttemptOut(Schema):
    id = fields.Integer(required=True)
    exercise_id = fields.Integer(required=True)
    state = fields.String(required=True)
    number = fields.Integer(required=True)
    started_at = fields.DateTime(required=True)
    deadline_at = fields.DateTime(allow_none=True, required=True)
    ended_at = fields.DateTime(allow_none=True, required=True)
    case_ids = fields.List(fields.Integer(), required=True,
                           metadata={"description": "The cases in the order of the attempt: "
                                                    "position 1 is the first."})
    answers = fields.List(fields.Nested(AnswerOut), required=True)


class CaseResultOut(Schema):
    """One case of a result: each part is null while the exercise's review rules (or an
    exam holding the case) withhold it, exactly as on the result page."""

    position = fields.Integer(required=True)
    case_id = fields.Integer(required=True)
    tb_correct = fields.Boolean(allow_none=True, required=True)
    classification_correct = fields.Boolean(allow_none=True, required=True)
    grade = fields.String(allow_none=True, required=True)
    reference_tb_positive = fields.Boolean(allow_none=True, required=True)
    reference_answers = fields.Dict(allow_none=True, required=True)
    teaching_notes = fields.String(allow_none=True, required=True)
    teaching_notes_by_language = fields.Dict(keys=fields.String(), values=fields.String(),
                                             allow_none=True, required=True)


class ResultOut(Schema):
    attempt_id = fields.Integer(required=True)
    state = fields.String(required=True)
    score_shown = fields.Boolean(required=True)
    passed = fields.Boolean(allow_none=True, required=True)
    metrics = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True),
                          allow_none=True, required=True)
    cases = fields.List(fields.Nested(CaseResultOut), required=True)


class CertificateOut(Schema):
    code = fields.String(required=True)
    holder = fields.String(required=True)
    programme = fields.String(required=True)
    # As the verification page's JSON gives them (app.certification.verify.public_record).
    issued = fields.String(required=True, metadata={"format": "date"})
    expires = fields.String(required=True, metadata={"format": "date"})
    status = fields.String(required=True)


class ClinicOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    city = fields.String(required=True)
    country_code = fields.String(required=True)


class UserOut(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    email = fields.String(required=True)
    active = fields.Boolean(required=True)
    roles = fields.List(fields.String(), required=True)
    clinic_id = fields.Integer(allow_none=True, required=True)
