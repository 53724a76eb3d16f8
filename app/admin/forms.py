from __future__ import annotations

import pycountry
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

from app.auth.roles import Role


def country_choices() -> list[SelectChoice]:
    countries = sorted(
        ((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries),
        key=lambda pair: pair[1],
    )
    return [SelectChoice(code, name) for code, name in countries]


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ClinicForm(FlaskForm):
    name = StringField("Clinic name", validators=[DataRequired(), Length(max=200)])
    city = StringField("City", validators=[DataRequired(), Length(max=120)])
    country = SelectField("Country", validators=[DataRequired()])
    submit = SubmitField("Add clinic")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.country.choices = [SelectChoice("", "— choose —"), *country_choices()]


class UserEditForm(FlaskForm):
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    clinic = SelectField("Clinic", coerce=int)
    roles = MultiCheckboxField(
        "Roles",
        choices=[SelectChoice(r.value, r.label) for r in Role],
        validators=[DataRequired(message="choose at least one role")],
    )
    lead_all_countries = BooleanField("Programme lead for all countries")
    lead_countries = SelectMultipleField(
        "Programme lead for these countries",
        description="Hold Ctrl (⌘ on a Mac) to choose several.",
    )
    submit = SubmitField("Save")

    def __init__(self, *args: object, clinics: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.clinic.choices = [
            SelectChoice(0, "— none (central staff) —"),  # type: ignore[arg-type]
            *(SelectChoice(cid, label) for cid, label in clinics),  # type: ignore[arg-type]
        ]
        self.lead_countries.choices = country_choices()


class UserCreateForm(UserEditForm):
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=254)])
    username = StringField("User name (optional)", validators=[Optional(), Length(max=64)])
    submit = SubmitField("Create user and make invitation link")


class ActionForm(FlaskForm):
    """A button that changes state: it only needs its CSRF token."""

    submit = SubmitField()


class IsoDateField(DateField):
    """A date box whose error says what to type (WTForms says "Not a valid date value")."""

    def process_formdata(self, valuelist: list[str]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None
            raise ValueError(
                f"give the {self.label.text.split(' ')[0].lower()} date as YYYY-MM-DD"
            ) from None


class AuditFilterForm(FlaskForm):
    """The audit log's filters: a GET form (bookmarkable, no state change, no CSRF token)."""

    class Meta:
        csrf = False

    actor = StringField("Who (user name or e-mail)", validators=[Optional(), Length(max=254)])
    action = SelectField("What", validate_choice=False)
    object_type = SelectField("Kind of object", validate_choice=False)
    object_id = StringField("Object number", validators=[Optional(), Length(max=64)])
    since = IsoDateField("From (UTC)", validators=[Optional()])
    until = IsoDateField("To (UTC)", validators=[Optional()])

    def __init__(
        self,
        *args: object,
        actions: list[SelectChoice],
        object_types: list[SelectChoice],
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [SelectChoice("", "any action"), *actions]
        self.object_type.choices = [SelectChoice("", "any kind"), *object_types]
