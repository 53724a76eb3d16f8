"""The QC entry pages' forms: a file to import, one record by hand (its two reads are the
scheme's own fields, rendered from the scheme and read by ``app.qc.entry``)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from flask_wtf.file import FileField, FileRequired  # type: ignore[import-untyped]
from wtforms import HiddenField, SelectField, StringField  # type: ignore[import-untyped]
from wtforms.validators import Length  # type: ignore[import-untyped]

from app.qc.pseudonyms import MAX_REFERENCE_LENGTH

#: Discrepancy grades (RADPEER-style, docs/qc-import.md) as the page names them.
GRADE_LABELS = {
    "1": _l("1: concur"),
    "2a": _l("2a: minor discrepancy, same sputum decision"),
    "2b": _l("2b: minor discrepancy, sputum decision changed"),
    "3a": _l("3a: major discrepancy, same sputum decision"),
    "3b": _l("3b: major discrepancy, sputum decision changed"),
}


class ImportForm(FlaskForm):
    file = FileField(_l("QC results file (.csv or .xlsx)"), validators=[FileRequired()],
                     render_kw={"accept": ".csv,.xlsx,text/csv,application/vnd.openxmlformats-"
                                          "officedocument.spreadsheetml.sheet"})
    scheme = SelectField(_l("Reporting scheme of rows that name none"))


class RecordForm(FlaskForm):
    # Choices are set by the view (the accounts, clinics and schemes of the install).
    scheme = HiddenField()
    reader = SelectField(_l("Reader"))
    clinic = SelectField(_l("Clinic of the read"),
                         description=_l("Leave it as the reader's clinic unless the reader "
                                        "read the study at another clinic."))
    read_date = StringField(_l("Read date"), render_kw={"type": "date"})
    qc_date = StringField(_l("QC date"), render_kw={"type": "date"})
    study_reference = StringField(
        _l("Study reference (accession number or Study Instance UID)"),
        validators=[Length(max=MAX_REFERENCE_LENGTH)],
        description=_l("Pseudonymised on entry: only a keyed hash is stored, and the page "
                       "does not show the reference again."),
        render_kw={"maxlength": MAX_REFERENCE_LENGTH, "autocomplete": "off"})
    grade = SelectField(_l("Discrepancy grade"))
    qc_radiologist = SelectField(_l("QC radiologist"))
