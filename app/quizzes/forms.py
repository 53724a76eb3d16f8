from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional, ValidationError

from app.quizzes.models import Exercise


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _threshold(label: Any) -> DecimalField:
    # In %, as the results show these figures; stored as a fraction (routes divide by 100).
    return DecimalField(label, places=1, validators=[
        Optional(), NumberRange(0, 100, message=_l("Enter a percentage from 0 to 100."))],
        description=_l("in %, 0 to 100, e.g. 90; empty = no criterion"),
        render_kw={"min": 0, "max": 100, "step": "any"})


def _coefficient(label: Any) -> DecimalField:
    # Kappa is a coefficient, shown as one in the results (e.g. 0.60), not a share.
    return DecimalField(label, places=2, validators=[
        Optional(), NumberRange(0, 1, message=_l("Enter a kappa from 0 to 1."))],
        description=_l("0 to 1, as the results show it, e.g. 0.60; empty = no criterion"),
        render_kw={"min": 0, "max": 1, "step": "any"})


REVIEW_FIELDS = ("review_score", "review_correctness", "review_reference",
                 "review_teaching_notes")
KEY_NOTE = _l("An exam that shows what was right, the reference read or the teaching notes "
              "cannot be started again by a trainee who has seen them.")


def _when(label: Any, description: Any = "") -> SelectField:
    from app.quizzes.review_rules import LABELS

    # Not sent by older pages or scripts: then the kind's defaults apply, and
    # review_rules.clean refuses any value it does not know.
    return SelectField(label, choices=[SelectChoice("", _l("default for the kind"))]
                       + [SelectChoice(k, _l(v)) for k, v in LABELS.items()], validate_choice=False,
                       description=description)


class ExerciseForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice("practice", _l("Practice set (immediate "
                                                        "feedback, unlimited attempts)")),
                                        SelectChoice("exam", _l("Exam (timed, attempt limit)"))])
    scheme = SelectField(_l("Reporting scheme"))
    cases = MultiCheckboxField(_l("Cases (published)"), coerce=int, validators=[Optional()])
    rule_total = IntegerField(_l("Or choose by rule: number of cases"),
                              validators=[Optional(), NumberRange(1, 500)])
    rule_tb_percent = IntegerField(_l("TB-suggestive share (%)"),
                                   validators=[Optional(), NumberRange(0, 100)])
    rule_findings = TextAreaField(_l("At least this many cases per finding"),
                                  description=_l("One finding of the scheme a line, as the "
                                                 "scheme names it, e.g. \"Cavitary lesion: 5\""),
                                  validators=[Optional(), Length(max=2000)])
    rule_difficulty = StringField(_l("Difficulty mix (%)"),
                                  description=_l("e.g. easy:30, moderate:50, hard:20"),
                                  validators=[Optional(), Length(max=200)])
    time_limit = IntegerField(_l("Time limit (minutes)"), validators=[Optional(), NumberRange(1)])
    max_attempts = IntegerField(_l("Attempts allowed"), validators=[Optional(), NumberRange(1)])
    cooldown_hours = IntegerField(_l("Cool-down between attempts (hours)"), default=0,
                                  validators=[Optional(), NumberRange(0)])
    opens_at = DateTimeLocalField(_l("Opens (UTC)"), validators=[Optional()])
    closes_at = DateTimeLocalField(_l("Closes (UTC)"), validators=[Optional()],
                                   description=_l("Needed when anything is shown after the "
                                                  "exercise closes."))
    min_sensitivity = _threshold(_l("Pass: minimum sensitivity"))
    min_specificity = _threshold(_l("Pass: minimum specificity"))
    min_kappa = _coefficient(_l("Pass: minimum kappa"))
    min_localisation = _threshold(_l("Pass: minimum lesion localisation"))
    shuffle = BooleanField(_l("Shuffle the case order for each attempt"), default=True)
    review_score = _when(_l("Show the scores"))
    review_correctness = _when(_l("Show what was right and wrong"), KEY_NOTE)
    review_reference = _when(_l("Show the reference read and marks"), KEY_NOTE)
    review_teaching_notes = _when(_l("Show the teaching notes"), KEY_NOTE)
    audience_roles = MultiCheckboxField(_l("For these roles (none ticked: every trainee)"))
    audience_clinics = SelectMultipleField(_l("For these clinics only"), coerce=int,
                                           description=_l("Hold Ctrl (⌘ on a Mac) to choose "
                                                          "several."))
    audience_countries = SelectMultipleField(_l("For clinics in these countries only"))

    def validate_closes_at(self, field: DateTimeLocalField) -> None:
        # Without a closing date "after the exercise closes" would never come (or, as it once
        # did, come right after the attempt, with a resit still open).
        waiting = [str(getattr(self, name).label.text) for name in REVIEW_FIELDS
                   if getattr(self, name).data == "after_close"]
        if waiting and field.data is None:
            raise ValidationError(gettext("Set a closing date: %(items)s after the exercise "
                                          "closes.", items=", ".join(waiting).lower()))


def exercise_form_data(exercise: Exercise) -> dict[str, Any]:
    """An exercise as the form shows it for editing: thresholds in % (kappa as it is),
    dates without their time zone (the form's are UTC), the cases ticked."""
    minimum = {c["metric"]: c["minimum"] for c in exercise.criteria or []}

    def percent(metric: str) -> Decimal | None:
        value = minimum.get(metric)
        return None if value is None else round(Decimal(str(value)) * 100, 1)

    audience = exercise.audience or {}
    review = exercise.review or {}
    return {
        "title": exercise.title, "kind": exercise.kind, "scheme": exercise.scheme_key,
        "cases": [link.case_id for link in exercise.cases],
        "time_limit": exercise.time_limit_minutes, "max_attempts": exercise.max_attempts,
        "cooldown_hours": exercise.cooldown_hours,
        "opens_at": exercise.opens_at.replace(tzinfo=None) if exercise.opens_at else None,
        "closes_at": exercise.closes_at.replace(tzinfo=None) if exercise.closes_at else None,
        "min_sensitivity": percent("sensitivity"), "min_specificity": percent("specificity"),
        "min_kappa": (Decimal(str(minimum["kappa"])) if "kappa" in minimum else None),
        "min_localisation": percent("lesion_localisation_sensitivity"),
        "shuffle": exercise.shuffle,
        **{name: review.get(name.removeprefix("review_"), "") for name in REVIEW_FIELDS},
        "audience_roles": audience.get("roles") or [],
        "audience_clinics": audience.get("clinic_ids") or [],
        "audience_countries": audience.get("countries") or [],
    }


class FlagForm(FlaskForm):
    """The "Flag for review" toggle of a case: the state the button asks for."""

    flagged = HiddenField(validators=[AnyOf(["1", "0"], message=_l("Send flagged=1 to flag the "
                                                                   "case or flagged=0 to clear "
                                                                   "it."))])


class ConfirmForm(FlaskForm):
    """The confirmation step of an action that ends an attempt (submit, abandon): the final
    POST carries it, so only the confirmation page (or the page's clock) can end it."""

    confirm = HiddenField(validators=[AnyOf(["yes"], message=_l("Confirm on the confirmation "
                                                                "page first."))])
