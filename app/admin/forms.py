from __future__ import annotations

import unicodedata

import pycountry
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    widgets,
)
from wtforms.validators import DataRequired, Email, Length, Optional

from app.auth.roles import ROLE_LABELS, Role
from app.auth.services import country_name


def collation_key(name: str) -> str:
    """Accents do not move a name: "Égypte" sorts with the E's, "Ísland" with the I's."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def country_choices() -> list[SelectChoice]:
    """Every country by its name in the reader's language, in that language's order."""
    countries = sorted(
        ((c.alpha_2, country_name(c.alpha_2)) for c in pycountry.countries),
        key=lambda pair: collation_key(pair[1]),
    )
    return [SelectChoice(code, name) for code, name in countries]


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ClinicForm(FlaskForm):
    name = StringField(_l("Clinic name"), validators=[DataRequired(), Length(max=200)])
    city = StringField(_l("City"), validators=[DataRequired(), Length(max=120)])
    country = SelectField(_l("Country"), validators=[DataRequired()])
    submit = SubmitField(_l("Add clinic"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = [SelectChoice("", gettext("— choose —")), *country_choices()]


class UserEditForm(FlaskForm):
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    clinic = SelectField(_l("Clinic"), coerce=int)
    roles = MultiCheckboxField(
        _l("Roles"),
        # Lazy labels: the class is built once, each page shows them in its reader's language.
        choices=[SelectChoice(r.value, ROLE_LABELS[r]) for r in Role],
        validators=[DataRequired(message=_l("choose at least one role"))],
    )
    lead_all_countries = BooleanField(_l("Programme lead for all countries"))
    lead_countries = SelectMultipleField(
        _l("Programme lead for these countries"),
        description=_l("Hold Ctrl (⌘ on a Mac) to choose several."),
    )
    submit = SubmitField(_l("Save"))

    def __init__(self, *args: object, clinics: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.clinic.choices = [
            SelectChoice(0, gettext("— none (central staff) —")),  # type: ignore[arg-type]
            *(SelectChoice(cid, label) for cid, label in clinics),  # type: ignore[arg-type]
        ]
        self.lead_countries.choices = country_choices()


class UserCreateForm(UserEditForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    username = StringField(_l("User name (optional)"), validators=[Optional(), Length(max=64)])
    submit = SubmitField(_l("Create user and make invitation link"))


class ActionForm(FlaskForm):
    """A button that changes state: it only needs its CSRF token."""

    submit = SubmitField()


# One sentence per box, as a whole (a translation cannot build "the from date" from parts).
_DATE_FORMAT = {"since": _l("give the from date as YYYY-MM-DD"),
                "until": _l("give the to date as YYYY-MM-DD")}


class IsoDateField(DateField):
    """A date box whose error says what to type (WTForms says "Not a valid date value")."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None
            raise ValueError(str(_DATE_FORMAT.get(self.name, _DATE_FORMAT["since"]))) from None


class AuditFilterForm(FlaskForm):
    """The audit log's filters: a GET form (bookmarkable, no state change, no CSRF token)."""

    class Meta:
        csrf = False

    actor = StringField(_l("Who (user name or e-mail)"), validators=[Optional(), Length(max=254)])
    action = SelectField(_l("What"), validate_choice=False)
    object_type = SelectField(_l("Kind of object"), validate_choice=False)
    object_id = StringField(_l("Object number"), validators=[Optional(), Length(max=64)])
    since = IsoDateField(_l("From (UTC)"), validators=[Optional()])
    until = IsoDateField(_l("To (UTC)"), validators=[Optional()])

    def __init__(
        self,
        *args: object,
        actions: list[SelectChoice],
        object_types: list[SelectChoice],
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [SelectChoice("", gettext("any action")), *actions]
        self.object_type.choices = [SelectChoice("", gettext("any kind")), *object_types]
