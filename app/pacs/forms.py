from __future__ import annotations

from flask_babel import lazy_gettext as _l
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
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=80)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k.value, k.label) for k in PacsKind])
    url = StringField(_l("DICOMweb URL"), validators=[Optional(), Length(max=500)],
                      description=_l("e.g. https://pacs.example.org/dicom-web (DICOMweb only)"))
    host = StringField(_l("DIMSE host"), validators=[Optional(), Length(max=255)])
    port = IntegerField(_l("DIMSE port"), validators=[Optional(), NumberRange(1, 65535)])
    called_ae = StringField(_l("PACS AE title (called)"), validators=[Optional(), Length(max=16)])
    calling_ae = StringField(_l("Portal AE title (calling)"),
                             validators=[Optional(), Length(max=16)],
                             description=_l("The PACS must allow this AE title to query and "
                                            "retrieve (C-FIND, C-GET)."))
    # Never filled in from the stored values: credentials are not shown back.
    username = StringField(_l("User name"), validators=[Optional(), Length(max=200)],
                           render_kw={"autocomplete": "off"})
    password = PasswordField(_l("Password"), validators=[Optional(), Length(max=500)],
                             render_kw={"autocomplete": "new-password"})
    clear_credentials = BooleanField(_l("Remove the stored user name and password"))


class ActionForm(FlaskForm):
    """A button's form: the CSRF token only."""


MODALITY_CHOICES = [SelectChoice("", _l("CR or DX")), SelectChoice("CR", "CR"),
                    SelectChoice("DX", "DX"),
                    SelectChoice("any", _l("any modality (others shown, not importable)"))]


class SearchForm(FlaskForm):
    endpoint = SelectField(_l("PACS"), coerce=int)
    date_from = DateField(_l("Study date from"), validators=[Optional()])
    date_to = DateField(_l("to"), validators=[Optional()])
    modality = SelectField(_l("Modality"), choices=MODALITY_CHOICES, validate_choice=True)
    accession = StringField(_l("Accession number"), validators=[Optional(), Length(max=64)],
                            render_kw={"autocomplete": "off"})
    patient_id = StringField(_l("Patient ID"), validators=[Optional(), Length(max=64)],
                             render_kw={"autocomplete": "off"})
    description = StringField(_l("Study description contains"), validators=[Optional(),
                                                                         Length(max=64)])

    def validate_date_to(self, field: DateField) -> None:
        from wtforms.validators import ValidationError  # type: ignore[import-untyped]

        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError(_l("The end date is before the start date."))
