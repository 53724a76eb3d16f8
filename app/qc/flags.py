"""Readers outside a programme's ongoing QC criterion: flagged to the programme's leads,
with a suggested targeted practice set, and the leads' decisions.

Nothing here revokes a certificate: a flag asks a lead to decide, and the decision
(assign the practice set, keep watching, dismiss) is theirs, with a reason, audited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.audit.services import record
from app.auth.models import Clinic, User
from app.cases.models import Case, CaseStatus
from app.cases.reads import reference_scheme_keys
from app.certification.models import Programme
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.locking import lock_row
from app.qc import criteria
from app.qc.models import DEFAULT_SCHEME, FLAG_DECISIONS, QcFlag, QcRecord
from app.qc.scope import has_ongoing_criterion, programme_readers, programme_reads
from app.quizzes.access import barred_case_ids
from app.quizzes.exercises import create_exercise, delete_exercise
from app.quizzes.models import Exercise, ExerciseKind
from app.quizzes.refusal import Phrase, Refusal
from app.quizzes.selection import CaseRule, SelectionError, select_cases
from app.quizzes.services import AttemptError
from app.schemes.definitions import Scheme, SchemeError
from app.schemes.registry import get_scheme

#: The suggested practice set: the findings missed most (at most this many), this many
#: cases each, and this many normal cases when the reader over-calls.
MAX_FINDINGS = 3
CASES_PER_FINDING = 5
NORMAL_CASES = 5
MAX_REASON = 2000


class FlagError(Refusal):
    """A decision that cannot be taken; the sentence says why."""


@dataclass
class Evaluation:
    checked: int = 0  # (reader, programme) pairs judged
    opened: int = 0  # flags opened now
    already_open: int = 0  # outside, with a flag still open


def criterion_of(programme: Programme) -> criteria.Criterion | None:
    if not has_ongoing_criterion(programme):
        return None
    return criteria.Criterion(float(programme.qc_max_rate or 0), int(programme.qc_last_n or 0),
                              int(programme.qc_min_reads or 0))


def _schemes(pairs: Iterable[criteria.ReadPair]) -> dict[tuple[str, int], Scheme | None]:
    found: dict[tuple[str, int], Scheme | None] = {}
    for pair in pairs:
        key = (pair.scheme_key, pair.scheme_version)
        if key not in found:
            try:
                found[key] = get_scheme(*key)
            except SchemeError:
                found[key] = None
    return found


def _profile(record_ids: Collection[int]) -> tuple[list[criteria.FindingErrors], str]:
    """The error profile of these QC records, and the scheme most of them follow."""
    rows = db.session.scalars(select(QcRecord).where(QcRecord.id.in_(list(record_ids))))
    pairs = [criteria.ReadPair(r.scheme_key, r.scheme_version, r.primary_read or {},
                               r.qc_read or {}) for r in rows]
    common = Counter(p.scheme_key for p in pairs).most_common(1)
    return (criteria.error_profile(pairs, _schemes(pairs)),
            common[0][0] if common else DEFAULT_SCHEME)


def open_flag(reader_id: int, programme: Programme) -> QcFlag | None:
    return db.session.scalar(select(QcFlag).where(
        QcFlag.reader_id == reader_id, QcFlag.programme_id == programme.id,
        QcFlag.state == "open"))


def evaluate(reader_ids: Collection[int] | None = None) -> Evaluation:
    """Judge the readers (None: all) against the ongoing criterion of every active
    programme they belong to, and open a flag for each one outside it who has none open.
    Commits; revokes nothing."""
    result = Evaluation()
    programmes = db.session.scalars(select(Programme).where(Programme.active)
                                    .order_by(Programme.id)).all()
    for programme in programmes:
        criterion = criterion_of(programme)
        if criterion is None:
            continue
        members = set(db.session.scalars(programme_readers(programme, None)))
        if reader_ids is not None:
            members &= set(reader_ids)
        if not members:
            continue
        reads: dict[int, list] = {}
        for read in programme_reads(programme, None, reader_ids=members):
            reads.setdefault(int(read.reader), []).append(read)  # type: ignore[call-overload]
        for reader_id in sorted(reads):
            result.checked += 1
            outcome = criteria.evaluate(reads[reader_id], criterion)
            if outcome.outcome != criteria.OUTSIDE:
                continue
            if open_flag(reader_id, programme) is not None:
                result.already_open += 1
                continue
            window = reads[reader_id][-criterion.last_n:]
            profile, scheme_key = _profile([r.order for r in window])
            figures = {**outcome.to_json(), "scheme_key": scheme_key}
            try:
                with db.session.begin_nested():
                    flag = QcFlag(reader_id=reader_id, programme_id=programme.id,
                                  figures=figures, state="open",
                                  error_profile=criteria.profile_to_json(profile))
                    db.session.add(flag)
                    db.session.flush()
                    record("qc.flag.open", actor=None, object_type="qc_flag",
                           object_id=flag.id, programme=programme.id, reader=reader_id,
                           rate=outcome.rate, n=outcome.n)
            except IntegrityError:  # another evaluation opened it at the same moment
                result.already_open += 1
                continue
            result.opened += 1
    db.session.commit()
    return result


# ---- the suggested practice set ---------------------------------------------------------


def practice_library() -> list[Case]:
    """Published cases that may go into a practice set, with their findings."""
    barred = barred_case_ids(ExerciseKind.PRACTICE)
    cases = db.session.scalars(
        select(Case).options(selectinload(Case.finding_links))
        .where(Case.status == CaseStatus.PUBLISHED.value).order_by(Case.id))
    return [c for c in cases if c.id not in barred]


def suggested_case_ids(flag: QcFlag, library: list[Case] | None = None) -> list[int]:
    """Published library cases (that may go into a practice set) with the findings the
    reader missed most, CASES_PER_FINDING each (fewer where the library has fewer), plus
    NORMAL_CASES normal cases (no finding, not TB-suggestive) when they over-call. Drawn by
    the rule-based selection, the same for the same flag and library."""
    profile = criteria.profile_from_json(flag.error_profile or [])
    pool = library if library is not None else practice_library()
    chosen: list[int] = []
    missed = sorted((r for r in profile if r.missed), key=lambda r: (-r.missed, r.finding))
    for row in missed[:MAX_FINDINGS]:
        candidates = [c for c in pool if c.id not in chosen
                      and row.finding in {link.finding for link in c.finding_links}]
        wanted = min(CASES_PER_FINDING, len(candidates))
        if wanted:
            chosen += _draw(CaseRule(total=wanted, min_per_finding={row.finding: wanted},
                                     seed=flag.id), candidates)
    if any(r.over_called for r in profile):
        normals = [c for c in pool if c.id not in chosen and not c.finding_links
                   and c.reference_tb_positive is False]
        wanted = min(NORMAL_CASES, len(normals))
        if wanted:
            chosen += _draw(CaseRule(total=wanted, seed=flag.id), normals)
    return chosen


def _draw(rule: CaseRule, candidates: list[Case]) -> list[int]:
    try:
        return select_cases(rule, candidates)
    except SelectionError:  # a case barred since it was counted: leave that part out
        return []


def suggested_cases(flag: QcFlag, library: list[Case] | None = None) -> list[Case]:
    ids = suggested_case_ids(flag, library)
    by_id = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_(ids)))}
    return [by_id[i] for i in ids if i in by_id]


# ---- the lead's decision -----------------------------------------------------------------


def flags_for(countries: Collection[str] | None, *, recent: int = 50) -> list[QcFlag]:
    """Open flags (oldest first), then the ``recent`` latest decided ones, of readers whose
    clinic is in ``countries`` (None: all)."""
    base = (select(QcFlag).join(User, User.id == QcFlag.reader_id)
            .join(Clinic, Clinic.id == User.clinic_id)
            .options(selectinload(QcFlag.reader), selectinload(QcFlag.programme)))
    if countries is not None:
        base = base.where(Clinic.country_code.in_(list(countries)))
    open_flags = db.session.scalars(base.where(QcFlag.state == "open")
                                    .order_by(QcFlag.opened_at, QcFlag.id)).all()
    decided = db.session.scalars(base.where(QcFlag.state == "decided")
                                 .order_by(QcFlag.decided_at.desc(), QcFlag.id.desc())
                                 .limit(recent)).all()
    return [*open_flags, *decided]


def open_count(countries: Collection[str] | None) -> int:
    return sum(1 for f in flags_for(countries, recent=0) if f.state == "open")


def in_scope(flag: QcFlag, countries: Collection[str] | None) -> bool:
    clinic = flag.reader.clinic
    return countries is None or (clinic is not None and clinic.country_code in countries)


def _practice_title(flag: QcFlag) -> str:
    return gettext("Targeted practice for %(reader)s (%(programme)s, QC flag %(id)s)",
                   reader=flag.reader.full_name, programme=flag.programme.title, id=flag.id)


def _exercise_scheme(flag: QcFlag, case_ids: list[int]) -> str:
    """The scheme most of the cases' reference reads follow (the practice set is scored
    against them), else the QC records' scheme."""
    keys = Counter(key for case in db.session.scalars(select(Case).where(Case.id.in_(case_ids)))
                   for key in reference_scheme_keys(case)[:1])
    common = keys.most_common(1)
    return common[0][0] if common else str(flag.figures.get("scheme_key") or DEFAULT_SCHEME)


