from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    FloatField,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.utils import unset_value
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from app.admin.forms import MultiCheckboxField
from app.auth.roles import TRAINEE_ROLES, Role
from app.certification.models import Programme
from app.certification.services import MAX_VALIDITY_DAYS
from app.i18n import EXERCISE_KINDS
from app.qc.scope import MAX_LAST
from app.qc.settings import QcSettings
from app.quizzes.models import Exercise

REQUIREMENT_ROWS = 8  # rows shown on a new programme; blank rows are ignored
SPARE_ROWS = 3  # blank rows offered below an existing programme's requirements
# Posted rows beyond this are not read: a hand-made request cannot make the form unbounded.
MAX_REQUIREMENT_ROWS = 100

KIND_CHOICES = [
    SelectChoice("practice", _l("Practice: an attempt submitted")),
    SelectChoice("exam", _l("Exam: passed")),
    SelectChoice("renewal", _l("Renewal exam: passed within the renewal window")),
]


def _optional_int(value: object) -> int | None:
    """A database id, or None for anything else (a database integer cannot hold more)."""
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if 0 < number < 2**31 else None


class RequirementRow(Form):
    """One requirement; a row without an exercise is left out. A plain ``Form``: the
    enclosing form carries the CSRF token."""

    # Choices are checked by the service, whose message names the unknown exercise or kind.
    exercise = SelectField(_l("Exercise"), validate_choice=False)
    kind = SelectField(_l("Kind"), choices=KIND_CHOICES, default="exam", validate_choice=False)

    def validate_exercise(self, field: SelectField) -> None:
        if field.data and _optional_int(field.data) is None:
            raise ValidationError(_("choose an exercise from the list"))


class RowList(FieldList):
    """A ``FieldList`` whose padding rows are blank. WTForms renumbers the posted rows
    before padding and then reads each padding row from the request under its new name,
    so posted rows 0 and 5 would come back as three rows, row 5 twice."""

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        wanted, self.min_entries = self.min_entries, 0
        try:
            super().process(formdata, data, extra_filters)
        finally:
            self.min_entries = wanted
        while len(self.entries) < self.min_entries:
            self.append_entry()


def _role_choices(extra_roles: Iterable[str]) -> list[SelectChoice]:
    trainee = [r for r in Role if r in TRAINEE_ROLES]
    # A role set from the command line stays offered, so saving the form keeps it.
    kept = [Role(r) for r in sorted(set(extra_roles)) if Role(r) not in TRAINEE_ROLES]
    return [SelectChoice(r.value, r.label) for r in trainee + kept]


def _exercise_label(exercise: Exercise) -> str:
    kind = str(EXERCISE_KINDS.get(exercise.kind, exercise.kind))
    if exercise.published:
        return _("%(title)s (%(kind)s, #%(id)s)", title=exercise.title, kind=kind, id=exercise.id)
    return _("%(title)s (%(kind)s, unpublished, #%(id)s)", title=exercise.title, kind=kind,
             id=exercise.id)


def _percent(form: Any, field: FloatField) -> None:
    """A rate in %: more than 0 and less than 100 (blank: not set)."""
    if field.data is not None and not 0 < field.data < 100:
        raise ValidationError(_("give a percentage more than %(low)s and less than %(high)s",
                                low=0, high=100))


def _fraction(percent: float | None) -> float | None:
    return None if percent is None else round(percent / 100, 10)


def _percent_of(fraction: float | None) -> float | None:
    return None if fraction is None else round(fraction * 100, 6)


class ProgrammeForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Length(max=5000)])
    eligible_roles = MultiCheckboxField(_l("Eligible roles (none ticked: any role)"))
    validity_days = IntegerField(
        _l("Valid for (days)"),
        default=730,
        validators=[InputRequired(), NumberRange(1, MAX_VALIDITY_DAYS)],
    )
    renewal_window_days = IntegerField(
        _l("Renewal window (days before expiry)"),
        default=90,
        description=_l("Renewal exams passed in this window renew the certificate; shorter "
                       "than the validity."),
        validators=[InputRequired(), NumberRange(0, MAX_VALIDITY_DAYS)],
    )
    cme_hours = FloatField(
        _l("CME/CPD hours"),
        default=0.0,
        validators=[
            InputRequired(),
            NumberRange(min=0, message=_l("CME/CPD hours must be a number of 0 or more")),
        ],
    )
    qc_target_rate = FloatField(
        _l("QC target major-discrepancy rate (%)"),
        description=_l("The rate each reader's CUSUM chart and the funnel plot are drawn "
                       "against; blank: 5 %."),
        validators=[Optional(), _percent],
    )
    qc_max_rate = FloatField(_l("Ongoing criterion: major-discrepancy rate at most (%)"),
                             validators=[Optional(), _percent])
    qc_last_n = IntegerField(
        _l("over the last QC reads (n)"),
        validators=[Optional(), NumberRange(1, MAX_LAST, message=_l(
            "give a whole number from %(min)s to %(max)s"))],
    )
    qc_min_reads = IntegerField(
        _l("with at least this many QC reads (m)"),
        description=_l("All three or none. A reader outside the criterion is flagged to the "
                       "programme's leads; nothing is revoked."),
        validators=[Optional(), NumberRange(1, MAX_LAST, message=_l(
            "give a whole number from %(min)s to %(max)s"))],
    )
    requirements = RowList(
        FormField(RequirementRow),
        min_entries=REQUIREMENT_ROWS,
        max_entries=MAX_REQUIREMENT_ROWS,
    )

    def __init__(
        self,
        *args: Any,
        exercises: Sequence[Exercise],
        extra_roles: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.eligible_roles.choices = _role_choices(extra_roles)
        self._exercise_choices = [
            SelectChoice("", _("— none —")),
            *(SelectChoice(str(e.id), _exercise_label(e)) for e in exercises),
        ]
        for row in self.requirements:
            row.form.exercise.choices = self._exercise_choices

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        fields = (self.qc_max_rate, self.qc_last_n, self.qc_min_reads)
        if any(f.errors for f in fields):
            return False
        given = [f.data is not None for f in fields]
        if any(given) and not all(given):
            for f, present in zip(fields, given, strict=True):
                if not present:
                    f.errors = [*f.errors, _("the ongoing criterion needs all three numbers "
                                             "or none")]
            return False
        if all(given) and self.qc_min_reads.data > self.qc_last_n.data:
            self.qc_min_reads.errors = [*self.qc_min_reads.errors, _(
                "at most the number of last QC reads (%(n)s)", n=self.qc_last_n.data)]
            return False
        return valid

    def qc_settings(self) -> QcSettings:
        """The QC settings as the service takes them (rates as fractions)."""
        return QcSettings(_fraction(self.qc_target_rate.data), _fraction(self.qc_max_rate.data),
                          self.qc_last_n.data, self.qc_min_reads.data)

    def add_spare_rows(self, spare: int = SPARE_ROWS) -> None:
        """Blank rows below the filled ones, at least ``REQUIREMENT_ROWS`` rows in all."""
        blank = sum(1 for row in self.requirements if not row.form.exercise.data)
        while blank < spare or len(self.requirements) < REQUIREMENT_ROWS:
            row = self.requirements.append_entry()
            row.form.exercise.choices = self._exercise_choices
            blank += 1

    def requirement_pairs(self) -> list[tuple[int, str]]:
        return [
            (int(row.form.exercise.data), row.form.kind.data or "")
            for row in self.requirements
            if row.form.exercise.data
        ]

    def values(self) -> dict[str, Any]:
        """The keyword arguments for ``create_programme``."""
        return {
            "title": self.title.data or "",
            "description": (self.description.data or "").strip(),
            "eligible_roles": list(self.eligible_roles.data or []),
            "validity_days": self.validity_days.data,
            "renewal_window_days": self.renewal_window_days.data,
            "cme_hours": self.cme_hours.data,
            "requirements": self.requirement_pairs(),
        }


class ProgrammeEditForm(ProgrammeForm):
    active = BooleanField(_l("Active: trainees can earn it (held certificates stay either way)"))

    def values(self) -> dict[str, Any]:
        """The keyword arguments for ``update_programme``."""
        return {**super().values(), "active": bool(self.active.data)}


def programme_data(programme: Programme) -> dict[str, Any]:
    """An existing programme as the edit form's initial data."""
    return {
        "title": programme.title,
        "description": programme.description,
        "eligible_roles": list(programme.eligible_roles or []),
        "validity_days": programme.validity_days,
        "renewal_window_days": programme.renewal_window_days,
        "cme_hours": programme.cme_hours,
        "active": programme.active,
        "qc_target_rate": _percent_of(programme.qc_target_rate),
        "qc_max_rate": _percent_of(programme.qc_max_rate),
        "qc_last_n": programme.qc_last_n,
        "qc_min_reads": programme.qc_min_reads,
        "requirements": [
            {"exercise": str(r.exercise_id), "kind": r.kind} for r in programme.requirements
        ],
    }


class ExceptionForm(FlaskForm):
    reader = StringField(
        _l("Reader (user name or e-mail)"),
        validators=[DataRequired(message=_l("name the reader")), Length(max=254)],
    )
    programme = SelectField(_l("Programme"), coerce=_optional_int, validate_choice=False)
    reason = TextAreaField(
        _l("Reason for the exception"),
        description=_l("Kept on the certificate and in the audit log."),
        validators=[
            DataRequired(message=_l("give the reason for the exception")),
            Length(max=2000),
        ],
    )

    def __init__(self, *args: Any, programmes: Sequence[Programme], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._programme_ids = {p.id for p in programmes}
        self.programme.choices = [
            SelectChoice("", _("— choose —")),
            *(SelectChoice(str(p.id), p.title) for p in programmes),
        ]

    def validate_programme(self, field: SelectField) -> None:
        if field.data is None:
            raise ValidationError(_("choose a programme"))
        if field.data not in self._programme_ids:
            raise ValidationError(_("choose an active programme from the list"))


class ReviewDecisionForm(FlaskForm):
    """A lead's decision on a certificate listed after re-scoring: one of two buttons."""

    reason = TextAreaField(
        _l("Your reason (recorded, and sent to the holder)"),
        validators=[
            DataRequired(message=_l("give the reason for your decision")),
            Length(max=2000),
        ],
    )
    revoke = SubmitField(_l("Revoke certificate"))
    keep = SubmitField(_l("Keep certificate"))

    def validate_keep(self, field: SubmitField) -> None:
        if not (self.revoke.data or field.data):
            raise ValidationError(_("choose to revoke or to keep the certificate"))
