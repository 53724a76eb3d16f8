from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.cases.models import MAX_NOTE, Difficulty

DIFFICULTIES = {"easy": _l("easy"), "moderate": _l("moderate"), "hard": _l("hard")}


class UploadForm(FlaskForm):
    files = FileField(_l("DICOM files or .zip archives"),
                      validators=[FileRequired()],
                      render_kw={"multiple": True, "accept": ".dcm,.dicom,.zip,application/dicom"})
    source = StringField(_l("Source"), default="upload",
                         validators=[DataRequired(), Length(max=200)])
    licence = TextAreaField(_l("Licence / terms of use"), validators=[Length(max=5000)])
    exam_bank = BooleanField(_l("Exam bank (never shown to trainees outside exams)"))
    allow_no_meta = BooleanField(
        _l("Also accept DICOM files without a Part 10 header"),
        description=_l("Some older CR systems write the DICOM data set alone, without the "
                       "128-byte preamble, the 'DICM' marker and the file meta. Tick this to "
                       "import such files; pictures and other files are still refused."),
    )


class CaseDetailsForm(FlaskForm):
    difficulty = SelectField(
        _l("Difficulty"),
        choices=[SelectChoice("", _l("— not set —"))]
        + [SelectChoice(d.value, DIFFICULTIES[d.value]) for d in Difficulty],
    )
    tags = StringField(_l("Tags (comma-separated)"), validators=[Length(max=1000)])
    # One note per working language; the field names say the language ("teaching_notes" is
    # the English one, as before notes had languages).
    teaching_notes = TextAreaField(_l("Teaching notes in English"),
                                   validators=[Length(max=MAX_NOTE)], render_kw={"lang": "en"})
    teaching_notes_fr = TextAreaField(_l("Teaching notes in French"),
                                      validators=[Length(max=MAX_NOTE)], render_kw={"lang": "fr"})
    teaching_notes_es = TextAreaField(_l("Teaching notes in Spanish"),
                                      validators=[Length(max=MAX_NOTE)], render_kw={"lang": "es"})
    source = StringField(_l("Source"), validators=[DataRequired(), Length(max=200)])
    licence = TextAreaField(_l("Licence / terms of use"), validators=[Length(max=5000)])
    exam_bank = BooleanField(_l("Exam bank (never shown to trainees outside exams)"))


NOTE_FIELDS = {"en": "teaching_notes", "fr": "teaching_notes_fr", "es": "teaching_notes_es"}


class StatusForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])


class RedactionForm(FlaskForm):
    # "x,y,width,height;x,y,width,height" in image pixel coordinates, written by redact.js
    rectangles = HiddenField(validators=[DataRequired(message=_l("draw at least one rectangle"))])
    # Sent by the confirmation dialog's button: burning in cannot be undone, so a request
    # without it (a stray or scripted post) changes nothing.
    confirm = HiddenField()


class ReferenceReadForm(FlaskForm):
    """The one-page reference read: the scheme's items are rendered from the scheme (see
    quizzes/_read_form.html); the page's script puts the viewer's marks here as JSON."""

    marks = HiddenField()


class ActionForm(FlaskForm):
    """A button that only needs its CSRF token."""


class SchemeForm(FlaskForm):
    definition = TextAreaField(
        _l("Scheme definition (JSON)"),
        validators=[DataRequired(), Length(max=200_000)],
        description=_l("Same format as the built-in schemes in app/schemes/builtin/."),
    )