def decide(flag_id: int, *, decision: str, reason: str, actor: User,
           countries: Collection[str] | None) -> QcFlag:
    """Take a lead's decision on an open flag. "assign_practice" creates the suggested
    practice set as a published practice exercise for the reader alone. Refused (nothing
    written) for a flag out of the lead's countries (404), an unknown decision or no reason
    (400), a flag already decided (409), or no case to practise on (409)."""
    reason = (reason or "").strip()
    if decision not in FLAG_DECISIONS:
        raise FlagError(N_("choose a decision: assign the practice set, keep watching or "
                           "dismiss"))
    if not reason:
        raise FlagError(N_("give the reason for your decision"))
    if len(reason) > MAX_REASON:
        raise FlagError(N_("the reason is longer than %(most)s characters"), most=MAX_REASON)
    flag = db.session.get(QcFlag, flag_id)
    if flag is None or not in_scope(flag, countries):
        raise FlagError(N_("there is no such flag in your countries"), 404)
    if flag.state != "open":
        raise FlagError(N_("this flag has already been decided"), 409)
    exercise: Exercise | None = None
    if decision == "assign_practice":
        case_ids = suggested_case_ids(flag)
        if not case_ids:
            raise FlagError(N_("the library has no published case for this reader's errors "
                               "yet: keep watching, or build a practice set by hand"), 409)
        try:
            exercise = create_exercise(
                title=_practice_title(flag), kind=ExerciseKind.PRACTICE.value,
                scheme_key=_exercise_scheme(flag, case_ids),
                case_ids=case_ids, actor=actor, published=False,
                audience={"user_ids": [flag.reader_id]})
        except AttemptError as exc:
            db.session.rollback()
            raise FlagError(N_("the practice set cannot be made: %(reason)s"), 409,
                            reason=Phrase(exc.template, **exc.values)) from None
    locked = lock_row(QcFlag, flag_id)
    if locked is None or locked.state != "open":
        db.session.rollback()
        if exercise is not None:  # decided by someone else meanwhile: undo the set
            delete_exercise(exercise, actor=actor)
        raise FlagError(N_("this flag has already been decided"), 409)
    locked.state, locked.decision, locked.decision_reason = "decided", decision, reason
    locked.decided_by_id, locked.decided_at = actor.id, utcnow()
    if exercise is not None:
        locked.exercise_id = exercise.id
        exercise.published = True
    record("qc.flag.decide", actor=actor, object_type="qc_flag", object_id=locked.id,
           decision=decision, reason=reason, reader=locked.reader_id,
           programme=locked.programme_id, exercise=locked.exercise_id)
    db.session.commit()
    return locked
