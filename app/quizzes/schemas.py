"""What an answer save sends and gets back: one definition for the case page's autosave
(POST /training/attempts/<id>/<position>/answer) and the API's
PUT /api/v1/attempts/<id>/answers/<position>. The schema checks the shape (types, counts,
ranges); the reporting scheme checks the content (app.schemes.answers: options, marks
inside the case's images)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemes.answers import MAX_MARKS
from app.validation import MAX_DB_INTEGER, StrictSchema

REVISION_REASON = ("must be the whole number of the answer's last saved revision "
                   "(0 before the first save)")


class AnswerIn(StrictSchema):
    answers = fields.Dict(keys=fields.String(validate=validate.Length(max=64)),
                          load_default=dict,
                          metadata={"description": "The scheme's items: item key → value."})
    marks = fields.List(fields.Dict(), load_default=list,
                        validate=validate.Length(
                            max=MAX_MARKS, error=f"a case takes at most {MAX_MARKS} marks"),
                        metadata={"description": "Marks on the case's images."})
    # strict: "1", 1.5 or true are refused, not read as 1.
    revision = fields.Integer(
        strict=True, allow_none=True, load_default=None,
        validate=validate.Range(0, MAX_DB_INTEGER, error=REVISION_REASON),
        error_messages={"invalid": REVISION_REASON},
        metadata={"description": "The revision this answer was based on (0 before the first "
                                 "save): an older one is refused as stale (409). Leave it "
                                 "out to let the last save win."})


class SavedOut(Schema):
    saved = fields.Boolean(required=True)
    revision = fields.Integer(required=True)
    saved_at = fields.DateTime(required=True)
    seconds_left = fields.Integer(allow_none=True, required=True)
