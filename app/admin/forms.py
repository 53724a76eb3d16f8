from __future__ import annotations

import pycountry
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
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
