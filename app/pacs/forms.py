from __future__ import annotations

from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from wtforms import (  # type: ignore[import-untyped]
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import (  # type: ignore[import-untyped]
    DataRequired,
    Length,
    NumberRange,
    Optional,
)

from app.pacs.models import PacsKind


class EndpointForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    kind = SelectField("Kind", choices=[SelectChoice(k.value, k.label) for k in PacsKind])
    url = StringField("DICOMweb URL", validators=[Optional(), Length(max=500)],
                      description="e.g. https://pacs.example.org/dicom-web (DICOMweb only)")
    host = StringField("DIMSE host", validators=[Optional(), Length(max=255)])
    port = IntegerField("DIMSE port", validators=[Optional(), NumberRange(1, 65535)])
    called_ae = StringField("PACS AE title (called)", validators=[Optional(), Length(max=16)])
    calling_ae = StringField("Portal AE title (calling)", validators=[Optional(), Length(max=16)],
                             description="The PACS must allow this AE title to query and "
                             "retrieve (C-FIND, C-GET).")
    # Never filled in from the stored values: credentials are not shown back.
    username = StringField("User name", validators=[Optional(), Length(max=200)],
                           render_kw={"autocomplete": "off"})
    password = PasswordField("Password", validators=[Optional(), Length(max=500)],
                             render_kw={"autocomplete": "new-password"})
    clear_credentials = BooleanField("Remove the stored user name and password")


class ActionForm(FlaskForm):
    """A button's form: the CSRF token only."""


MODALITY_CHOICES = [SelectChoice("", "CR or DX"), SelectChoice("CR", "CR"),
                    SelectChoice("DX", "DX"),
                    SelectChoice("any", "any modality (others shown, not importable)")]


class SearchForm(FlaskForm):
    endpoint = SelectField("PACS", coerce=int)
    date_from = DateField("Study date from", validators=[Optional()])
    date_to = DateField("to", validators=[Optional()])
    modality = SelectField("Modality", choices=MODALITY_CHOICES, validate_choice=True)
    accession = StringField("Accession number", validators=[Optional(), Length(max=64)],
                            render_kw={"autocomplete": "off"})
    patient_id = StringField("Patient ID", validators=[Optional(), Length(max=64)],
                             render_kw={"autocomplete": "off"})
    description = StringField("Study description contains", validators=[Optional(),
                                                                         Length(max=64)])

    def validate_date_to(self, field: DateField) -> None:
        from wtforms.validators import ValidationError  # type: ignore[import-untyped]

        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")
