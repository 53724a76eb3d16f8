"""Entering QC records from the web: the choices the hand-entry page offers, its posted
values turned into the template's columns, and the API's batch of records.

Everything goes through ``app.qc.importing`` (the same checks, all or nothing, the same
pseudonymisation); this module only gathers what the page or the API sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.auth.models import Clinic, User, UserRole
from app.auth.roles import Role
from app.extensions import db
from app.i18n import N_
from app.qc.files import ANSWER_TYPES, READS, template_columns
from app.qc.importing import ImportReport, RowProblem, add_record, import_rows
from app.qc.models import DEFAULT_SCHEME
from app.schemes.errors import SchemeError
from app.schemes.parts import Scheme
from app.schemes.registry import all_schemes, classification_item, get_scheme, is_image_quality

#: At most this many records in one API call: a month of a QC centre's work is a few
#: thousand; more goes in several calls (each all or nothing).
MAX_BATCH = 1000
#: Who enters QC records: the QC centre's radiologists (trainers) and administrators.
ENTRY_ROLES = (Role.TRAINER, Role.ADMIN)
#: The readers a record may name: clinic readers (the trainee roles).
READER_ROLES = (Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER)


def usable_schemes() -> list[Scheme]:
    """Schemes a QC record can use: a classification and a sputum decision to compare."""
    return [s for key, s in all_schemes().items()
            if not is_image_quality(key) and s.tb_decision and classification_item(s)]


def usable_scheme(key: str | None) -> Scheme | None:
    try:
        scheme = get_scheme(key or DEFAULT_SCHEME)
    except SchemeError:
        return None
    return scheme if scheme.key in {s.key for s in usable_schemes()} else None


def _with_role(*roles: Role) -> list[User]:
    query = (select(User).join(UserRole).where(UserRole.role.in_([r.value for r in roles]),
                                               User.active.is_(True))
             .distinct().order_by(User.full_name, User.username))
    return list(db.session.scalars(query))


def readers() -> list[User]:
    return _with_role(*READER_ROLES)


def qc_radiologists() -> list[User]:
    return _with_role(Role.TRAINER)


def clinics() -> list[Clinic]:
    return list(db.session.scalars(select(Clinic).order_by(Clinic.name)))


def answer_fields(scheme: Scheme) -> list[str]:
    """The hand-entry page's answer fields: the template's answer columns."""
    return [f"{read}_{item.key}" for read in READS for item in scheme.items
            if item.type in ANSWER_TYPES]


def reads_from_form(scheme: Scheme, form: MultiDict[str, str]) -> dict[str, Any]:
    """The two reads' answers the page posted, keyed by the template's columns (a multiple
    choice as a list, as the API may send it)."""
    values: dict[str, Any] = {}
    for read in READS:
        for item in scheme.items:
            if item.type not in ANSWER_TYPES:
                continue
            name = f"{read}_{item.key}"
            if item.type == "multi":
                chosen = [v for v in form.getlist(name) if v]
                if chosen:
                    values[name] = chosen
            elif form.get(name):
                values[name] = form.get(name)
    return values


def enter_record(values: Mapping[str, Any], *, actor: User, scheme: Scheme) -> ImportReport:
    """One record entered by hand; the report's outcome says created, updated or unchanged."""
    return add_record({**values, "scheme": scheme.key}, actor=actor,
                      default_scheme=scheme.key)


# ---- the API's batch ----------------------------------------------------------------------


def _known_fields(scheme_key: str) -> set[str] | None:
    """The template's columns for ``scheme_key`` and the scheme's free-text answers (read
    and never stored, as in a file); None when the scheme is unknown (the import says so)."""
    try:
        scheme = get_scheme(scheme_key)
    except SchemeError:
        return None
    return {*template_columns(scheme),
            *(f"{read}_{item.key}" for read in READS for item in scheme.items)}


def import_batch(records: Sequence[Mapping[str, Any]], *, actor: User,
                 scheme: str = DEFAULT_SCHEME) -> ImportReport:
    """A batch of records (objects keyed by the template's columns), all or none. A field
    the template does not have is refused rather than dropped: a misspelt answer would
    otherwise vanish without a word. Rows are numbered from 1 (``index`` + 1)."""
    report = ImportReport("api")
    known: dict[str, set[str] | None] = {}
    for number, values in enumerate(records, 1):
        key = str(values.get("scheme") or scheme)
        if key not in known:
            known[key] = _known_fields(key)
        fields = known[key]
        if fields is None:
            continue
        report.problems.extend(RowProblem(number, str(name), N_("this field is not known"))
                               for name in values if name not in fields)
    if report.problems:
        return report
    return import_rows([(n, dict(v)) for n, v in enumerate(records, 1)], source="api",
                       actor=actor, default_scheme=scheme)
